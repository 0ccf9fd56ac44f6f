"""faceres converter (tfjs weights -> PyTorch MobileNet-v1), batch-norm re-inflation, balanced objective, and a tiny
fine-tuning run from generated faceres-format weights. The real-file checks skip without ../shared."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the faceres converter needs the [train] extra (PyTorch)")

from faceres_helpers import random_faceres, reference_embedding, write_tfjs  # noqa: E402

from openfer.train import faceres  # noqa: E402
from openfer.train.faceres import BLOCKS, FaceresMobileNet, load_faceres, read_tfjs_weights  # noqa: E402
from openfer.evaluate import classification_metrics  # noqa: E402
from openfer.labels import CANONICAL8  # noqa: E402
from openfer.train.loop import TrainConfig, class_prior, prior_offset, train, with_offset  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "models" / "faceres"
MUXSPACE = SHARED / "data" / "muxspace"


def test_read_tfjs_weights_decodes_float16_uint8_int32_across_shards(tmp_path):
    rng = np.random.default_rng(1)
    weights = {"a/kernel": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
               "b/bias": rng.uniform(-1, 1, 7).astype(np.float32),
               "c/idx": np.array([1, 2], np.int32),
               "d/scalar": np.float32(6.0).reshape(())}
    path = write_tfjs(tmp_path, weights, quant={"b/bias": "uint8"}, shards=3)
    got = read_tfjs_weights(path)
    assert list(got) == list(weights)
    np.testing.assert_array_equal(got["a/kernel"], weights["a/kernel"].astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(got["b/bias"], weights["b/bias"], atol=2 / 255)  # 8-bit affine steps
    assert not np.array_equal(got["b/bias"], weights["b/bias"])  # really dequantised, not passed through
    assert got["c/idx"].dtype == np.int32 and got["c/idx"].tolist() == [1, 2]
    assert got["d/scalar"].shape == () and float(got["d/scalar"]) == 6.0
    # a manifest that promises more bytes than the shards hold is an error, not garbage weights
    (tmp_path / "group1-shard3of3.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="past the end"):
        read_tfjs_weights(path)


@pytest.mark.parametrize("in_chans", [3, 1])
def test_converted_network_matches_tensorflow_semantics(tmp_path, in_chans):
    """Kernel layouts, folded scales, ReLU6 and TF's asymmetric SAME padding: the PyTorch network equals an
    independent NumPy recomputation of the frozen graph (grey input = grey on R, G and B)."""
    w = random_faceres()
    write_tfjs(tmp_path, w, strides=[s for _, s in BLOCKS])
    net = FaceresMobileNet(8, in_chans=in_chans)
    record = load_faceres(net, tmp_path)
    assert record["sha256"]["faceres.json"] != faceres.SHA256["faceres.json"]  # the file used is recorded
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (2, 34, 34, 3)).astype(np.float32)  # even: pad 0/1 at stride 2; 17, 9, 5: odd
    if in_chans == 1:
        img = np.repeat(img.mean(-1, keepdims=True), 3, axis=-1)
    want = reference_embedding(w, img).transpose(0, 3, 1, 2)  # [N, 1024, 2, 2]
    assert want.std() > 0.05, "the reference must not be all-dead ReLUs"
    x = torch.from_numpy(img[..., :in_chans].transpose(0, 3, 1, 2).copy()) / 127.5 - 1
    with torch.no_grad():
        net.eval()
        got = net.features((x + 1) * 127.5).double().numpy()
        pooled = net.embed(x).double().numpy()
    # tight: a one-pixel shift of the stride-2 padding (PyTorch's symmetric padding) changes values by ~1e-4
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(pooled, want.mean((2, 3)), rtol=1e-5, atol=1e-6)


def test_load_refuses_wrong_layout(tmp_path):
    w = random_faceres()
    write_tfjs(tmp_path, w, strides=[1] * len(BLOCKS))
    with pytest.raises(ValueError, match="strides"):
        load_faceres(FaceresMobileNet(8), tmp_path)
    with pytest.raises(FileNotFoundError, match="OPENFER_FACERES"):
        load_faceres(FaceresMobileNet(8), tmp_path / "missing")


def test_reinflated_batchnorm_keeps_the_function_and_normalises_training_batches(tmp_path):
    w = random_faceres()
    write_tfjs(tmp_path, w, strides=[s for _, s in BLOCKS])
    net = FaceresMobileNet(8, in_chans=1)
    load_faceres(net, tmp_path)
    x = torch.rand(16, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        before = net.eval().embed(x)
        faceres.reinflate_batchnorm(net, [x[:8], x[8:]])
        after = net.eval().embed(x)
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
        # in training mode the batch statistics now match the stored ones: the function barely moves
        train_mode = net.train().embed(x)
    assert (train_mode - before).abs().max() < 0.05 * before.abs().max() + 1e-3
    bn = net.features[0][1]
    assert bn.running_var.mean() > 0 and not torch.allclose(bn.weight, torch.ones_like(bn.weight))


def test_logit_adjustment_offsets_and_uar():
    targets = np.array([[1, 0, 0]] * 8 + [[0, 1, 0]] * 2 + [[0, 0.5, 0.5]] * 2, np.float32)
    prior = class_prior(targets)
    np.testing.assert_allclose(prior, [8 / 12, 3 / 12, 1 / 12], rtol=1e-6)
    la = TrainConfig(balance="logit_adjust", balance_tau=0.5)
    np.testing.assert_allclose(prior_offset(la, prior).numpy(), 0.5 * np.log(prior), rtol=1e-6)
    assert prior_offset(TrainConfig(), prior).abs().sum() == 0
    with pytest.raises(ValueError, match="logit_adjust"):
        prior_offset(TrainConfig(balance="focal"), prior)
    # the saved head outputs training-prior logits: f + offset
    net = FaceresMobileNet(3)
    offset = torch.tensor([1.0, -2.0, 0.5])
    state = with_offset(net, net.state_dict(), offset)
    torch.testing.assert_close(state["head.1.bias"], net.state_dict()["head.1.bias"] + offset)
    # UAR: mean recall over present classes; a majority-class guesser scores 1/k, not its accuracy
    y = np.array([0] * 8 + [1] * 2 + [2] * 2)
    uar = lambda pred, k: classification_metrics(y, pred, tuple("abcd"[:k]))["uar"]  # noqa: E731 - what train() logs
    assert uar(np.zeros_like(y), 3) == pytest.approx(1 / 3)
    assert uar(np.array([0] * 6 + [1] * 2 + [1] * 2 + [2] * 2), 4) == pytest.approx((6 / 8 + 1 + 1) / 3)


@pytest.mark.slow
def test_tiny_faceres_finetuning_run_with_balanced_objective(tmp_path):
    """End to end: generated faceres weights -> fine-tuned on an imbalanced toy set with logit adjustment ->
    best.pt chosen on UAR, training-prior head, export with prior and source in the ONNX metadata."""
    from test_train import make_npz

    from openfer.train.combine import metadata
    from openfer.train.export import export_onnx

    write_tfjs(tmp_path, random_faceres(), strides=[s for _, s in BLOCKS])
    data = make_npz(tmp_path / "toy.npz", n_train=192, n_test=16)
    no_geometry = {"rotate_deg": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "erase_p": 0.0, "lowres_p": 0.0,
                   "band_p": 0.3, "noise_p": 0.3, "blur_p": 0.3}
    cfg = TrainConfig(arch="faceres_mobilenet", pretrained=str(tmp_path), input_size=32, epochs=4, batch_size=16,
                      optimizer="adamw", lr=3e-3, backbone_lr_mult=0.3, weight_decay=0.01, balance="logit_adjust",
                      select_metric="uar", val_fraction=0.25, threads=1, bf16=False, ema_decay=0.5,
                      augment=no_geometry)
    s = train(cfg, tmp_path / "run", data)
    assert s["best_val_uar"] > 0.6 and s["select_metric"] == "uar", s
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["pretrained"]["sha256"]["group1-shard1of1.bin"] and len(best["class_prior"]) == 8
    report = export_onnx(tmp_path / "run" / "best.pt", tmp_path / "m.onnx")
    assert report["max_abs_diff"] < 1e-4
    meta = metadata(tmp_path / "m.onnx")
    assert json.loads(meta["class_prior"]) == pytest.approx(best["class_prior"], abs=1e-5)
    assert "group1-shard1of1.bin" in json.loads(meta["pretrained"])["sha256"]


# --- the real faceres files (skip without ../shared) -----------------------------------------------------------

needs_real = pytest.mark.skipif(not (REAL / "faceres.json").is_file(),
                                reason=f"faceres weights not found at {REAL} (../shared/models/faceres)")


@needs_real
def test_real_faceres_files_are_the_published_ones():
    assert faceres.file_hashes(REAL) == faceres.SHA256
    assert faceres.graph_strides(REAL / "faceres.json") == [s for _, s in BLOCKS]


@needs_real
@pytest.mark.slow
@pytest.mark.skipif(not (MUXSPACE / "labels.csv").is_file(), reason=f"muxspace not found at {MUXSPACE}")
def test_real_faceres_descriptors_verify_lfw_identities():
    """The converted network's 1024-d descriptors tell same-person from different-person LFW pairs (ROC AUC;
    the full check in scripts/faceres_check.py measured 0.97 on 600 pairs), which random weights cannot."""
    x, files, same, diff = faceres.lfw_faces(MUXSPACE, 60, 112)
    net = FaceresMobileNet(8, in_chans=1)
    load_faceres(net, REAL)
    auc = faceres.pair_auc(net, x, files, same, diff)
    assert auc > 0.9, f"LFW verification AUC {auc:.3f}"
    assert faceres.pair_auc(FaceresMobileNet(8, in_chans=1), x, files, same, diff) < 0.75


def test_exported_faceres_network_runs_in_onnx_runtime_and_back_in_pytorch(tmp_path):
    """Export keeps TF padding (Pad) and ReLU6 (Clip); the ONNX->PyTorch interpreter behind Grad-CAM and ONNX
    distillation teachers runs them and matches ONNX Runtime."""
    import onnxruntime as ort

    from openfer.nn.onnx_torch import onnx_to_torch
    from openfer.train.export import export_onnx

    write_tfjs(tmp_path, random_faceres(), strides=[s for _, s in BLOCKS])
    net = FaceresMobileNet(8, in_chans=1)
    load_faceres(net, tmp_path)
    torch.save({"ema": net.state_dict(), "classes": ["c%d" % i for i in range(8)], "temperature": 1.0,
                "config": {"arch": "faceres_mobilenet", "arch_kwargs": {}, "input_size": 32, "tta": "flip"},
                "class_prior": [0.125] * 8}, tmp_path / "best.pt")
    for size in (32, 16):  # 16: the file takes 16 px faces and upsamples them to the network's 32 in the graph
        out = tmp_path / f"m{size}.onnx"
        report = export_onnx(tmp_path / "best.pt", out, input_size=size, half=size == 16)
        assert report["max_abs_diff"] < 1e-4
        if size == 16:  # float16-stored weights: about half the file, answers within rounding
            assert report["bytes"] < 0.6 * (tmp_path / "m32.onnx").stat().st_size
            assert 0 < report["half_max_abs_diff"] < 5e-3
        x = np.random.default_rng(3).uniform(0, 255, (3, 1, size, size)).astype(np.float32)
        p_ort = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"faces": x})[0]
        assert p_ort.std() > 1e-3, "the generated weights must give non-trivial probabilities"
        with torch.no_grad():
            logits = onnx_to_torch(out)(torch.from_numpy(x) / 127.5 - 1)
        np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), p_ort, atol=1e-5)
    with torch.no_grad():  # the upsampling in the graph is the one training used (to_input): same answers
        from openfer.train.loop import to_input
        faces = np.random.default_rng(4).integers(0, 256, (3, 16, 16)).astype(np.uint8)
        x32 = to_input(faces, 32) * 2 - 1
        want = torch.softmax((net.eval()(x32) + net(torch.flip(x32, dims=[3]))) / 2, 1)  # flip TTA, T = 1
    got = ort.InferenceSession(str(tmp_path / "m16.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"faces": faces[:, None].astype(np.float32)})[0]
    np.testing.assert_allclose(got, want.numpy(), atol=5e-3)  # m16 stores float16 weights


@pytest.mark.slow
def test_second_stage_from_a_checkpoint_with_a_photo_folder(tmp_path):
    """init_checkpoint resumes from a balanced run's balanced logits (its prior offset taken out of the head), and
    extra_train adds the person-disjoint train part of a photo folder as aligned 48 px crops (CenterFace finds
    the pasted astronaut faces; blank photos and excluded classes are dropped; val/test people stay out)."""
    from conftest import astronaut
    from test_crossdomain import write_photo_folder
    from test_train import make_npz

    from openfer.crossdomain import person_split
    from openfer.train.loop import concat_sets, init_from_checkpoint, photo_training_set

    data = make_npz(tmp_path / "toy.npz", n_train=96, n_test=8)
    la = TrainConfig(arch="fer_resnet", arch_kwargs={"width": 0.25}, epochs=1, batch_size=16, balance="logit_adjust",
                     val_fraction=0.25, threads=1, bf16=False)
    train(la, tmp_path / "stage1", data)
    best = torch.load(tmp_path / "stage1" / "best.pt", weights_only=False)
    from openfer.nn.archs import build

    net = build("fer_resnet", 8, width=0.25)
    record = init_from_checkpoint(net, str(tmp_path / "stage1" / "best.pt"))
    offset = prior_offset(la, np.asarray(best["class_prior"]))
    torch.testing.assert_close(net.state_dict()["head.3.bias"] + offset, best["ema"]["head.3.bias"])
    assert record["init_checkpoint"].endswith("best.pt")

    people = [f"person{i}" for i in range(30)]
    face = astronaut()[20:240, 130:320]
    rows = [(f"{p}.png", "happy" if i % 3 else "surprise", p) for i, p in enumerate(people)]
    rows += [("blank.png", "happy", "nobody"), ("fear.png", "fear", "person0")]
    images = {f: face for f, _, _ in rows if f not in ("blank.png",)}
    root = write_photo_folder(tmp_path / "photos", rows, images)
    got = photo_training_set(root, CANONICAL8, ["surprise"], tmp_path)
    in_train = [r for r in rows if person_split(r[2]) == "train" and r[1] != "surprise" and r[0] != "blank.png"]
    assert len(got) == len(in_train) > 0  # only train people, no surprise (excluded), no blank photo
    assert got.pixels.shape[1:] == (48, 48)
    assert sorted(got.labels.tolist()) == sorted(CANONICAL8.index({"happy": "happiness"}.get(r[1], r[1]))
                                                 for r in in_train)
    assert (tmp_path / "detections-photos.npz").is_file()
    sharp = photo_training_set(root, CANONICAL8, ["surprise"], tmp_path, size=96)  # at a bigger network's size
    assert sharp.pixels.shape[1:] == (96, 96) and (sharp.labels == got.labels).all()
    joined = concat_sets(got, sharp)  # FER-sized crops join them at the larger size
    assert joined.pixels.shape == (2 * len(got), 96, 96) and (joined.labels[: len(got)] == got.labels).all()

    stage2 = TrainConfig(arch="fer_resnet", arch_kwargs={"width": 0.25}, epochs=1, batch_size=16,
                         balance="logit_adjust", val_fraction=0.25, threads=1, bf16=False,
                         init_checkpoint=str(tmp_path / "stage1" / "best.pt"), extra_train=[str(root)],
                         extra_exclude=["surprise"])
    s = train(stage2, tmp_path / "stage2", data)
    assert s["train_images"] == 72 + len(in_train)
    assert torch.load(tmp_path / "stage2" / "best.pt", weights_only=False)["pretrained"]["init_checkpoint"]

    # extra_sampling = "match_prior": the photos (happiness and surprise now) are drawn with the FER faces' shares
    # of those two classes, and the prior the balanced objective divides out is what the draws average to
    from openfer.train.loop import class_prior, split_dataset

    stage3 = replace(stage2, extra_exclude=[], extra_sampling="match_prior")
    s = train(stage3, tmp_path / "stage3", data)
    photos = photo_training_set(root, CANONICAL8, [], tmp_path, size=48)
    fer = split_dataset(stage3, data)[0]
    fer_prior = class_prior(fer.targets)
    photo_share = np.zeros(8)
    for c in set(photos.labels.tolist()):
        photo_share[c] = fer_prior[c]
    photo_share /= photo_share.sum()
    want = class_prior(((fer.targets.sum(0) + len(photos) * photo_share) / (len(fer) + len(photos)))[None])
    got = torch.load(tmp_path / "stage3" / "best.pt", weights_only=False)["class_prior"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert s["train_images"] == len(fer) + len(photos)

