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


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): global pooling, bottleneck MLP, sigmoid gates on the channels."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, hidden, bias=False),
                                  nn.ReLU(inplace=True), nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[:, :, None, None]


class BasicResidual(nn.Module):
    """ResNet basic block: two 3x3 convs, the first with ``stride``; 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.short = nn.Identity() if (cin == cout and stride == 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class ResEmoteNet(nn.Module):
    """ResEmoteNet as its paper describes it (Roy et al., 2024): three conv-BN-ReLU-max-pool layers (64, 128, 256
    channels), a squeeze-and-excitation block, three residual blocks (512, 1024, 2048 channels, stride 2),
    global average pooling and a 1024-512-256 fully connected head with dropout. The paper feeds 64x64 RGB; here
    the input channels and size follow the config (48x48 grey for FER2013). About 80 M parameters.
    """

    def __init__(self, num_classes: int, in_chans: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in ((in_chans, 64), (64, 128), (128, 256)):
            layers += [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers, SqueezeExcite(256), BasicResidual(256, 512, 2),
                                      BasicResidual(512, 1024, 2), BasicResidual(1024, 2048, 2))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(2048, 1024), nn.ReLU(inplace=True), nn.Dropout(dropout / 2.5),
            nn.Linear(1024, 512), nn.ReLU(inplace=True), nn.Dropout(dropout / 2.5),
            nn.Linear(512, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHS = {"fer_resnet": FerResNet, "resemotenet": ResEmoteNet}


def build(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Create an architecture by its registry name."""
    if name not in ARCHS:
        raise KeyError(f"unknown architecture {name!r}; available: {sorted(ARCHS)}")
    return ARCHS[name](num_classes=num_classes, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one input of ``input_shape`` (C, H, W), eval mode."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    return counter.get_total_flops() // 2
