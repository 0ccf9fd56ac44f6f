"""Training workbench: a tiny end-to-end run on a generated dataset, resume, export parity (needs PyTorch)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (PyTorch)")

from openfer.classify.onnx_classifier import OnnxClassifier  # noqa: E402
from openfer.labels import CANONICAL8  # noqa: E402
from openfer.train.archs import build, count_macs, count_params  # noqa: E402
from openfer.train.export import export_onnx  # noqa: E402
from openfer.train.loop import TrainConfig, train  # noqa: E402
from openfer.zoo.registry import get_spec  # noqa: E402


def make_npz(path, n_train=128, n_test=32, seed=0):
    """A learnable toy FER file: class k has a bright bar at row 4k, votes agree on k."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    labels = rng.integers(0, 4, n)
    pixels = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
    for i, k in enumerate(labels):
        pixels[i, 6 + 10 * k : 12 + 10 * k, 8:40] = 230
    votes = np.zeros((n, 10), np.uint8)
    votes[np.arange(n), labels] = 8
    votes[np.arange(n), 8] = 2
    np.savez(path, pixels=pixels, emotion=labels.astype(np.int8),
             usage=np.array(["Training"] * n_train + ["PublicTest"] * n_test), row=np.arange(n),
             ferplus_votes=votes, ferplus_name=np.array([f"fer{i:07d}.png" for i in range(n)]),
             lossless=np.ones(n, bool))
    return path


@pytest.mark.parametrize(
    "arch,kwargs,shape,params,macs",
    [
        # width 1 is the shipped "default" model (its card states these counts)
        ("fer_resnet", {}, (1, 48, 48), 1_218_600, 120_989_696),
        ("fer_resnet", {"width": 0.25}, (1, 48, 48), None, None),
        # ResEmoteNet, paper layout, on 64x64 RGB as in the paper: about 80 M parameters
        ("resemotenet", {"in_chans": 3}, (3, 64, 64), None, None),
    ],
)
def test_arch_shapes_and_counts(arch, kwargs, shape, params, macs):
    net = build(arch, 7, **kwargs).eval()
    out = net(torch.randn(2, *shape))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    if params is not None:
        assert count_params(build(arch, 8, **kwargs)) == params
        assert count_macs(build(arch, 8, **kwargs), shape) == macs
    if arch == "resemotenet":
        assert 75e6 < count_params(net) < 85e6


def test_build_unknown_arch():
    with pytest.raises(KeyError, match="available"):
        build("nope", 8)


@pytest.mark.slow
def test_tiny_training_resume_and_export(tmp_path):
    data = make_npz(tmp_path / "toy.npz")
    no_geometry = {"rotate_deg": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "erase_p": 0.0, "lowres_p": 0.0}
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.05, arch_kwargs={"width": 0.25}, val_fraction=0.25,
                      threads=1, bf16=False, tta_flip=True, ema_decay=0.5, augment=no_geometry)
    run = tmp_path / "run"
    s1 = train(cfg, run, data)
    assert (run / "last.pt").exists() and (run / "best.pt").exists()
    assert s1["temperature"] > 0
    cfg.epochs = 5
    s2 = train(cfg, run, data)  # resumes at epoch 2
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 5, "resume must continue the metrics log, not restart it"
    assert s2["best_val_acc"] > 0.6, f"toy task should be learnt, got {s2}"
    assert json.loads((run / "summary.json").read_text())["best_epoch"] >= 1

    onnx_path = tmp_path / "toy.onnx"
    report = export_onnx(run / "best.pt", onnx_path)
    assert report["max_abs_diff"] < 1e-4
    spec = get_spec("default")
    clf = OnnxClassifier(spec, path=onnx_path, threads=1)
    with np.load(data) as d:
        test = d["pixels"][d["usage"] == "PublicTest"]
        y = d["emotion"][d["usage"] == "PublicTest"]
    p = clf.predict_proba(test)
    assert p.shape == (len(test), len(CANONICAL8))
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert (p.argmax(1) == y).mean() > 0.6


def test_mix_batch_keeps_target_mass_and_mixes():
    from openfer.train.loop import mix_batch

    gen = torch.Generator().manual_seed(0)
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)] * 4)
    y = torch.eye(2)[[0, 1] * 4]
    assert mix_batch(x, y, 0.0, 0.0, gen) == (x, y)
    for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0)):
        xm, ym = mix_batch(x, y, mixup, cutmix, gen)
        torch.testing.assert_close(ym.sum(1), torch.ones(8))
        # every image's mean brightness equals its target's share of the "ones" image
        torch.testing.assert_close(xm.mean(dim=(1, 2, 3)), ym[:, 1], atol=1e-5, rtol=0)


def test_class_weights_favour_rare_classes():
    from openfer.train.loop import class_weights

    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 3, "inverse_sqrt")
    assert w[1] > w[0] and w[2] == 0
    assert float((w[labels]).mean()) == pytest.approx(1.0)
    assert torch.equal(class_weights(labels, 3, "none"), torch.ones(3))
    with pytest.raises(ValueError, match="inverse_sqrt"):
        class_weights(labels, 3, "bogus")


@pytest.mark.slow
def test_training_options_run(tmp_path):
    data = make_npz(tmp_path / "toy.npz")
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.003, optimizer="adamw", mixup_alpha=0.2, cutmix_alpha=1.0,
                      class_weighting="inverse_sqrt", arch_kwargs={"width": 0.25}, threads=1, bf16=True)
    s = train(cfg, tmp_path / "run", data)
    assert np.isfinite(s["val_nll_calibrated"]) and s["best_epoch"] >= 1
    with pytest.raises(ValueError, match="adamw"):
        train(TrainConfig(epochs=1, optimizer="lion", max_train_samples=16), tmp_path / "bad", data)
