"""Ensembles of exported classifiers (`openfer ensemble x.onnx a.onnx b.onnx`, `openfer.train.combine`): no PyTorch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from openfer.classify import OnnxClassifier
from openfer.classify.features import metadata_of
from openfer.cli import app
from openfer.datasets import FaceSet, stratified_split
from openfer.labels import CANONICAL8
from openfer.train.combine import combine_onnx, metadata, network_count
from openfer.zoo.registry import get_spec, model_path, spec_from_onnx

from test_quantize import lfw_faces


def run(path, pixels) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"faces": pixels.astype(np.float32)[:, None]})[0]


@pytest.fixture(scope="module")
def faces_and_labels():
    """100 LFW faces labelled by the `fast` model's answers flipped on every third face: a labelled set on which
    the two shipped 8-class models disagree often enough to matter."""
    faces = lfw_faces(100)
    labels = run(model_path(get_spec("fast-v1")), faces).argmax(1)
    labels[::3] = run(model_path(get_spec("default-v1")), faces[::3]).argsort(1)[:, -2]
    return faces, labels


def test_merged_graph_is_the_weighted_geometric_mean_of_its_members(tmp_path, faces_and_labels):
    faces, labels = faces_and_labels
    default, fast = model_path(get_spec("default-v1")), model_path(get_spec("fast-v1"))
    val = FaceSet(faces, labels, np.eye(8, dtype=np.float32)[labels], CANONICAL8)
    out = tmp_path / "merged.onnx"
    report = combine_onnx([default, fast], val, out, {"protocol": "ferplus", "split_seed": 0, "val_fraction": 0.1})
    k = network_count(default)  # the shipped default is itself an ensemble
    assert k == len(json.loads(metadata(default)["members"])) >= 3 and network_count(fast) == 1
    assert [m["weight"] for m in report["members"]] == [float(k), 1.0]
    assert report["max_abs_diff"] < 1e-5 and report["n_val"] == 100
    # recompute independently: members run on their own, log-probabilities weighted k:1, re-tempered
    t = report["temperature"]
    logit = (k * np.log(run(default, faces)) + np.log(run(fast, faces))) / (k + 1) / t
    want = np.exp(logit - logit.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(run(out, faces), want, atol=1e-5)
    # the temperature minimises validation NLL: nudging it either way does not help
    nll = lambda tt: float(-np.log(np.take_along_axis(  # noqa: E731
        np.exp(logit * t / tt) / np.exp(logit * t / tt).sum(1, keepdims=True), labels[:, None], 1)).mean())
    assert nll(t) <= min(nll(t * 1.2), nll(t / 1.2)) + 1e-6
    assert report["val_acc"] == pytest.approx(float((want.argmax(1) == labels).mean()))
    meta = metadata(out)
    assert json.loads(meta["classes"]) == list(CANONICAL8) and meta["arch"] == "ensemble"
    assert len(json.loads(meta["members"])) == k + 1 and meta["protocol"] == "ferplus" and meta["split_seed"] == "0"
    assert network_count(out) == k + 1, "a merged file counts all its networks when merged again"
    p = OnnxClassifier(get_spec("default"), path=out, threads=1).predict_proba(faces[:5])
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)


def _with_meta(src, dst, **changes):
    m = onnx.load(str(src))
    for p in m.metadata_props:
        if p.key in changes:
            p.value = str(changes.pop(p.key))
    for k, v in changes.items():
        e = m.metadata_props.add()
        e.key, e.value = k, str(v)
    onnx.save(m, str(dst))
    return dst


def test_members_must_be_interchangeable_and_share_a_split(tmp_path, faces_and_labels):
    faces, labels = faces_and_labels
    val = FaceSet(faces, labels, np.eye(8, dtype=np.float32)[labels], CANONICAL8)
    fast = model_path(get_spec("fast-v1"))
    with pytest.raises(ValueError, match="classes"):
        combine_onnx([fast, model_path(get_spec("fer2013"))], val, tmp_path / "x.onnx")
    a = _with_meta(fast, tmp_path / "a.onnx", protocol="ferplus", split_seed=0, val_fraction=0.1)
    b = _with_meta(fast, tmp_path / "b.onnx", protocol="ferplus", split_seed=1, val_fraction=0.1)
    with pytest.raises(ValueError, match="different validation splits"):
        combine_onnx([a, b], val, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="at least two"):
        combine_onnx([a], val, tmp_path / "x.onnx")
    stranger = _with_meta(fast, tmp_path / "s.onnx", producer="someone")
    with pytest.raises(ValueError, match="not an openfer classifier"):
        combine_onnx([a, stranger], val, tmp_path / "x.onnx")
    report = combine_onnx([a, fast], val, tmp_path / "ok.onnx")
    assert report["warnings"] and "do not record" in report["warnings"][0]
    assert not (tmp_path / "x.onnx").exists(), "a refused merge writes nothing"


def test_cli_merges_exported_models_on_the_validation_split(tmp_path, faces_and_labels):
    faces, labels = faces_and_labels
    votes = np.zeros((len(faces), 10), np.uint8)
    votes[np.arange(len(faces)), labels] = 9
    n = len(faces)
    data = tmp_path / "toy.npz"
    np.savez(data, pixels=faces, emotion=np.zeros(n, np.int8), usage=np.array(["Training"] * n), row=np.arange(n),
             ferplus_votes=votes, ferplus_name=np.array([f"fer{i:07d}.png" for i in range(n)]),
             lossless=np.ones(n, bool))
    fast = shutil.copy(model_path(get_spec("fast-v1")), tmp_path / "fast.onnx")
    default = model_path(get_spec("default"))
    out = tmp_path / "ens.onnx"
    r = CliRunner().invoke(app, ["ensemble", str(out), str(default), str(fast), "--data", str(data)])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout[r.stdout.index("{"):])
    n_val = len(stratified_split(labels, 0.1, 0)[1])  # the split every shipped model was chosen on
    assert report["n_val"] == n_val and len(report["sha256"]) == 64 and out.exists()
    bad = CliRunner().invoke(app, ["ensemble", str(tmp_path / "e.onnx"), str(default), str(tmp_path / "nope.onnx"),
                                   "--data", str(data)])
    assert bad.exit_code == 2 and "nope.onnx" in bad.output
    mixed = CliRunner().invoke(app, ["ensemble", str(tmp_path / "e.pt"), str(default), "--data", str(data)])
    assert mixed.exit_code == 2 and ".onnx" in mixed.output


def test_half_weights_halve_the_file_and_keep_the_answers(tmp_path, faces_and_labels):
    faces, labels = faces_and_labels
    val = FaceSet(faces, labels, np.eye(8, dtype=np.float32)[labels], CANONICAL8)
    fast = model_path(get_spec("fast-v1"))  # float32 weights (the shipped ensembles are already float16)
    members = [fast, shutil.copy(fast, tmp_path / "fast2.onnx")]
    full = combine_onnx(members, val, tmp_path / "fp32.onnx")
    half = combine_onnx(members, val, tmp_path / "fp16.onnx", half=True)
    assert half["bytes"] < 0.55 * full["bytes"]
    assert metadata(tmp_path / "fp16.onnx")["weights"] == "float16"
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in onnx.load(str(tmp_path / "fp16.onnx")).graph.initializer)
    p32, p16 = run(tmp_path / "fp32.onnx", faces), run(tmp_path / "fp16.onnx", faces)
    assert 0 < np.abs(p32 - p16).max() < 5e-3, "float16 storage rounds the weights a little, no more"
    assert (p32.argmax(1) == p16.argmax(1)).mean() >= 0.98
    assert half["file_val_acc"] == pytest.approx(float((p16.argmax(1) == labels).mean()))


def test_merged_file_declares_the_members_weighted_prior(tmp_path, faces_and_labels):
    """A merge of models that declare training priors declares their weighted mean (so `--prior balanced` and the
    label rule work on it); if one member declares none, neither does the merge. Members' pretrained sources are
    carried over."""
    faces, labels = faces_and_labels
    val = FaceSet(faces, labels, np.eye(8, dtype=np.float32)[labels], CANONICAL8)
    default, fast = model_path(get_spec("default-v1")), model_path(get_spec("fast-v1"))
    k = network_count(default)
    a, b = np.full(8, 1 / 8), np.array([0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.03, 0.02])
    ma = _with_meta(default, tmp_path / "a.onnx", train_prior=json.dumps(a.tolist()), class_prior="")
    source = {"source": "faceres", "sha256": {"faceres.bin": "ab" * 32}}
    mb = _with_meta(fast, tmp_path / "b.onnx", class_prior=json.dumps(b.tolist()), train_prior="",
                    pretrained=json.dumps(source))
    combine_onnx([ma, mb], val, tmp_path / "ab.onnx")
    got = json.loads(metadata(tmp_path / "ab.onnx")["train_prior"])
    np.testing.assert_allclose(got, (k * a + b) / (k + 1), atol=1e-6)
    assert json.loads(metadata(tmp_path / "ab.onnx")["pretrained"]) == [source]  # a pretrained member's source
    assert OnnxClassifier(spec_from_onnx(tmp_path / "ab.onnx"), path=tmp_path / "ab.onnx", threads=1,
                          prior="balanced").predict_proba(faces[:3]).shape == (3, 8)
    mc = _with_meta(fast, tmp_path / "c.onnx", class_prior="", train_prior="")
    combine_onnx([ma, mc], val, tmp_path / "ac.onnx")
    assert "train_prior" not in metadata(tmp_path / "ac.onnx")
    # shipped files made before openfer wrote priors into them have their registered prior (found by SHA-256)
    combine_onnx([model_path(get_spec("default-int8-v1")), fast], val, tmp_path / "shipped.onnx")
    np.testing.assert_allclose(json.loads(metadata(tmp_path / "shipped.onnx")["train_prior"]),
                               get_spec("default-int8-v1").train_prior, atol=1e-6)


def test_a_member_cut_out_of_a_merged_file_and_a_recipe_that_rebuilds_it(tmp_path):
    """openfer.classify.merge: the member m1_ of a merged file answers as the file it came from did, and a recipe
    naming the members (one of them cut out of a merged file) rebuilds the merged file's answers and metadata."""
    from openfer.classify.merge import compose_merged, half_weights, member_graph, merge_graph

    base, fast = (onnx.load(str(model_path(get_spec(n)))) for n in ("default-int8-v1", "fast-v1"))
    merged = half_weights(merge_graph([base, fast], [3.0, 1.0], 1.1, [(0.5,) * 8, (0.25,) * 8], {"note": "x"}))
    assert json.loads(metadata_of(merged)["train_prior"]) == pytest.approx([0.125] * 8, abs=1e-6)
    onnx.save(merged, str(tmp_path / "merged.onnx"))
    faces = np.random.default_rng(0).uniform(0, 255, (6, 48, 48))
    onnx.save(member_graph(merged, "m1_"), str(tmp_path / "member.onnx"))
    np.testing.assert_allclose(run(tmp_path / "member.onnx", faces), run(model_path(get_spec("fast-v1")), faces),
                               atol=2e-3)  # fast-v1's weights stored as float16 in the merged file
    with pytest.raises(ValueError, match="m0_, m1_"):
        member_graph(merged, "m2_")
    files = {"default-int8-v1": base, "merged": merged}
    recipe = {"members": [{"model": "default-int8-v1"}, {"model": "merged", "tag": "m1_"}], "weights": [3, 1],
              "temperature": 1.1, "half_weights": True, "metadata": metadata_of(merged)}
    again = compose_merged(recipe, files.__getitem__)
    onnx.save(again, str(tmp_path / "again.onnx"))
    np.testing.assert_allclose(run(tmp_path / "again.onnx", faces), run(tmp_path / "merged.onnx", faces), atol=1e-6)
    assert metadata_of(again) == metadata_of(merged)


