"""Batch augmentations on CPU tensors: geometry, photometry, resolution loss and random erasing.

They model what the inference pipeline meets: imperfect alignment (shift, scale, rotation), mirrored faces,
lighting, small/blurred faces and partial occlusion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of each augmentation; zero turns one off."""

    rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.08
    flip: float = 0.5
    brightness: float = 0.25
    contrast: tuple[float, float] = (0.6, 1.4)
    lowres_p: float = 0.2
    lowres_min: int = 16
    erase_p: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.2)


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Augment a batch ``x`` [B, C, H, W] of floats in [0, 1]; returns a new tensor, same shape."""
    b, _, h, w = x.shape
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731 - local shorthand
    ang = (r(b) * 2 - 1) * math.radians(cfg.rotate_deg)
    scl = cfg.scale[0] + r(b) * (cfg.scale[1] - cfg.scale[0])
    flip = torch.where(r(b) < cfg.flip, -1.0, 1.0)
    tx, ty = (r(b) * 2 - 1) * cfg.translate * 2, (r(b) * 2 - 1) * cfg.translate * 2
    cos, sin = torch.cos(ang) / scl, torch.sin(ang) / scl
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    con = cfg.contrast[0] + r(b, 1, 1, 1) * (cfg.contrast[1] - cfg.contrast[0])
    bri = (r(b, 1, 1, 1) * 2 - 1) * cfg.brightness
    x = ((x - mean) * con + mean + bri).clamp(0, 1)

    if cfg.lowres_p > 0:
        sel = torch.nonzero(r(b) < cfg.lowres_p).flatten()
        if len(sel):
            side = int(cfg.lowres_min + r(1).item() * (h - cfg.lowres_min))
            small = F.interpolate(x[sel], size=(side, side), mode="area")
            x[sel] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)

    if cfg.erase_p > 0:
        for i in torch.nonzero(r(b) < cfg.erase_p).flatten().tolist():
            area = (cfg.erase_area[0] + r(1).item() * (cfg.erase_area[1] - cfg.erase_area[0])) * h * w
            aspect = math.exp((r(1).item() * 2 - 1) * math.log(3))
            eh = min(h, int(round(math.sqrt(area * aspect))))
            ew = min(w, int(round(math.sqrt(area / aspect))))
            y0 = int(r(1).item() * (h - eh + 1))
            x0 = int(r(1).item() * (w - ew + 1))
            x[i, :, y0 : y0 + eh, x0 : x0 + ew] = r(1, eh, ew)
    return x
