"""Batch augmentations on CPU tensors: geometry, photometry, resolution loss and random erasing.

They model what the inference pipeline meets: imperfect alignment (shift, scale, rotation), mirrored faces,
lighting, small/blurred/noisy faces and partial occlusion (random boxes, and bands where sunglasses, VR headsets
and face masks sit on a face aligned to the FER2013 template).
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
    blur_p: float = 0.0  # Gaussian blur (defocus, motion-free), sigma up to blur_sigma pixels of a 48 px face
    blur_sigma: float = 1.5
    noise_p: float = 0.0  # additive Gaussian sensor noise, std up to noise_std (0..1 scale)
    noise_std: float = 0.06
    band_p: float = 0.0  # an occluding band: eyes (sunglasses), eyes+brows (headset) or mouth+jaw (mask)
    band_grey: tuple[float, float] = (0.0, 0.35)  # the band's grey level: dark glasses, black or white fabric


#: Vertical extent (fractions of the crop side) of the occluders ``band_p`` draws, on the FER2013 template
#: (eyes at y = 0.40, mouth corners at y = 0.75): sunglasses, a head-mounted display, a face mask.
BANDS: tuple[tuple[float, float], ...] = ((0.31, 0.49), (0.18, 0.55), (0.58, 1.0))


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator,
            covered: torch.Tensor | None = None) -> torch.Tensor:
    """Augment a batch ``x`` [B, C, H, W] of floats in [0, 1]; returns a new tensor, same shape, on ``x``'s device.

    The random draws come from ``gen`` (a CPU generator) whatever the device, so a run is the same on a GPU as on
    the CPU up to floating point. ``covered`` (bool [B], optional) is set where a band was drawn over the face."""
    b, _, h, w = x.shape
    rc = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731 - draws for choices and sizes stay on the CPU
    r = lambda *s: rc(*s).to(x.device)  # noqa: E731 - draws that meet the pixels
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
        sel = torch.nonzero(rc(b) < cfg.lowres_p).flatten()
        if len(sel):
            side = int(cfg.lowres_min + rc(1).item() * (h - cfg.lowres_min))
            small = F.interpolate(x[sel], size=(side, side), mode="area")
            x[sel] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)

    if cfg.blur_p > 0:
        sel = torch.nonzero(rc(b) < cfg.blur_p).flatten()
        if len(sel):
            sigma = max(0.3, rc(1).item() * cfg.blur_sigma) * h / 48
            x[sel] = _gaussian_blur(x[sel], sigma)

    if cfg.noise_p > 0:
        sel = (r(b, 1, 1, 1) < cfg.noise_p).float() * r(b, 1, 1, 1) * cfg.noise_std
        x = (x + sel * torch.randn(x.shape, generator=gen).to(x.device)).clamp(0, 1)

    if cfg.band_p > 0:
        for i in torch.nonzero(rc(b) < cfg.band_p).flatten().tolist():
            if covered is not None:
                covered[i] = True
            top, bottom = BANDS[int(rc(1).item() * len(BANDS))]
            shift = (rc(1).item() * 2 - 1) * 0.04
            y0, y1 = int((top + shift) * h), int(min(bottom + shift, 1.0) * h)
            margin = int(rc(1).item() * 0.12 * w)
            lo, hi = cfg.band_grey
            x[i, :, max(y0, 0) : y1, margin : w - margin] = lo + rc(1).item() * (hi - lo)

    if cfg.erase_p > 0:
        for i in torch.nonzero(rc(b) < cfg.erase_p).flatten().tolist():
            area = (cfg.erase_area[0] + rc(1).item() * (cfg.erase_area[1] - cfg.erase_area[0])) * h * w
            aspect = math.exp((rc(1).item() * 2 - 1) * math.log(3))
            eh = min(h, int(round(math.sqrt(area * aspect))))
            ew = min(w, int(round(math.sqrt(area / aspect))))
            y0 = int(rc(1).item() * (h - eh + 1))
            x0 = int(rc(1).item() * (w - ew + 1))
            x[i, :, y0 : y0 + eh, x0 : x0 + ew] = r(1, eh, ew)
    return x


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with standard deviation ``sigma`` pixels (reflect padding)."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