def test_a_recipe_refuses_a_member_replaced_under_its_name(monkeypatch):
    """large-v2 is merged from large's MobileNet: a `large` with another file must not silently change it."""
    import dataclasses

    import openfer.zoo.registry as reg

    spec = reg.get_spec("large-v2")
    recipe = json.loads(reg.shipped_file(spec).read_text())
    name = recipe["members"][-1]["model"]
    replaced = dataclasses.replace(reg.get_spec(name), sha256="0" * 64)
    real = reg.get_spec
    monkeypatch.setattr(reg, "get_spec", lambda n: replaced if n == name else real(n))
    with pytest.raises(ValueError, match=f"merged from {name}"):
        reg.model_path(spec)


def test_a_member_cut_out_of_large_v2_merges_back_into_it(tmp_path):
    """scripts/extract_member.py: large-v2's faceres MobileNet (tag m1_) as a classifier of its own, with the prior
    left over from the merged file's; merged again with default-int8-v1's file (weights 3 : 1, float16 as
    large-v2 stores them) it gives large-v2's answers and declared prior."""
    import importlib.util
    import sys
    from pathlib import Path

    from openfer.classify.merge import half_weights, merge_graph
    from openfer.zoo.registry import declared_prior, file_prior

    spec = importlib.util.spec_from_file_location("extract_member",
                                                  Path(__file__).parents[1] / "scripts" / "extract_member.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    large, base = model_path(get_spec("large-v2")), model_path(get_spec("default-int8-v1"))
    out = tmp_path / "member.onnx"
    argv = sys.argv
    sys.argv = ["extract_member.py", "large-v2", "m1_", str(out), "--arch", "faceres_mobilenet",
                "--network-size", "96", "--prior-besides", "default-int8-v1"]
    try:
        script.main()
    finally:
        sys.argv = argv
    meta = metadata(out)
    assert meta["arch"] == "faceres_mobilenet" and "faceres" in meta["pretrained"]
    merged = merge_graph([onnx.load(str(base)), onnx.load(str(out))], [3.0, 1.0],
                         float(metadata(large)["temperature"]),
                         [file_prior(base, metadata(base)), declared_prior(meta)])
    onnx.save(half_weights(merged), str(tmp_path / "again.onnx"))
    faces = np.random.default_rng(0).uniform(0, 255, (6, 48, 48))
    np.testing.assert_allclose(run(tmp_path / "again.onnx", faces), run(large, faces), atol=1e-5)
    np.testing.assert_allclose(json.loads(metadata(tmp_path / "again.onnx")["train_prior"]),
                               get_spec("large-v2").train_prior, atol=1e-5)


def test_dropping_the_mirror_pass_keeps_the_single_view_answer():
    """openfer.classify.mirror.drop_mirror: the mean of the mirrorless model's log-probabilities on a face and on its
    mirror image is the original model's answer (one network, float); a symmetric face gets the same answer from
    both (large's MobileNet, whose padding Slices must not be taken for the mirror); a graph without a mirror pass
    is refused."""
    from openfer.classify.merge import float_weights, member_graph
    from openfer.classify.mirror import drop_mirror

    faces = np.random.default_rng(0).uniform(0, 255, (5, 48, 48))
    sym = np.concatenate([faces[:, :, :24], faces[:, :, :24][:, :, ::-1]], 2)

    def probs(model, x):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"faces": x.astype(np.float32)[:, None]})[0]

    fast = onnx.load(str(model_path(get_spec("fast-v1"))))
    plain = drop_mirror(fast)
    assert len(plain.graph.node) < 0.6 * len(fast.graph.node)
    mean = np.log(probs(plain, faces)) + np.log(probs(plain, faces[:, :, ::-1].copy()))
    want = np.exp(mean / 2) / np.exp(mean / 2).sum(1, keepdims=True)
    np.testing.assert_allclose(want, probs(fast, faces), atol=1e-5)
    assert np.abs(probs(plain, faces) - probs(fast, faces)).max() > 1e-3  # not the same model
    mobilenet = float_weights(member_graph(onnx.load(str(model_path(get_spec("large")))), "m1_"))
    assert not any(i.data_type == onnx.TensorProto.FLOAT16 for i in mobilenet.graph.initializer)
    np.testing.assert_allclose(probs(drop_mirror(mobilenet), sym), probs(mobilenet, sym), atol=1e-5)
    with pytest.raises(ValueError, match="no mirror pass"):
        drop_mirror(plain)
    composed = onnx.load(str(model_path(get_spec("fast"))))  # passes joined by a Sum of features (a composed head)
    assert len(drop_mirror(composed).graph.node) < 0.6 * len(composed.graph.node)


