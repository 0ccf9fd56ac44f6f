"""openfer.classify.damage: the damage probe and its per-face temperature, as numbers and inside the shipped
`default-soft` (`default`'s classifier with default_damage.onnx attached)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import onnxruntime as ort

import openfer
from openfer.classify.damage import (BANDS, KINDS, attach_damage, bands, damage_kinds, damage_note, damaged,
                                     face_temperature, lose_detail, soften)
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
    ``soften`` of the base's probabilities and the probe's kinds, which are its second output; the argmax is the
    base's; the features are still the base's; the metadata says which temperatures it holds; a probe with every
    temperature 1 changes nothing; a second probe is refused."""
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
        assert [o.name for o in model.graph.output] == ["probabilities", "damage"]
        assert json.loads({p.key: p.value for p in model.metadata_props}["damage"])["temperatures"] == temps
        onnx.save(model, str(tmp_path / "damaged.onnx"))
        clf = openfer.load_classifier(str(tmp_path / "damaged.onnx"), threads=1)
        got, (_, feats_again) = clf.predict_outputs(faces), clf.predict_features(faces)
        np.testing.assert_allclose(got.damage, pipe.predict_proba(feats), atol=1e-5)
        np.testing.assert_allclose(got.probabilities, soften(probs, got.damage, temps), atol=1e-5)
        np.testing.assert_allclose(feats_again, feats, atol=1e-4)
        assert (got.probabilities.argmax(1) == probs.argmax(1)).all()
        assert clf.damage_kinds == damage_kinds(clf) == KINDS and got.features is None
    np.testing.assert_allclose(got.probabilities, probs, atol=1e-5)
    assert base.damage_kinds == () and base.predict_outputs(faces).damage is None
    with pytest.raises(ValueError, match="damage probe attached"):
        attach_damage(model, probe, len(base.classes))


def test_damage_note_names_the_likely_damage():
    """The words a label gets: the most likely kind of damage at probability 0.5 or more, nothing for a clean face
    or a model without a probe."""
    assert damage_note({"clean": 0.1, "eyes": 0.2, "mouth": 0.7, "detail": 0.0}) == "mouth covered"
    assert damage_note({"clean": 0.3, "eyes": 0.1, "mouth": 0.1, "detail": 0.5}) == "low detail"
    assert damage_note({"clean": 0.55, "eyes": 0.45, "mouth": 0.0, "detail": 0.0}) is None
    assert damage_note({}) is None and damage_kinds(object()) == ()


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


def test_faces_tables_and_pictures_say_what_is_damaged(tmp_path):
    """With `default-soft` every face carries the probe's kinds: a clear astronaut is "clean", the same photo with
    its mouth and jaw under a grey band "mouth"; the JSON record, the photo and video tables (``damage_<kind>``
    columns), the video summary and the session report (a person's share of covered frames) and the drawn label
    say so. `default` has no
    probe: no ``damage`` key and no such columns."""
    import csv

    from conftest import astronaut, mouth_covered_astronaut, save
    from openfer.pipeline import run_images
    from openfer.report.annotate import layout
    from openfer.report.html import people_table, session_html
    from openfer.report.session import summarize_rows
    from openfer.video import analyze_video
    from openfer.video.sources import ArraySource

    clear, covered = astronaut(), mouth_covered_astronaut()
    soft, plain = openfer.Analyzer(classifier="default-soft", threads=1), openfer.Analyzer(threads=1)
    (c,), (m,) = soft.analyze(clear), soft.analyze(covered)
    assert set(c.damage) == set(KINDS) and abs(sum(c.damage.values()) - 1) < 1e-4
    assert c.damage["clean"] > 0.5 and m.damage["mouth"] > 0.5, (c.damage, m.damage)
    assert m.to_dict()["damage"]["mouth"] > 0.5 and "damage" not in plain.analyze(covered)[0].to_dict()
    assert layout(covered.shape, [m])[0].text.endswith("(mouth covered)")
    assert "(" not in layout(clear.shape, [c])[0].text

    files = [save(tmp_path / "clear.png", clear), save(tmp_path / "covered.png", covered)]
    for analyzer, name in ((soft, "soft.csv"), (plain, "plain.csv")):
        run_images(analyzer, files, csv_path=str(tmp_path / name))
    rows = list(csv.DictReader(open(tmp_path / "soft.csv")))
    assert [float(r["damage_mouth"]) > 0.5 for r in rows] == [False, True]
    assert not any(k.startswith("damage_") for k in next(csv.DictReader(open(tmp_path / "plain.csv"))))

    df = analyze_video(ArraySource([clear] * 4 + [covered] * 4, fps=5), soft, summary_path=tmp_path / "s.json")
    assert (df["damage_mouth"] > 0.5).tolist() == [False] * 4 + [True] * 4
    (track,) = json.loads((tmp_path / "s.json").read_text())["tracks"]
    share = track["damage_share"]
    assert share["mouth covered"] > 0.3 and share["clean"] > 0.3 and abs(sum(share.values()) - 1) < 1e-3, share
    assert track["stats"]["damage_mouth"]["max"] > 0.5
    (person,) = summarize_rows(df).people  # the session report, from the same rows
    assert person.damage["mouth covered"] == share["mouth covered"] and person.damage["clean"] == share["clean"]
    assert f"mouth covered {100 * share['mouth covered']:.0f} %" in session_html(summarize_rows(df), df)
    assert "damage_share_mouth_covered" in people_table(summarize_rows(df))[0]
    assert summarize_rows(analyze_video(ArraySource([covered] * 4, fps=5), plain)).people[0].damage is None


def test_cli_says_what_is_damaged(tmp_path):
    """`openfer analyze --model default-soft`: the summary on stderr names the covered mouth, the JSON Lines face
    has its ``damage`` and the CSV its ``damage_<kind>`` columns."""
    import csv

    from typer.testing import CliRunner

    from conftest import mouth_covered_astronaut, save
    from openfer.cli import app

    photo = save(tmp_path / "covered.png", mouth_covered_astronaut())
    res = CliRunner().invoke(app, ["analyze", str(photo), "--model", "default-soft", "--jsonl",
                                   str(tmp_path / "r.jsonl"), "--csv", str(tmp_path / "r.csv")])
    assert res.exit_code == 0, res.output
    assert "(mouth covered)" in " ".join(res.stderr.split()), res.stderr
    (face,) = json.loads((tmp_path / "r.jsonl").read_text())["faces"]
    (row,) = csv.DictReader(open(tmp_path / "r.csv"))
    assert face["damage"]["mouth"] > 0.5 and float(row["damage_mouth"]) == pytest.approx(face["damage"]["mouth"],
                                                                                        abs=1e-4)
