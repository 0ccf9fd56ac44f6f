"""Training workbench: a tiny end-to-end run on a generated dataset, resume, export parity (needs PyTorch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the [train] extra (PyTorch)")

from openfer.classify.onnx_classifier import OnnxClassifier  # noqa: E402
from openfer.errors import UsageError  # noqa: E402
from openfer.labels import CANONICAL8  # noqa: E402
from openfer.nn.archs import build, count_macs, count_params  # noqa: E402
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
        ("gimefive", {}, (1, 48, 48), None, None),
        ("gimefive", {"in_chans": 3}, (3, 64, 64), None, None),
        ("se_swin", {}, (1, 48, 48), None, None),
        ("se_swin", {"dim": 48, "input_size": 64, "heads": (2, 4), "window": 4}, (1, 64, 64), None, None),
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
    if arch == "gimefive":  # five conv blocks to 1024 channels and a 2048-1024 head: about 10 M parameters
        assert 9e6 < count_params(net) < 12e6


def test_se_swin_windows_and_shift_mask():
    from openfer.nn.archs import SwinBlock, _unwindows, _windows

    x = torch.arange(2 * 12 * 12 * 3, dtype=torch.float32).view(2, 12, 12, 3)
    assert torch.equal(_unwindows(_windows(x, 6), 6, 2, 12, 12), x)
    assert _windows(x, 6).shape == (2 * 4, 36, 3)
    plain, shifted = SwinBlock(24, 2, 12, 6, 0), SwinBlock(24, 2, 12, 6, 3)
    assert plain.mask.abs().sum() == 0 and plain.mask.shape == (4, 36, 36)
    # after the cyclic shift only the top-left window is one contiguous region; the others mix wrapped parts
    assert shifted.mask[0].abs().sum() == 0 and (shifted.mask[1:] != 0).any(dim=(1, 2)).all()
    # a window never attends across the wrap-around: masking is symmetric
    assert torch.equal(shifted.mask, shifted.mask.transpose(1, 2))
    with pytest.raises(ValueError, match="divide"):
        SwinBlock(24, 2, 16, 6, 0)
    # attention is local: changing one token of window 0 leaves the output of window 3 (no shift) untouched
    plain.eval()
    t = torch.randn(1, 144, 24)
    t2 = t.clone()
    t2[0, 0] += 5.0
    out, out2 = plain(t).view(12, 12, 24), plain(t2).view(12, 12, 24)
    assert torch.allclose(out[6:, 6:], out2[6:, 6:]) and not torch.allclose(out[:6, :6], out2[:6, :6])


@pytest.mark.parametrize("arch,kwargs", [("se_swin", {"dim": 24, "heads": (2, 2), "depths": (2, 2)}),
                                         ("gimefive", {})])
def test_new_archs_export_to_onnx(tmp_path, arch, kwargs):
    """Window attention (roll, masks) and the GiMeFive head survive ONNX export: same probabilities as PyTorch."""
    net = build(arch, 8, **kwargs).eval()
    ck = {"ema": net.state_dict(), "classes": list(CANONICAL8), "temperature": 1.3,
          "config": {"arch": arch, "arch_kwargs": kwargs, "input_size": 48, "tta": "tencrop"}}
    torch.save(ck, tmp_path / "best.pt")
    report = export_onnx(tmp_path / "best.pt", tmp_path / "m.onnx")
    assert report["max_abs_diff"] < 1e-4


def test_tta_views_and_modes():
    from openfer.nn.tta import tta_logits

    seen = []

    def net(x):
        seen.append(x.shape[0])
        return x.mean(dim=(1, 2, 3))[:, None].repeat(1, 3)

    x = torch.rand(4, 1, 48, 48)
    torch.testing.assert_close(tta_logits(net, x, "none"), net(x))
    torch.testing.assert_close(tta_logits(net, x, "flip"), net(x))  # a mean is mirror-invariant
    seen.clear()
    out = tta_logits(net, x, "tencrop")
    assert seen == [40] and out.shape == (4, 3)  # ten views of four faces in one batch
    flat = torch.full((2, 1, 48, 48), 0.7)
    torch.testing.assert_close(tta_logits(net, flat, "tencrop"), torch.full((2, 3), 0.7))
    with pytest.raises(ValueError, match="tencrop"):
        tta_logits(net, x, "twelve")


def test_sam_step_uses_gradient_at_perturbed_weights():
    from openfer.train.sam import sam_step

    w = torch.nn.Parameter(torch.tensor([1.0, 0.0]))
    opt = torch.optim.SGD([w], lr=0.1)

    def closure():
        loss = (w ** 4).sum()  # gradient 4 w^3 grows away from 0, so SAM's step is larger than SGD's
        loss.backward()
        return loss

    loss = sam_step([w], closure, opt, rho=0.5)
    assert loss.item() == pytest.approx(1.0)
    # perturbed point w + 0.5 * g/|g| = (1.5, 0); gradient there 4 * 1.5^3 = 13.5; step 1.35 from the ORIGINAL w
    torch.testing.assert_close(w.detach(), torch.tensor([1.0 - 1.35, 0.0]))


def test_build_unknown_arch():
    with pytest.raises(KeyError, match="unknown architecture 'nope'; registered architectures: "):
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

    # openfer evaluate --onnx reads an export's own input size (a 32 px file was fed 48 px crops and crashed)
    from typer.testing import CliRunner

    from openfer.cli import app

    export_onnx(run / "best.pt", tmp_path / "toy32.onnx", input_size=32)
    res = CliRunner().invoke(app, ["evaluate", "--onnx", str(tmp_path / "toy32.onnx"), "--data", str(data),
                                   "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "e.json").read_text())["accuracy"] > 0.6


def test_max_seconds_fits_the_epochs_into_the_time(tmp_path):
    """A run with a time budget (a lent GPU, a session's end) measures its first epoch and keeps as many epochs as
    fit, so the learning-rate schedule still ends; the checkpoints record the epochs actually planned."""
    data = make_npz(tmp_path / "toy.npz")
    cfg = TrainConfig(epochs=50, batch_size=16, lr=0.05, arch_kwargs={"width": 0.25}, val_fraction=0.25, threads=1,
                      bf16=False, max_train_samples=64, max_seconds=1e-3)
    summary = train(cfg, tmp_path / "run", data)
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 1 and summary["best_epoch"] == 1
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["config"]["epochs"] == 1


def test_gpu_pack_round_trip(tmp_path):
    """scripts/gpu_pack.py: Training rows travel as WebP (near-lossless), every other per-row array exactly, no
    PublicTest row, and the unpacked file gives the same FER+ training set."""
    import importlib.util

    from openfer.datasets import load_dataset

    spec = importlib.util.spec_from_file_location("gpu_pack", Path(__file__).parents[1] / "scripts" / "gpu_pack.py")
    gpu_pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_pack)
    data = make_npz(tmp_path / "toy.npz")
    report = gpu_pack.pack(data, tmp_path / "gpu", quality=92)
    assert gpu_pack.unpack(tmp_path / "gpu" / "fer_train.npz", tmp_path / "back.npz") == report["faces"]
    with np.load(data) as d, np.load(tmp_path / "back.npz") as b:
        train_rows = d["usage"] == "Training"
        assert set(b["usage"]) == {"Training"} and len(b["pixels"]) == train_rows.sum()
        assert np.abs(b["pixels"].astype(int) - d["pixels"][train_rows]).mean() == pytest.approx(
            report["mean_abs_error"], abs=1e-6) and report["mean_abs_error"] < 3
        np.testing.assert_array_equal(b["ferplus_votes"], d["ferplus_votes"][train_rows])
    a, o = load_dataset(tmp_path / "back.npz", "Training", "ferplus"), load_dataset(data, "Training", "ferplus")
    np.testing.assert_array_equal(a.labels, o.labels)


@pytest.mark.slow
def test_multitask_fer2013_with_auxiliary_ferplus_head(tmp_path):
    """aux_ferplus_weight: a 7-way FER2013 head plus an 8-way head on the FER+ votes; the auxiliary head learns
    the votes, and only the 7-way head reaches best.pt and the ONNX export."""
    data = make_npz(tmp_path / "toy.npz")
    no_geometry = {"rotate_deg": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "erase_p": 0.0, "lowres_p": 0.0}
    cfg = TrainConfig(protocol="fer2013", soft_labels=False, aux_ferplus_weight=1.0, epochs=4, batch_size=16,
                      lr=0.05, arch_kwargs={"width": 0.25}, val_fraction=0.25, threads=1, bf16=False,
                      ema_decay=0.5, augment=no_geometry)
    s = train(cfg, tmp_path / "run", data)
    assert s["best_val_acc"] > 0.6, s
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert last["ema"]["head.3.weight"].shape[0] == 7 + 8, "training carries both heads"
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["ema"]["head.3.weight"].shape[0] == 7 and best["ema"]["head.3.bias"].shape == (7,)
    net = build("fer_resnet", 15, width=0.25)
    net.load_state_dict(last["ema"])
    with np.load(data) as d:
        x = torch.from_numpy(d["pixels"][:64]).float().div(255).sub(0.5).div(0.5)[:, None]
        votes_top = d["ferplus_votes"][:64, :8].argmax(1)
    with torch.no_grad():
        aux = net.eval()(x)[:, 7:]
    assert (aux.argmax(1).numpy() == votes_top).mean() > 0.6, "the auxiliary head should learn the FER+ votes"
    report = export_onnx(tmp_path / "run" / "best.pt", tmp_path / "m.onnx")
    assert report["max_abs_diff"] < 1e-4
    with pytest.raises(ValueError, match="aux_ferplus_weight"):
        train(TrainConfig(aux_ferplus_weight=1.0, epochs=1, max_train_samples=16), tmp_path / "bad", data)


def test_a_ferplus_run_starts_a_fer2013_run_on_rows_it_never_trained_on(tmp_path):
    """init_checkpoint across protocols: the FER+ network's last-layer rows are taken by class name; val_rows =
    "ferplus_heldout" validates on the rows the FER+ run held out, and the export records it so the split can be
    carved again (ensembles, label rules)."""
    from openfer.datasets import stratified_split
    from openfer.labels import FER2013_CLASSES
    from openfer.train.combine import metadata, split_of, validation_faces
    from openfer.train.loop import init_from_checkpoint, prior_offset, remap_head

    data = make_npz(tmp_path / "toy.npz", n_train=96, n_test=8)
    small = {"arch_kwargs": {"width": 0.25}, "epochs": 1, "batch_size": 16, "val_fraction": 0.25, "threads": 1,
             "bf16": False, "balance": "logit_adjust"}
    stage1 = TrainConfig(**small)
    train(stage1, tmp_path / "ferplus", data)
    best = torch.load(tmp_path / "ferplus" / "best.pt", weights_only=False)
    balanced_bias = best["ema"]["head.3.bias"] - prior_offset(stage1, np.asarray(best["class_prior"]))
    net = build("fer_resnet", 7, width=0.25)
    init_from_checkpoint(net, str(tmp_path / "ferplus" / "best.pt"), FER2013_CLASSES)
    for i, name in enumerate(FER2013_CLASSES):  # every FER2013 class is a FER+ class: each row comes by name
        j = CANONICAL8.index(name)
        torch.testing.assert_close(net.state_dict()["head.3.weight"][i], best["ema"]["head.3.weight"][j])
        torch.testing.assert_close(net.state_dict()["head.3.bias"][i], balanced_bias[j])
    two = build("fer_resnet", 2, width=0.25)
    fresh = two.state_dict()["head.3.weight"][1].clone()
    mapped = remap_head(two, dict(best["ema"]), CANONICAL8, ("happiness", "other"))
    torch.testing.assert_close(mapped["head.3.weight"][0], best["ema"]["head.3.weight"][1])
    torch.testing.assert_close(mapped["head.3.weight"][1], fresh)  # a class the checkpoint lacks stays fresh
    with pytest.raises(UsageError, match="no class in common"):
        remap_head(two, dict(best["ema"]), CANONICAL8, ("a", "b"))

    stage2 = TrainConfig(**small, protocol="fer2013", soft_labels=False, val_rows="ferplus_heldout",
                         init_checkpoint=str(tmp_path / "ferplus" / "best.pt"))
    s = train(stage2, tmp_path / "fer2013", data)
    with np.load(data) as d:  # every toy row has a FER+ majority, so the held-out rows are FER+'s validation split
        ferplus_val = stratified_split(d["ferplus_votes"][:96, :8].argmax(1), 0.25, 0)[1]
    assert s["val_images"] == len(ferplus_val) and s["train_images"] == 96 - len(ferplus_val)
    export_onnx(tmp_path / "fer2013" / "best.pt", tmp_path / "m.onnx")
    meta = metadata(tmp_path / "m.onnx")
    assert meta["val_rows"] == "ferplus_heldout" and meta["protocol"] == "fer2013"
    val = validation_faces(split_of(meta), data)
    with np.load(data) as d:
        np.testing.assert_array_equal(val.pixels, d["pixels"][:96][ferplus_val])
    with pytest.raises(UsageError, match="ferplus_heldout"):
        train(TrainConfig(**{**small, "balance": "none"}, val_rows="ferplus_heldout"), tmp_path / "bad", data)


def test_photo_draws_give_photo_classes_the_fer_faces_shares():
    from openfer.errors import UnknownNameError
    from openfer.train.loop import photo_draws

    labels = np.array([0] * 60 + [1] * 30 + [3] * 10)  # photo classes 0, 1, 3; none of class 2
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    p = photo_draws(labels, prior, "match_prior")
    assert p.sum() == pytest.approx(1.0)
    shares = np.bincount(labels, weights=p, minlength=4)
    np.testing.assert_allclose(shares, [0.5, 0.375, 0.0, 0.125])  # prior renormalised over the photos' classes
    assert np.allclose(p[:60], p[0]) and np.allclose(p[60:90], p[60])  # uniform within a class
    assert photo_draws(labels, prior, "uniform") is None and photo_draws(labels[:0], prior, "match_prior") is None
    with pytest.raises(UnknownNameError, match="extra_sampling"):
        photo_draws(labels, prior, "balanced")


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
                      class_weighting="inverse_sqrt", arch_kwargs={"width": 0.25}, threads=1, bf16=True,
                      cover_smoothing=0.3, augment={"band_p": 0.5})
    s = train(cfg, tmp_path / "run", data)
    assert np.isfinite(s["val_nll_calibrated"]) and s["best_epoch"] >= 1
    with pytest.raises(ValueError, match="adamw"):
        train(TrainConfig(epochs=1, optimizer="lion", max_train_samples=16), tmp_path / "bad", data)


@pytest.mark.slow
def test_ensemble_distillation_sam_and_tencrop(tmp_path):
    """Two runs -> an ensemble checkpoint (calibrated on the shared validation split) -> ONNX; a student distils
    from it with SAM; ten-crop TTA is chosen and baked in."""
    from openfer.train.ensemble import make_ensemble
    from openfer.train.loop import validation_set

    data = make_npz(tmp_path / "toy.npz")
    no_geometry = {"rotate_deg": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "erase_p": 0.0, "lowres_p": 0.0}
    base = dict(epochs=4, batch_size=16, lr=0.05, arch_kwargs={"width": 0.25}, val_fraction=0.25, threads=1,
                bf16=False, ema_decay=0.5, augment=no_geometry)
    runs = []
    for seed in (0, 1):
        cfg = TrainConfig(seed=seed, tta="flip", **base)
        train(cfg, tmp_path / f"m{seed}", data)
        runs.append(tmp_path / f"m{seed}" / "best.pt")
    val = validation_set(TrainConfig(**base), data)
    report = make_ensemble(runs, val, tmp_path / "ens" / "ensemble.pt")
    assert len(report["members"]) == 2 and report["n_val"] == len(val)
    assert report["val_acc"] > 0.6 and report["val_acc"] >= min(m["val_acc"] for m in report["members"]) - 1e-6
    onnx_report = export_onnx(tmp_path / "ens" / "ensemble.pt", tmp_path / "ens.onnx")
    assert onnx_report["max_abs_diff"] < 1e-4
    priors = [torch.load(r, weights_only=False)["class_prior"] for r in runs]
    from openfer.train.combine import metadata

    np.testing.assert_allclose(json.loads(metadata(tmp_path / "ens.onnx")["class_prior"]), np.mean(priors, 0),
                               atol=1e-6)  # the members' mean prior, declared by the export
    clf = OnnxClassifier(get_spec("default"), path=tmp_path / "ens.onnx", threads=1)
    with np.load(data) as d:
        test, y = d["pixels"][d["usage"] == "PublicTest"], d["emotion"][d["usage"] == "PublicTest"]
    assert (clf.predict_proba(test).argmax(1) == y).mean() > 0.6

    student = TrainConfig(teachers=[str(tmp_path / "ens" / "ensemble.pt")], kd_weight=0.5, sam_rho=0.05,
                          tta="tencrop", **{**base, "epochs": 2})
    s = train(student, tmp_path / "student", data)
    assert s["tta"] == "tencrop" and np.isfinite(s["val_nll_calibrated"])
    assert len((tmp_path / "student" / "metrics.jsonl").read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="validation split differs"):
        other = TrainConfig(split_seed=5, **base)
        train(other, tmp_path / "other", data)
        make_ensemble([runs[0], tmp_path / "other" / "best.pt"], val, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="teachers"):
        train(TrainConfig(kd_weight=0.5, **base), tmp_path / "noteacher", data)
    with pytest.raises(ValueError, match="tta"):
        train(TrainConfig(tta="sideways", **base), tmp_path / "badtta", data)


@pytest.mark.parametrize("path", sorted(str(p) for p in
                                        (__import__("pathlib").Path(__file__).parents[1] / "configs").rglob("*.toml")))
def test_every_config_in_the_repo_is_valid(path):
    """Each config parses, names a known architecture and test-time augmentation, and builds its network; one that
    starts from an exported model finds its network there."""
    from openfer.labels import CANONICAL8, FER2013_CLASSES

    cfg = TrainConfig.from_toml(path)
    n_cls = {"ferplus": len(CANONICAL8), "fer2013": len(FER2013_CLASSES)}[cfg.protocol]
    assert cfg.tta_mode in ("none", "flip", "tencrop")
    net = build(cfg.arch, n_cls, **cfg.arch_kwargs).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 1, cfg.input_size, cfg.input_size)).shape == (1, n_cls)
    if cfg.init_checkpoint and not cfg.init_checkpoint.endswith(".pt"):
        from openfer.train.onnx_init import onnx_state
        from openfer.zoo.registry import resolve_model

        net.load_state_dict(onnx_state(net, resolve_model(cfg.init_checkpoint)[1], cfg.init_member))


def test_a_shipped_onnx_model_can_teach():
    """An exported classifier (here the shipped `fast`) works as a distillation teacher: its probabilities in
    PyTorch match ONNX Runtime's on the same crops, and a teacher with other classes is refused."""
    from openfer.train.loop import Teacher
    from openfer.zoo.registry import model_path

    spec = get_spec("fast")
    teacher = Teacher([str(model_path(spec))], list(CANONICAL8), torch.device("cpu"))
    faces = np.random.default_rng(1).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    x = (torch.from_numpy(faces.astype(np.float32))[:, None] / 255.0 - 0.5) / 0.5
    p = teacher.probs(x, {"device_type": "cpu", "enabled": False}).numpy()
    np.testing.assert_allclose(p, OnnxClassifier(spec, threads=1).predict_proba(faces), atol=1e-4)
    # a 96 px student batch reaches this 48 px teacher resized to 48 px: close to its answers on the 48 px faces
    # (0.07 here, resampling blur), while the network run on 96 px as it is answers very differently (0.5)
    smooth = torch.nn.functional.interpolate(torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1,
                                             size=(48, 48), mode="bilinear", align_corners=False)
    x96 = torch.nn.functional.interpolate(smooth, size=(96, 96), mode="nearest")
    off = {"device_type": "cpu", "enabled": False}
    np.testing.assert_allclose(teacher.probs(x96, off).numpy(), teacher.probs(smooth, off).numpy(), atol=0.12)
    with pytest.raises(ValueError, match="the student needs"):
        Teacher([str(model_path(get_spec("fer2013")))], list(CANONICAL8), torch.device("cpu"))


def test_clean_teacher_targets_are_computed_once_and_reach_the_targets(tmp_path):
    """kd_targets = "clean": a registered model teaches through ONNX Runtime on the un-augmented faces; the
    probabilities are cached for a resumed run, and a teacher with other classes is refused."""
    from openfer.train.loop import clean_teacher_probs

    faces = np.random.default_rng(2).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = clean_teacher_probs(["fast"], list(CANONICAL8), faces, tmp_path)
    np.testing.assert_allclose(probs, OnnxClassifier(get_spec("fast"), threads=1).predict_proba(faces), atol=1e-5)
    with np.load(tmp_path / "teacher_probs.npz") as d:
        np.testing.assert_array_equal(d["probs"], probs)
    with np.load(tmp_path / "teacher_probs.npz") as d:
        np.savez(tmp_path / "teacher_probs.npz", probs=np.full_like(probs, 0.125), teachers=d["teachers"],
                 faces=d["faces"])
    assert np.allclose(clean_teacher_probs(["fast"], list(CANONICAL8), faces, tmp_path), 0.125)  # the cache is read
    other = faces[::-1].copy()  # other faces, same count: recomputed
    np.testing.assert_allclose(clean_teacher_probs(["fast"], list(CANONICAL8), other, tmp_path), probs[::-1],
                               atol=1e-5)
    both = clean_teacher_probs(["fast", "default"], list(CANONICAL8), faces, tmp_path)  # another list: recomputed
    np.testing.assert_allclose(both, (probs + OnnxClassifier(get_spec("default"), threads=1).predict_proba(faces)) / 2,
                               atol=1e-5)
    with pytest.raises(ValueError, match="the student needs"):
        clean_teacher_probs(["fer2013"], list(CANONICAL8), faces, tmp_path / "x")
    with pytest.raises(ValueError, match="kd_targets"):
        train(TrainConfig(kd_weight=0.5, teachers=["fast"], kd_targets="noisy"), tmp_path / "bad",
              make_npz(tmp_path / "toy.npz"))


@pytest.mark.slow
def test_a_clean_teacher_pulls_the_student_towards_its_answers(tmp_path):
    """Trained on the teacher's probabilities alone (kd_weight 1), a student learns the teacher's answers, not the
    labels: here a teacher that always answers class 3."""
    data = make_npz(tmp_path / "toy.npz")
    no_geometry = {"rotate_deg": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "erase_p": 0.0, "lowres_p": 0.0}
    base = dict(epochs=4, batch_size=16, lr=0.05, arch_kwargs={"width": 0.25}, val_fraction=0.25, threads=1,
                bf16=False, ema_decay=0.5, augment=no_geometry, label_smoothing=0.0)
    assert train(TrainConfig(**base), tmp_path / "teacher", data)["best_val_acc"] > 0.6
    ck = torch.load(tmp_path / "teacher" / "best.pt", weights_only=False)
    ck["ema"] = {k: v.clone() for k, v in ck["ema"].items()}
    head = [k for k in ck["ema"] if k.endswith("bias") and ck["ema"][k].shape == (8,)][-1]
    ck["ema"][head][:] = torch.tensor([0, 0, 0, 50.0, 0, 0, 0, 0])  # overwhelms every face's evidence
    torch.save(ck, tmp_path / "always3.pt")
    student = TrainConfig(teachers=[str(tmp_path / "always3.pt")], kd_weight=1.0, kd_targets="clean", **base)
    s = train(student, tmp_path / "student", data)
    assert (tmp_path / "student" / "teacher_probs.npz").exists()
    assert s["best_val_acc"] < 0.4  # the labels are learnable (the teacher itself reads them), the student ignores them


@pytest.mark.slow
def test_cover_smoothing_moves_a_covered_face_s_target_to_the_prior(tmp_path):
    """Every face covered and all of its target moved to the prior: the student learns the prior, not the labels
    it learns without (the base recipe reads the toy faces, see the clean-teacher test)."""
    data = make_npz(tmp_path / "toy.npz")
    no_geometry = {"rotate_deg": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "erase_p": 0.0, "lowres_p": 0.0}
    base = dict(epochs=4, batch_size=16, lr=0.05, arch_kwargs={"width": 0.25}, val_fraction=0.25, threads=1,
                bf16=False, ema_decay=0.5, label_smoothing=0.0)
    covered = {**no_geometry, "band_p": 1.0, "band_grey": [0.5, 0.5]}
    assert train(TrainConfig(augment=covered, **base), tmp_path / "labels", data)["best_val_acc"] > 0.5
    s = train(TrainConfig(augment=covered, cover_smoothing=1.0, **base), tmp_path / "prior", data)
    assert s["best_val_acc"] < 0.4


def test_match_prior_gives_a_shy_teacher_the_labels_class_shares():
    from openfer.train.loop import match_prior

    rng = np.random.default_rng(0)
    targets = np.eye(3)[rng.choice(3, 600, p=[0.5, 0.3, 0.2])]
    teacher = 0.8 * targets + 0.2 * np.array([0.6, 0.39, 0.01])  # names class 2 far less often than the labels
    teacher[:, 2] *= 0.2
    teacher /= teacher.sum(1, keepdims=True)
    fixed = match_prior(teacher, targets)
    np.testing.assert_allclose(fixed.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(fixed.mean(0), targets.mean(0), atol=0.01)  # was 0.10 for class 2, labels 0.22
    assert (fixed.argmax(1) == targets.argmax(1)).mean() >= (teacher.argmax(1) == targets.argmax(1)).mean()


def test_bf16_auto_follows_the_hardware(monkeypatch):
    """bf16 = "auto": on where it is fast (CUDA, a CPU with AMX), float32 on a CPU without AMX; explicit values win."""
    from openfer.train.loop import resolve_bf16

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_bf16("auto", cpu) is False and resolve_bf16("auto", cuda) is True
    assert resolve_bf16(True, cpu) is True and resolve_bf16(False, cuda) is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_bf16("auto", cpu) is True
    with pytest.raises(UsageError, match="bf16"):
        resolve_bf16("yes", cpu)
