"""openfer.classify.damage: the damage probe and its per-face temperature, as numbers and inside the shipped
`default-soft` (`default`'s classifier with default_damage.onnx attached)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort

import openfer
from openfer.classify.damage import BANDS, KINDS, attach_damage, bands, damaged, face_temperature, lose_detail, soften
from openfer.corrupt import CORRUPTIONS
from openfer.heads.export import head_only
from openfer.zoo.registry import damage_file, get_spec, model_path
from test_quantize import lfw_faces


def test_bands_are_the_training_augmentations():
    """The probe's bands repeat the training augmentation's (kept apart so inference needs no torch)."""
    from openfer.train.augment import BANDS as TRAINING_BANDS

    assert BANDS == TRAINING_BANDS


def test_synthetic_damage_covers_what_it_names():
    """Bands fill rows inside their span with one grey level and leave the rest; lost detail changes every crop;
    ``damaged`` gives the four kinds in KINDS order, the clean set untouched."""
    faces = lfw_faces(20)
    mouth = bands(faces, 0, ((0.58, 1.0),))
    changed = np.nonzero((mouth != faces).any(axis=(0, 2)))[0]
    assert changed.min() >= int((0.58 - 0.04) * 48) and changed.max() == 47
    assert all(len(np.unique(m[40, 6:42])) == 1 for m in mouth)  # one flat grey across the jaw
    assert (lose_detail(faces, 0) != faces).any(axis=(1, 2)).all()
    sets = damaged(faces, 3)
    assert tuple(sets) == KINDS and sets["clean"] is faces
    assert all(v.shape == faces.shape and v.dtype == np.uint8 for v in sets.values())


def test_face_temperature_and_softening():
    """A clean face keeps its probabilities; a covered one gets its kind's temperature, keeps its argmax and loses
    confidence; rows still sum to 1."""
    temps = {"eyes": 1.2, "mouth": 2.0, "detail": 1.1}
    kinds = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0.5, 0, 0.5, 0]], float)
    np.testing.assert_allclose(face_temperature(kinds, temps), [1.0, 2.0, 1.5])
    probs = np.tile([[0.7, 0.2, 0.1]], (3, 1))
    out = soften(probs, kinds, temps)
    np.testing.assert_allclose(out[0], probs[0], atol=1e-9)
    np.testing.assert_allclose(out.sum(1), 1, atol=1e-9)
    assert (out.argmax(1) == 0).all() and out[1, 0] < out[2, 0] < out[0, 0]
    np.testing.assert_allclose(out[1], np.sqrt(probs[1]) / np.sqrt(probs[1]).sum())


def test_attached_probe_computes_the_softening_in_the_graph(tmp_path):
    """attach_damage on `fast-v1` with a probe fitted on its features of LFW faces: the file's probabilities equal
    ``soften`` of the base's probabilities and the probe's kinds; the argmax is the base's; the metadata says
    which temperatures it holds; a probe with every temperature 1 changes nothing."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    base = openfer.load_classifier("fast-v1", threads=1)
    faces = lfw_faces(40)
    probs, feats = base.predict_features(faces)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500)).fit(feats, np.arange(40) % 4)
    base_model = onnx.load(str(model_path(get_spec("fast-v1"))))
    for temps in ({"eyes": 1.3, "mouth": 1.8, "detail": 1.1}, {"eyes": 1.0, "mouth": 1.0, "detail": 1.0}):
        probe = head_only(pipe, KINDS, {"temperatures": json.dumps(temps)}, input_name="features")
        model = attach_damage(base_model, probe, len(base.classes))
        assert [o.name for o in model.graph.output] == ["probabilities"]
        assert json.loads({p.key: p.value for p in model.metadata_props}["damage"])["temperatures"] == temps
        onnx.save(model, str(tmp_path / "damaged.onnx"))
        got = openfer.load_classifier(str(tmp_path / "damaged.onnx"), threads=1).predict_proba(faces)
        np.testing.assert_allclose(got, soften(probs, pipe.predict_proba(feats), temps), atol=1e-5)
        assert (got.argmax(1) == probs.argmax(1)).all()
    np.testing.assert_allclose(got, probs, atol=1e-5)


def test_default_is_softer_on_masked_faces_and_the_same_on_clear_ones():
    """The shipped probe reads a drawn surgical mask as "mouth" and clear faces not so, so `default-soft` answers
    masked faces less surely than `default` (its classifier without the probe) and clear ones about as surely,
    always with the same top class."""
    faces = lfw_faces(60)
    masked = CORRUPTIONS["mask"](faces)
    spec = get_spec("default-soft")
    base = openfer.load_classifier("default", threads=1)
    probe = ort.InferenceSession(str(damage_file(spec)), providers=["CPUExecutionProvider"])
    kinds = {name: probe.run(None, {"features": base.predict_features(x)[1]})[0] for name, x in
             (("clear", faces), ("masked", masked))}
    assert kinds["masked"][:, KINDS.index("mouth")].mean() > 0.8
    assert kinds["clear"][:, KINDS.index("mouth")].mean() < 0.1
    new = openfer.load_classifier("default-soft", threads=1)
    for x, lo, hi in ((faces, 0.0, 0.03), (masked, 0.05, 1.0)):
        p_new, p_old = new.predict_proba(x), base.predict_proba(x)
        assert (p_new.argmax(1) == p_old.argmax(1)).all()
        drop = (p_old.max(1) - p_new.max(1)).mean()
        assert lo <= drop <= hi, drop


def test_default_soft_declares_its_probe():
    """The registered file: the probe is hash-pinned and the composed classifier's metadata names its temperatures;
    `default` has none."""
    assert "damage" not in {p.key for p in onnx.load(str(model_path(get_spec("default")))).metadata_props}
    meta = {p.key: p.value for p in onnx.load(str(model_path(get_spec("default-soft")))).metadata_props}
    damage = json.loads(meta["damage"])
    assert damage["kinds"] == list(KINDS) and set(damage["temperatures"]) == set(KINDS[1:])
    assert all(1.0 <= t <= 2.0 for t in damage["temperatures"].values())
