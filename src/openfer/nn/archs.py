"""Classifier architectures (PyTorch), created by name through ``build`` (the ``ARCHS`` registry)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from openfer.errors import UsageError
from openfer.nn.faceres_net import FaceresMobileNet
from openfer.nn.tta import tta_logits
from openfer.registry import Registry


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


class GiMeFive(nn.Module):
    """GiMeFive-style CNN (Wang et al., 2024): five 3x3 conv-BN-ReLU-max-pool blocks (64..1024 channels, dropout
    after the first four), global average pooling and a 2048-1024 fully connected head. The paper feeds 64x64 RGB;
    at 48x48 the last pooling leaves a 1x1 map. About 10 M parameters.
    """

    def __init__(self, num_classes: int, in_chans: int = 1, dropout_conv: float = 0.2, dropout: float = 0.5) -> None:
        super().__init__()
        chans = (in_chans, 64, 128, 256, 512, 1024)
        blocks: list[nn.Module] = []
        for i in range(5):
            blocks += [nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1), nn.BatchNorm2d(chans[i + 1]),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            if i < 4:
                blocks.append(nn.Dropout(dropout_conv))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(1024, 2048), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(2048, 1024), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * (H/w) * (W/w), w*w, C] non-overlapping windows."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _unwindows(x: torch.Tensor, w: int, b: int, h: int, wd: int) -> torch.Tensor:
    """Inverse of ``_windows``."""
    c = x.shape[-1]
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


class SwinBlock(nn.Module):
    """Transformer block with self-attention inside (optionally shifted) windows, as in Swin (Liu et al., 2021),
    with a learned relative-position bias per head; pre-norm, MLP ratio 4."""

    def __init__(self, dim: int, heads: int, res: int, window: int, shift: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.heads, self.res, self.window = heads, res, min(window, res)
        if res % self.window:
            raise UsageError(f"window {window} must divide the token grid {res}x{res}")
        self.shift = shift if res > self.window else 0
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop_path = drop_path
        w = self.window
        self.rel_bias = nn.Parameter(torch.zeros(heads, (2 * w - 1) ** 2))
        coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * w - 1) + rel[..., 1], persistent=False)
        self.register_buffer("mask", self._shift_mask(), persistent=False)

    def _shift_mask(self) -> torch.Tensor:
        """Additive mask [nW, w*w, w*w] that stops shifted windows from mixing regions that were not adjacent."""
        r, w, s = self.res, self.window, self.shift
        if not s:
            return torch.zeros((r // w) ** 2, w * w, w * w)
        region = torch.zeros(1, r, r, 1)
        cuts = (slice(0, -w), slice(-w, -s), slice(-s, None))
        for k, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
            region[:, hs, ws, :] = k
        ids = _windows(region, w).squeeze(-1)
        return (ids[:, None, :] != ids[:, :, None]).float() * -100.0

    def _residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.training and self.drop_path > 0:  # stochastic depth: drop the branch for whole samples
            keep = torch.rand(x.shape[0], 1, 1, device=x.device) >= self.drop_path
            y = y * keep / (1 - self.drop_path)
        return x + y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        r, w = self.res, self.window
        h = self.norm1(x).view(b, r, r, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), dims=(1, 2))
        win = _windows(h, w)
        qkv = self.qkv(win).view(win.shape[0], w * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.rel_bias[:, self.rel_index].unsqueeze(0)  # [1, heads, w*w, w*w]
        mask = (bias + self.mask.to(bias.dtype)[:, None]).repeat(b, 1, 1, 1)
        att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask.to(qkv.dtype))
        h = _unwindows(self.proj(att.transpose(1, 2).reshape(win.shape[0], w * w, c)), w, b, r, r)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), dims=(1, 2))
        x = self._residual(x, h.reshape(b, n, c))
        return self._residual(x, self.mlp(self.norm2(x)))


class SESwin(nn.Module):
    """A small Swin transformer with squeeze-and-excitation, after Vats & Chadha (2023), sized for 48x48 faces.

    A two-conv stem embeds 4x4 patches (12x12 tokens), two stages of windowed attention (window 6, alternating
    shifts) with patch merging in between (6x6 tokens), an SE gate on the pooled features and a linear head.
    Train it with ``sam_rho > 0`` (sharpness-aware minimisation) as the paper does.
    """

    def __init__(self, num_classes: int, in_chans: int = 1, dim: int = 96, depths: tuple[int, int] = (2, 4),
                 heads: tuple[int, int] = (3, 6), window: int = 6, input_size: int = 48,
                 drop_path: float = 0.1, dropout: float = 0.1) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBNAct(in_chans, dim // 2, stride=2),
                                  nn.Conv2d(dim // 2, dim, 3, 2, 1))
        res = input_size // 4
        self.pos = nn.Parameter(torch.zeros(1, res * res, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        rates = torch.linspace(0, drop_path, sum(depths)).tolist()
        self.stage1 = nn.Sequential(*[SwinBlock(dim, heads[0], res, window, (window // 2) * (i % 2), rates[i])
                                      for i in range(depths[0])])
        self.merge_norm, self.merge = nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)
        self.stage2 = nn.Sequential(*[SwinBlock(2 * dim, heads[1], res // 2, window, (window // 2) * (i % 2),
                                                rates[depths[0] + i]) for i in range(depths[1])])
        self.norm = nn.LayerNorm(2 * dim)
        hidden = max(1, 2 * dim // 16)
        self.se = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * dim),
                                nn.Sigmoid())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * dim, num_classes))
        self.res = res

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2) + self.pos  # [B, res*res, dim]
        x = self.stage1(x)
        b, _, c = x.shape
        r = self.res
        x = x.view(b, r // 2, 2, r // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, (r // 2) ** 2, 4 * c)
        x = self.stage2(self.merge(self.merge_norm(x)))
        f = self.norm(x).mean(1)
        return self.head(f * self.se(f))


class EnsembleNet(nn.Module):
    """Mean of the members' calibrated logits (each member with its own test-time augmentation): the network of an
    ``ensemble.pt``."""

    def __init__(self, members: list[nn.Module], temperatures: list[float], tta: list[str]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.temperatures = [float(t) for t in temperatures]
        self.tta = list(tta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [tta_logits(m, x, mode) / t for m, t, mode in zip(self.members, self.temperatures, self.tta)]
        return torch.stack(out).mean(0)


#: Architectures by name (``TrainConfig.arch``): each entry takes ``num_classes`` and its own keyword settings.
ARCHS: Registry[type[nn.Module]] = Registry("architecture")
ARCHS.add("fer_resnet", FerResNet, "compact residual VGG-style CNN for 48 px grey faces (the shipped models' "
          "network)")
ARCHS.add("resemotenet", ResEmoteNet, "ResEmoteNet (Roy et al. 2024): conv layers, squeeze-and-excitation, residual "
          "blocks; about 80 M parameters")
ARCHS.add("gimefive", GiMeFive, "GiMeFive-style CNN (Wang et al. 2024): five conv-pool blocks; about 10 M parameters")
ARCHS.add("se_swin", SESwin, "small Swin transformer with squeeze-and-excitation (Vats & Chadha 2023); train with "
          "sam_rho > 0")
ARCHS.add("faceres_mobilenet", FaceresMobileNet, "MobileNet-v1 laid out as the faceres identity network, to start "
          "from its face-pretrained weights")


def build(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Create an architecture by its registry name (one of ``ARCHS``).

    Raises:
        openfer.UnknownNameError: no architecture has that name (also a ``KeyError``).
    """
    return ARCHS.get(name)(num_classes=num_classes, **kwargs)


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