def test_batched_mirror_pass_gives_the_same_answers_in_one_pass():
    """openfer.classify.mirror.batch_mirror: float graphs, whose passes meet at an Add of logits (`fast-v1`) or a Sum
    of features (`fast`, composed with its head), give the same probabilities and features from one pass per
    network on a stacked batch (fewer nodes); an int8 ensemble whose passes meet after quantized Gemms (`large`)
    keeps its features' shape; a graph without a mirror pass is refused."""
    from openfer.classify.features import with_features
    from openfer.classify.mirror import batch_mirror, drop_mirror

    x = {"faces": np.random.default_rng(1).uniform(0, 255, (6, 1, 48, 48)).astype(np.float32)}

    def run(model, n_classes):
        feats, _ = with_features(model, n_classes)
        return ort.InferenceSession(feats.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, x)

    for name in ("fast-v1", "fast", "large"):
        model = onnx.load(str(model_path(get_spec(name))))
        batched = batch_mirror(model)
        onnx.checker.check_model(batched)
        assert len(batched.graph.node) < 0.65 * len(model.graph.node)
        (p0, f0), (p1, f1) = run(model, 8), run(batched, 8)
        assert p1.shape == p0.shape and f1.shape == f0.shape
        if name != "large":  # int8: the mirror image now meets the face pass's activation scales
            np.testing.assert_allclose(p1, p0, atol=1e-6)
            np.testing.assert_allclose(f1, f0, atol=1e-5)
    with pytest.raises(ValueError, match="no mirror pass"):
        batch_mirror(drop_mirror(model))


