"""Ensembles of exported classifiers: several ``.onnx`` files merged into one ONNX graph, calibrated on a
validation split. Needs no PyTorch.

Training runs do not travel between machines, exported models do: this is how a new member (trained today) joins a
shipped ensemble (trained in an earlier session) without retraining it. Members' calibrated log-probabilities are
averaged (a geometric mean, as ``openfer.train.ensemble`` does with checkpoints), each weighted by the number of
networks it holds (a shipped 3-member ensemble counts 3, a new single run 1, so every network has an equal say), and
one temperature, fitted on the validation split, turns the mean back into probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from openfer.classify.merge import half_weights, merge_graph, networks
from openfer.errors import UnreadableInputError, UsageError
from openfer.zoo.registry import file_prior

#: Metadata keys that say which validation split a model was chosen on (``openfer export`` writes them).
SPLIT_KEYS = ("protocol", "split_seed", "val_fraction", "val_rows")


def metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def fit_temperature(logits: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None) -> float:
    """Temperature minimising the NLL of ``softmax(logits / T)`` on labelled data (default grid 0.2..5, step
    0.02; the first on ties)."""
    grid = np.arange(0.2, 5.001, 0.02) if grid is None else grid
    return float(grid[int(np.argmin([nll(logits / t, labels) for t in grid]))])


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, computed stably."""
    z = logits - logits.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits)``."""
    return float(-log_softmax(logits)[np.arange(len(labels)), labels].mean())


def split_of(meta: dict[str, str], split_seed: int | None = None, val_fraction: float | None = None) -> dict:
    """The validation split an exported classifier was chosen on: ``protocol``, ``split_seed``, ``val_fraction``
    from its metadata (explicit arguments win; files exported before openfer recorded them: the protocol follows
    from the classes, seed 0 and 10 %, the split of every shipped model)."""
    from openfer.labels import CANONICAL8, FER2013_CLASSES

    classes = tuple(json.loads(meta.get("classes", "[]")))
    protocol = meta.get("protocol") or {CANONICAL8: "ferplus", FER2013_CLASSES: "fer2013"}.get(classes)
    if protocol is None:
        raise UsageError(f"the model predicts {list(classes)}: not a FER+ or FER2013 classifier, so there is no "
                         "validation split to calibrate on")
    return {"protocol": protocol,
            "split_seed": split_seed if split_seed is not None else int(meta.get("split_seed", 0)),
            "val_fraction": val_fraction if val_fraction is not None else float(meta.get("val_fraction", 0.1)),
            "val_rows": meta.get("val_rows", "")}


def validation_faces(split: dict, data: str | Path | None = None):
    """The ``FaceSet`` of a ``split_of`` split, carved from Training as ``openfer train`` carves it."""
    from openfer.datasets import load_dataset, split_rows

    full = load_dataset(data, "Training", split["protocol"])
    return full.subset(split_rows(full.labels, split["protocol"], split["val_fraction"], split["split_seed"],
                                  split.get("val_rows", ""), data)[1])


def member_log_probs(path: str | Path, pixels: np.ndarray, batch: int = 256, threads: int = 0) -> np.ndarray:
    """log p [N, K] of one exported classifier on uint8 [N, S, S] grey crops (its own TTA and temperature)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = [sess.run(None, {"faces": pixels[i : i + batch].astype(np.float32)[:, None]})[0]
           for i in range(0, len(pixels), batch)]
    return np.log(np.maximum(np.concatenate(out), 1e-12))


