"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) for PyTorch classifiers, written
with forward hooks on a convolutional layer of each network."""

from __future__ import annotations

import numpy as np

from openfer.errors import UnknownNameError, UsageError
from openfer.nn.lazy import import_torch
from openfer.nn.torch_classifier import TorchClassifier

#: Layers whose maps are smaller than this (per side) are too coarse to place evidence on a face.
MIN_SIDE = 3


def default_layer(net, input_size: int, channels: int) -> str:
    """Name of the last module (in execution order) that outputs a 4-D map at least ``MIN_SIDE`` pixels a side:
    the deepest convolutional features that still have a spatial layout (6 x 6 for ``fer_resnet`` at 48 px)."""
    torch = import_torch()
    seen: list[tuple[str, tuple]] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: seen.append((n, tuple(o.shape)))
                                     if isinstance(o, torch.Tensor) else None)
             for name, m in net.named_modules() if name]
    try:
        with torch.no_grad():
            net(torch.zeros(1, channels, input_size, input_size))
    finally:
        for h in hooks:
            h.remove()
    spatial = [n for n, s in seen if len(s) == 4 and min(s[2], s[3]) >= MIN_SIDE]
    if not spatial:
        raise UsageError("the network has no layer with a spatial map of at least 3x3 pixels; name one with layer=")
    return spatial[-1]


def cam_layers(classifier: TorchClassifier, layer: str | None = None) -> list[tuple]:
    """(network, module name, mirrored) of every feature map Grad-CAM averages over: one per ensemble member, or
    for a shipped ONNX model run by ``TorchClassifier.from_onnx``, one per network and test-time view (the
    mirror-image views' maps are flipped back)."""
    net = classifier.net
    if hasattr(net, "tap_of") and layer is None:
        return [(net, t, t in net.mirrored) for t in net.tap_of.values()]
    return [(m, layer or default_layer(m, classifier.input_size, classifier.channels), False)
            for m in classifier.members()]


def gradcam_maps(classifier: TorchClassifier, crops: np.ndarray, targets: list[int], plus: bool = False,
                 layer: str | None = None) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++ with ``plus``) heatmaps float32 [N, S, S] in [0, 1], one forward and one backward
    pass for all ``crops``.

    For each crop the class ``targets[i]``'s calibrated logit is differentiated with respect to the feature maps
    of ``layer`` (default: ``default_layer``); Grad-CAM weights each channel by its mean gradient, Grad-CAM++ by a
    positively-weighted sum of gradients that credits several separate occurrences of a feature. The weighted sum
    of channels, clipped at 0, is upsampled bilinearly to the crop and divided by its maximum (an all-zero map
    stays zero). An ensemble gets the mean of its members' maps (each member's own layer, see ``cam_layers``),
    divided by its maximum again.

    Args:
        classifier: a ``TorchClassifier``.
        crops: uint8 [N, S, S] or [N, S, S, 3].
        targets: class column per crop.
        plus: Grad-CAM++ instead of Grad-CAM.
        layer: module name inside each member network (``dict(net.named_modules())``), e.g. ``"stages.2"``.
    """
    torch = import_torch()
    import torch.nn.functional as F

    if not isinstance(classifier, TorchClassifier):
        raise TypeError(f"Grad-CAM needs a TorchClassifier, got {type(classifier).__name__}")
    layers = cam_layers(classifier, layer)
    acts: list = [None] * len(layers)
    hooks = []
    for k, (m, name, _) in enumerate(layers):
        modules = dict(m.named_modules())
        if name not in modules:
            raise UnknownNameError(f"no layer named {name!r}; choose one of {', '.join(n for n in modules if n)}")
        hooks.append(modules[name].register_forward_hook(lambda mod, i, o, k=k: acts.__setitem__(k, o)))
    try:
        with torch.enable_grad():
            x = classifier.to_tensor(crops).requires_grad_(True)
            logits = classifier.logits(x)
            score = logits[torch.arange(len(x)), torch.as_tensor(targets)].sum()
            grads = torch.autograd.grad(score, acts)
    finally:
        for h in hooks:
            h.remove()
    size = classifier.input_size
    cams = []
    with torch.no_grad():
        for (_, _, mirrored), a, g in zip(layers, acts, grads):
            if plus:
                g2, g3 = g**2, g**3
                denom = 2 * g2 + (a * g3).sum((2, 3), keepdim=True)
                alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
                w = (alpha * F.relu(g)).sum((2, 3))
            else:
                w = g.mean((2, 3))
            cam = F.relu((w[:, :, None, None] * a).sum(1, keepdim=True))
            cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
            if mirrored:  # the map of the mirror-image view, back in the crop's orientation
                cam = torch.flip(cam, dims=[2])
            cams.append(cam / cam.amax((1, 2), keepdim=True).clamp_min(1e-12))
        mean = torch.stack(cams).mean(0)
        return (mean / mean.amax((1, 2), keepdim=True).clamp_min(1e-12)).numpy().astype(np.float32)