def test_classifiers_run_one_pass_only_where_it_changes_nothing(tmp_path, monkeypatch):
    """openfer.classify.mirror.one_pass: a float model runs a cached batched copy (same probabilities), an int8 one
    its own file; the choice is made once per file content."""
    from openfer.classify import load_classifier
    from openfer.classify.mirror import one_pass
    from openfer.runtime import make_session

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fast, default = model_path(get_spec("fast")), model_path(get_spec("default"))
    assert one_pass(fast) != fast and one_pass(fast).parent == tmp_path / "openfer" / "models"
    assert one_pass(default) == default and one_pass(fast) == one_pass(fast)
    made = sorted((tmp_path / "openfer" / "models").glob("one-pass-*.onnx"))
    assert len(made) == 2 and sorted(m.stat().st_size == 0 for m in made) == [False, True]  # int8: "run the file"
    crops = np.random.default_rng(2).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain = OnnxClassifier(get_spec("fast"), session=make_session(fast, 1))
    np.testing.assert_allclose(load_classifier("fast", threads=1).predict_proba(crops),
                               plain.predict_proba(crops), atol=1e-6)


def test_drop_mirror_script_rewrites_an_int8_ensemble_and_its_metadata(tmp_path):
    """scripts/drop_mirror.py on default-int8-v1 (three int8 networks): every member's mirror pass goes (metadata
    ``arch:none``), each network still gives its features (3 x 256 for a refitted last layer), and a symmetric face
    gets the original file's answer (to two steps of the int8 output); the script refuses to overwrite its input."""
    import importlib.util
    import sys
    from pathlib import Path

    from openfer.classify.features import feature_groups

    path = Path(__file__).parents[1] / "scripts" / "drop_mirror.py"
    spec = importlib.util.spec_from_file_location("drop_mirror", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src, out = model_path(get_spec("default-int8-v1")), tmp_path / "nm.onnx"
    argv = sys.argv
    try:
        sys.argv = ["drop_mirror.py", str(src), str(out)]
        script.main()
        sys.argv = ["drop_mirror.py", str(out), str(out)]
        with pytest.raises(SystemExit, match="overwrite"):
            script.main()
    finally:
        sys.argv = argv
    meta = metadata(out)
    assert json.loads(meta["members"]) == ["fer_resnet:none"] * 3 and meta["tta"] == "none"
    groups = feature_groups(onnx.load(str(out)), 8)
    assert [(len(names), width) for names, width in groups] == [(1, 256)] * 3
    faces = np.random.default_rng(1).uniform(0, 255, (4, 48, 48))
    sym = np.concatenate([faces[:, :, :24], faces[:, :, :24][:, :, ::-1]], 2)
    np.testing.assert_allclose(run(out, sym), run(src, sym), atol=2.01 / 255)  # two steps of the int8 output
    assert np.abs(run(out, faces) - run(src, faces)).max() > 1e-3
