"""Classifier architectures (PyTorch), created by name through ``build``."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """3x3 convolution, batch norm, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )


class ResStage(nn.Module):
    """Two 3x3 convs with an identity/projection shortcut, optionally halving the resolution first."""

    def __init__(self, cin: int, cout: int, pool: bool) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.short = (
            nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.act(self.body(x) + self.short(x))


class FerResNet(nn.Module):
    """Compact residual VGG-style network for 48x48 grey faces (about 100 M MACs at width 1).

    Resolution 48 -> 24 -> 12 -> 6, global average pooling, dropout, linear head. Widths scale with ``width``.
    """

    def __init__(self, num_classes: int, in_chans: int = 1, width: float = 1.0, dropout: float = 0.3) -> None:
        super().__init__()
        w = [max(8, int(c * width)) for c in (32, 64, 128, 256)]
        self.stem = nn.Sequential(ConvBNAct(in_chans, w[0]), ConvBNAct(w[0], w[0]))
        self.stages = nn.Sequential(
            ResStage(w[0], w[1], pool=True), ResStage(w[1], w[2], pool=True), ResStage(w[2], w[3], pool=True)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(w[3], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


ARCHS = {"fer_resnet": FerResNet}


def build(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Create an architecture by its registry name."""
    if name not in ARCHS:
        raise KeyError(f"unknown architecture {name!r}; available: {sorted(ARCHS)}")
    return ARCHS[name](num_classes=num_classes, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
