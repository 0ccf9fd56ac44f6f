"""The faceres identity network's layout (MobileNet-v1 with TensorFlow ``SAME`` padding) as a PyTorch
classifier: an architecture of ``openfer.nn.archs`` whose weights ``openfer.train.faceres.load_faceres`` reads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from openfer.zoo.faceres import BLOCKS


class SameConv(nn.Conv2d):
    """A convolution with TensorFlow's ``SAME`` padding: for stride 2 on an even input, TF pads one pixel at the
    bottom/right only, which PyTorch's symmetric ``padding`` cannot express. The pad is worked out from the input
    size as Python ints (constants in an exported graph, whose input size is fixed); symmetric pads go to the
    convolution itself, only the asymmetric ones need a separate ``Pad``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            size = int(size)
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)


def _conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(SameConv(cin, cout, k, stride, 0, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU6(inplace=True))


class FaceresMobileNet(nn.Module):
    """MobileNet-v1 (width 1.0) with faceres's layer layout and an expression head.

    The network reads what every openfer model reads — faces normalised to [-1, 1] — and maps them to the
    0..255 range faceres was trained on. With ``in_chans = 1`` (grey faces; colour input is converted to grey
    before it arrives) the first convolution's RGB kernels are summed, which equals feeding the grey image on
    all three channels at a third of that layer's cost.

    Args:
        num_classes: outputs of the linear head.
        in_chans: 1 (grey) or 3 (RGB).
        dropout: dropout before the head.

    Random weights until ``load_faceres(model, folder)`` (the ``pretrained`` key of a training config).
    """

    def __init__(self, num_classes: int, in_chans: int = 1, dropout: float = 0.2) -> None:
        super().__init__()
        self.in_chans = in_chans
        layers = [_conv_bn(in_chans, 32, 3, 2)]
        cin = 32
        for cout, stride in BLOCKS:
            layers += [_conv_bn(cin, cin, 3, stride, groups=cin), _conv_bn(cin, cout, 1, 1)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(1024, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """1024-d global-average-pooled features (faceres's identity descriptor) of faces in [-1, 1]."""
        return F.adaptive_avg_pool2d(self.features((x + 1) * 127.5), 1).flatten(1)  # GlobalAveragePool in ONNX

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
