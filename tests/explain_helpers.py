"""A tiny PyTorch task with known evidence, for the explanation sanity tests (Adebayo et al. 2018).

Images are 32 x 32 grey noise with one 8 x 8 square at a fixed place (``EVIDENCE``): bright for class 1, dark for
class 0. A distractor of the same contrast (a 3 x 14 bar, bright or dark at random, somewhere in the top half)
carries no label, so an untrained network responds to both while a faithful map of a trained one points at the
square only.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

SIZE = 32
#: (y, x, side) of the square that decides the class.
EVIDENCE = (20, 12, 8)


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, 32, 32] and int64 labels [n] (balanced)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(128, 30, (n, SIZE, SIZE))
    sy, sx, s = EVIDENCE
    x[:, sy : sy + s, sx : sx + s] += np.where(y == 1, 70.0, -70.0)[:, None, None]
    for i in range(n):
        by, bx = rng.integers(1, 12), rng.integers(1, SIZE - 15)
        x[i, by : by + 3, bx : bx + 14] += rng.choice([-70.0, 70.0])
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


def evidence_mask() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    sy, sx, s = EVIDENCE
    m[sy : sy + s, sx : sx + s] = True
    return m


def tiny_net(seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )


def train_tiny(labels_shuffled: bool = False, seed: int = 0, epochs: int = 6):
    """A ``TorchClassifier`` trained for a few seconds on ``make_data`` (optionally with shuffled labels)."""
    import torch

    from openfer.explain import TorchClassifier

    torch.set_num_threads(1)
    x, y = make_data(512, seed=seed)
    if labels_shuffled:
        y = np.random.default_rng(seed + 1).permutation(y)
    net = tiny_net(seed)
    clf = TorchClassifier(net, ("dark", "bright"), SIZE, 1)
    xt, yt = clf.to_tensor(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    net.eval()
    return clf


def randomized_copy(clf):
    """The same architecture with freshly initialised weights (Adebayo's model-randomisation test)."""
    from openfer.explain import TorchClassifier

    return TorchClassifier(tiny_net(seed=1234), clf.classes, clf.input_size, clf.channels)


def to_onnx_classifier(clf):
    """Export a tiny ``TorchClassifier`` to an in-memory ONNX model (raw 0..255 in, probabilities out) and load it
    as an ``OnnxClassifier``, to test the model-agnostic methods on the ONNX path."""
    import onnxruntime as ort
    import torch

    from openfer.classify import OnnxClassifier
    from openfer.zoo.registry import ModelSpec

    class Deploy(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net((x / 255.0 - 0.5) / 0.5), 1)

    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter is what openfer.train.export uses too
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(Deploy(clf.net).eval(), (torch.zeros(2, 1, SIZE, SIZE),), buf, input_names=["faces"],
                          output_names=["probabilities"], dynamic_axes={"faces": {0: "N"}, "probabilities": {0: "N"}},
                          opset_version=17, dynamo=False)
    spec = ModelSpec(name="tiny", file="", sha256="", classes=clf.classes, input_size=SIZE, channels=1,
                     arch="tiny", params=0, macs=0)
    return OnnxClassifier(spec, session=ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"]))


def randomize_onnx(model_bytes: bytes, seed: int = 0) -> bytes:
    """An ONNX model with every weight tensor (initialisers of 2+ dimensions and biases) replaced by Gaussian noise
    of the same mean and standard deviation: the architecture stays, what was learnt is gone."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    proto = onnx.load_from_string(model_bytes)
    for init in proto.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.size < 2:
            continue
        noise = rng.normal(float(w.mean()), float(w.std()) or 1e-3, w.shape).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(noise, init.name))
    return proto.SerializeToString()
