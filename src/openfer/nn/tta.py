"""Test-time augmentation: average a network's logits over views of each face (mirror, ten crops).

The same function runs in PyTorch evaluation and inside exported ONNX graphs, so validation choices carry over.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from openfer.errors import UnknownNameError

TTA_MODES = ("none", "flip", "tencrop")
CROP_FRACTION = 0.9  # ten-crop: crops of 90 % of the side, resized back to the input size


def _crops(x: torch.Tensor) -> list[torch.Tensor]:
    """Centre and four corner crops of ``CROP_FRACTION`` of the side, each resized back to the input size."""
    s = int(x.shape[-1])  # a Python int also while tracing for ONNX export: the input size is fixed
    c = int(round(s * CROP_FRACTION))
    o = s - c
    views = [x[..., o // 2 : o // 2 + c, o // 2 : o // 2 + c],
             x[..., :c, :c], x[..., :c, o:], x[..., o:, :c], x[..., o:, o:]]
    return [F.interpolate(v, size=(s, s), mode="bilinear", align_corners=False) for v in views]


def tta_logits(net: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    """Mean logits of ``net`` over the views of ``mode``: ``none`` (1 view), ``flip`` (2), ``tencrop`` (10: five
    crops and their mirror images). ``x`` is a normalised batch [N, C, S, S]."""
    if mode == "none":
        return net(x)
    if mode == "flip":
        return (net(x) + net(torch.flip(x, dims=[3]))) / 2
    if mode == "tencrop":
        views = _crops(x)
        views += [torch.flip(v, dims=[3]) for v in views]
        n = x.shape[0]
        return net(torch.cat(views)).view(len(views), n, -1).mean(0)
    raise UnknownNameError(f"unknown test-time augmentation {mode!r}; use one of {TTA_MODES}")