def check_members(paths: list[Path], metas: list[dict[str, str]]) -> list[str]:
    """Warnings about the members (``metas``: their metadata); raises ValueError when they are not
    interchangeable (classes, input) or were chosen on different validation splits."""
    first = metas[0]
    for p, m in zip(paths, metas):
        if m.get("producer") != "openfer" or "classes" not in m:
            raise UnreadableInputError(f"{p} is not an openfer classifier (no classes metadata): export it with "
                                       "openfer export")
        for key in ("classes", "input_size", "channels"):
            if m.get(key) != first.get(key):
                raise UsageError(f"{p}: {key} {m.get(key)} differs from {paths[0]}'s {first.get(key)}; "
                                 "members must be interchangeable")
    warnings = []
    known = [(p, tuple(m.get(k, "") for k in SPLIT_KEYS)) for p, m in zip(paths, metas)
             if all(k in m for k in SPLIT_KEYS[:3])]  # val_rows is absent where it is the default
    if any(split != known[0][1] for _, split in known):
        raise UsageError("members were chosen on different validation splits: "
                         + "; ".join(f"{p}: {dict(zip(SPLIT_KEYS, s))}" for p, s in known))
    if len(known) < len(paths):
        warnings.append("some members do not record their validation split (exported before openfer recorded it): "
                        "make sure they were all chosen on the split used here")
    return warnings


def network_count(path: str | Path) -> int:
    """How many networks the exported classifier at ``path`` averages (``networks``)."""
    return len(networks(metadata(path)))


def combine_onnx(paths: list[str | Path], val_set, out_path: str | Path, split: dict | None = None,
                 threads: int = 0, half: bool = False) -> dict:
    """Merge exported classifiers into ``out_path``, calibrated on ``val_set`` (a ``FaceSet`` none of the members
    trained on: the validation split they were chosen on). Returns validation accuracy and NLL of every member and
    of the ensemble, the temperature and any warnings.

    ``split`` (``protocol``, ``split_seed``, ``val_fraction``) is recorded in the output's metadata. ``half``
    stores the weights as float16 (``half_weights``); the report then also gives the written file's own validation
    accuracy and NLL.
    """
    import onnx

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise UsageError("an ensemble needs at least two members")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no ONNX file at {', '.join(missing)}")
    metas = [metadata(p) for p in paths]
    warnings = check_members(paths, metas)
    if tuple(json.loads(metas[0]["classes"])) != tuple(val_set.classes):
        raise UsageError(f"members predict {json.loads(metas[0]['classes'])}, the validation set has "
                         f"{list(val_set.classes)}")
    labels = val_set.labels
    weights = [float(len(networks(m))) for m in metas]
    report: dict = {"members": [], "warnings": warnings}
    total = 0.0
    for p, w in zip(paths, weights):
        lp = member_log_probs(p, val_set.pixels, threads=threads)
        total = total + w * lp
        report["members"].append({"onnx": str(p), "weight": w, "val_acc": float((lp.argmax(1) == labels).mean()),
                                  "val_nll": nll(lp, labels)})
    mean = total / sum(weights)
    t = fit_temperature(mean, labels)
    extra = {k: str(v) for k, v in (split or {}).items() if v != ""}
    model = merge_graph([onnx.load(str(p)) for p in paths], weights, t,
                        [file_prior(p, m) for p, m in zip(paths, metas)], extra)
    if half:
        model = half_weights(model)
        entry = model.metadata_props.add()
        entry.key, entry.value = "weights", "float16"
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    # parity: the written file must give what the members give, averaged and re-tempered here in NumPy; with float16
    # weights it runs on the whole split, so the report also has the file's own answers, rounding included
    lp = member_log_probs(out_path, val_set.pixels if half else val_set.pixels[:64], threads=threads)
    if half:
        report.update({"file_val_acc": float((lp.argmax(1) == labels).mean()), "file_val_nll": nll(lp, labels)})
    got, want = np.exp(lp[:64]), np.exp(log_softmax(mean[:64] / t))
    report.update({"val_acc": float((mean.argmax(1) == labels).mean()), "val_nll_t1": nll(mean, labels),
                   "temperature": t, "val_nll": nll(mean / t, labels), "n_val": int(len(labels)),
                   "max_abs_diff": float(np.abs(got - want).max()), "bytes": out_path.stat().st_size})
    return report
