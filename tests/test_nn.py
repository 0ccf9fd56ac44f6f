"""The shared PyTorch layer (``openfer.nn``): typed checkpoints, the ``Classifier`` protocol, and the import
direction between the stages that use it (training and explanation import ``openfer.nn``, never each other)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import openfer
from openfer.classify import Classifier, OnnxClassifier
from openfer.labels import CANONICAL8

SRC = Path(openfer.__file__).parent
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="needs the [train] extra (PyTorch)")


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Every ``openfer...`` module (or name) each file under ``folder`` imports, at the top or inside a function."""
    out = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        out[str(path.relative_to(folder))] = {n for n in names if n.startswith("openfer")}
    return out


@pytest.mark.parametrize("stage, forbidden", [
    ("train", ("openfer.explain",)),
    ("explain", ("openfer.train",)),
    ("nn", ("openfer.train", "openfer.explain")),  # the shared layer sits below both
])
def test_stages_do_not_import_each_other(stage, forbidden):
    found = {f"{file}: {m}" for file, mods in imported_modules(SRC / stage).items() for m in mods
             if any(m == f or m.startswith(f + ".") for f in forbidden)}
    assert not found, "imports across stages (use openfer.nn):\n" + "\n".join(sorted(found))


def test_the_scan_sees_imports_inside_functions(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from openfer.train.loop import train\n    import openfer.explain\n")
    assert imported_modules(tmp_path) == {"m.py": {"openfer.train.loop", "openfer.train.loop.train",
                                                   "openfer.explain"}}


def test_import_openfer_nn_without_loading_torch():
    import subprocess
    import sys

    code = "import sys, openfer.nn, openfer.explain; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


class Duck:
    classes = ("a", "b")
    input_size = 48
    channels = 1

    def predict_proba(self, faces):
        return np.full((len(faces), 2), 0.5, np.float32)


def test_classifier_protocol():
    onnx_clf = openfer.load_classifier("fast", threads=1)
    assert isinstance(onnx_clf, Classifier) and onnx_clf.channels == 1
    assert isinstance(Duck(), Classifier)
    no_channels = type("NoChannels", (), {k: v for k, v in vars(Duck).items() if k != "channels"})
    assert not isinstance(no_channels(), Classifier)
    assert not isinstance(object(), Classifier)
    assert isinstance(onnx_clf, OnnxClassifier)


@needs_torch
def test_torch_classifier_is_a_classifier():
    from openfer.explain import TorchClassifier as Reexported
    from openfer.nn import TorchClassifier

    twin = TorchClassifier.from_onnx(openfer.load_classifier("fast", threads=1))
    assert Reexported is TorchClassifier and isinstance(twin, Classifier)
    assert (twin.classes, twin.input_size, twin.channels) == (openfer.load_classifier("fast").classes, 48, 1)


@needs_torch
def test_checkpoint_round_trip_through_training(tmp_path):
    """A best.pt / last.pt written by the training loop loads as a typed ``Checkpoint``, rebuilds the network that
    the loop evaluated, and writes back the same dict."""
    import torch
    from test_train import make_npz

    from openfer.nn import Checkpoint, TorchClassifier, load_checkpoint
    from openfer.train.loop import TrainConfig, predict_logits, train, validation_set

    data = make_npz(tmp_path / "toy.npz", n_train=64, n_test=8)
    cfg = TrainConfig(epochs=1, batch_size=16, arch_kwargs={"width": 0.25}, val_fraction=0.25, threads=1,
                      bf16=False, tta_flip=True)
    summary = train(cfg, tmp_path / "run", data)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert isinstance(best, Checkpoint) and best.kind == "run" and best.arch == "fer_resnet"
    assert best.classes == tuple(CANONICAL8) and (best.input_size, best.in_chans) == (48, 1)
    assert best.tta == "flip" and best.epoch == 1 and best.temperature == pytest.approx(summary["temperature"])
    assert len(best.class_prior) == 8 and best.val_acc == pytest.approx(summary["best_val_acc"])
    assert best.model is None and best.opt is None  # the resume state lives in last.pt only

    raw = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert set(best.to_dict()) == set(raw) and best.extra == {}
    for key, value in raw.items():
        if key != "ema":
            assert best.to_dict()[key] == value, key
    val = validation_set(cfg, data)
    logits = predict_logits(best.build_model(), val.pixels, 48, tta="flip")
    assert summary["val_acc_final"] == pytest.approx(float((logits.argmax(1) == val.labels).mean()))

    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last.epoch == 0 and last.model is not None and last.opt is not None and last.best["epoch"] == 1
    with pytest.raises(openfer.UnreadableInputError, match="last.pt only resumes training"):
        last.build_model()

    best.extra["note"] = "kept"  # unknown keys survive a save
    best.save(tmp_path / "copy.pt")
    again = load_checkpoint(tmp_path / "copy.pt")
    assert again.extra == {"note": "kept"} and again.classes == best.classes
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    clf = TorchClassifier.from_checkpoint(tmp_path / "copy.pt")
    assert clf.temperature == pytest.approx(summary["temperature"]) and isinstance(clf, Classifier)


@needs_torch
def test_ensemble_checkpoint_round_trip(tmp_path):
    from openfer.nn import Checkpoint, load_checkpoint
    from openfer.nn.archs import EnsembleNet, build

    cfg = {"arch": "fer_resnet", "arch_kwargs": {"width": 0.25}, "input_size": 48, "tta": "flip"}
    members = [Checkpoint(cfg, ("a", "b"), ema=build("fer_resnet", 2, width=0.25).state_dict(), temperature=t)
               for t in (1.0, 2.0)]
    Checkpoint({**cfg, "arch": "ensemble", "tta": "none"}, ("a", "b"), kind="ensemble", members=members,
               temperature=1.5).save(tmp_path / "ensemble.pt")
    ck = load_checkpoint(tmp_path / "ensemble.pt")
    assert ck.kind == "ensemble" and [m.temperature for m in ck.members] == [1.0, 2.0]
    net = ck.build_model()
    assert isinstance(net, EnsembleNet) and net.temperatures == [1.0, 2.0] and net.tta == ["flip", "flip"]


@needs_torch
@pytest.mark.parametrize("content, needle", [(b"not a checkpoint", "not a readable PyTorch checkpoint"),
                                             (None, "not an openfer checkpoint")])
def test_load_checkpoint_errors(tmp_path, content, needle):
    import torch

    from openfer.nn import load_checkpoint

    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"weights": 1}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(openfer.UnreadableInputError, match=needle):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
