"""Cross-domain photo sets: labels.csv reader, person-disjoint split, detection cache, scoring with misses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import astronaut, chelsea, save
from openfer.cli import app
from openfer.crossdomain import (
    NO_FACE, PhotoDetections, detect_photos, evaluate_photo_folder, evaluate_photos, load_photo_set, person_split,
    photo_crops, shared_data_path,
)
from openfer.types import Face
from openfer.zoo.registry import get_spec


def write_photo_folder(root, rows, images=None):
    """labels.csv (file, emotion, person) + one image per row (``images[file]`` or a flat grey picture)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["file,emotion,person"] + [f"images/{f},{e},{p}" for f, e, p in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    for f, _, _ in rows:
        save(root / "images" / f, (images or {}).get(f, np.full((64, 64, 3), 120, np.uint8)))
    return root


def test_person_split_is_stable_disjoint_and_about_a_fifth():
    names = [f"person_{i}" for i in range(2000)]
    first = [person_split(n) for n in names]
    assert first == [person_split(n) for n in names]
    assert set(first) == {"train", "val", "test"}
    assert 0.17 < first.count("test") / len(names) < 0.23 and 0.07 < first.count("val") / len(names) < 0.13


def test_load_photo_set_scores_common_classes_and_splits_by_person(tmp_path):
    people = [f"p{i}" for i in range(40)]
    rows = [(f"{p}_{k}.png", emo, p) for p in people for k, emo in enumerate(("happy", "neutral"))]
    rows += [("rare.png", "fear", "p0")]  # 1 fear image: left out, reported
    root = write_photo_folder(tmp_path / "set", rows)
    full = load_photo_set(root, min_images=5)
    assert full.classes == ("neutral", "happiness") and full.left_out == {"fear": 1}
    assert len(full) == 80 and full.split == "all"
    assert full.labels[:2].tolist() == [1, 0]  # happy -> happiness (index 1), neutral (0)
    test, train = load_photo_set(root, "test", min_images=5), load_photo_set(root, "train", min_images=5)
    val = load_photo_set(root, "val", min_images=5)
    assert len(test) + len(train) + len(val) == 80 and len(test) > 0 and len(train) > 0 and len(val) > 0
    assert not set(test.persons) & set(train.persons) and not set(val.persons) & (set(train.persons) | set(test.persons))
    assert all(person_split(p) == "test" for p in test.persons)
    with pytest.raises(ValueError, match="PublicTest"):
        load_photo_set(root, "PublicTest")
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        load_photo_set(tmp_path / "nowhere")


class CountingDetector:
    """Finds one fixed face in images whose mean is above 100; counts its calls."""

    def __init__(self, threshold=0.5):
        self.threshold = threshold
        self.calls = 0

    def detect(self, rgb):
        self.calls += 1
        if rgb.mean() <= 100:
            return []
        lm = np.array([[20, 25], [44, 25], [32, 35], [22, 46], [42, 46]], np.float32)
        return [Face(box=(8, 8, 56, 60), score=0.6, landmarks=lm), Face(box=(0, 0, 20, 20), score=0.9)]


def test_detect_photos_keeps_best_face_marks_misses_and_caches(tmp_path):
    rows = [("a.png", "happy", "a"), ("b.png", "neutral", "b"), ("c.png", "happy", "c")]
    dark = np.full((64, 64, 3), 30, np.uint8)
    root = write_photo_folder(tmp_path / "set", rows, {"b.png": dark})
    photos = load_photo_set(root, min_images=1)
    det = CountingDetector()
    cache = tmp_path / "cache" / "det.npz"
    d = detect_photos(photos, det, cache)
    assert d.found.tolist() == [True, False, True] and det.calls == 3
    assert d.scores[0] == pytest.approx(0.9) and d.boxes[0].tolist() == [0, 0, 20, 20]  # highest score wins
    assert np.isnan(d.boxes[1]).all() and d.face(1) is None and d.face(0).score == pytest.approx(0.9)
    again = detect_photos(photos, det, cache)
    assert det.calls == 3  # everything came from the cache
    np.testing.assert_array_equal(again.found, d.found)
    np.testing.assert_array_equal(again.landmarks, d.landmarks)
    other = CountingDetector(threshold=0.4)  # other settings: the cache does not apply
    detect_photos(photos, other, cache)
    assert other.calls == 3


class TableClassifier:
    """A fake 3-class classifier that returns fixed probability rows in order."""

    classes = ("neutral", "happiness", "fear")
    input_size = 48
    channels = 1
    spec = get_spec("default")

    def __init__(self, rows):
        self.rows = np.array(rows, np.float32)

    def predict_proba(self, crops):
        assert len(crops) == len(self.rows)
        return self.rows


def test_evaluate_photos_counts_misses_as_wrong(tmp_path):
    rows = [(f"{i}.png", emo, str(i)) for i, emo in enumerate(["happy", "happy", "neutral", "neutral", "happy"])]
    photos = load_photo_set(write_photo_folder(tmp_path / "set", rows), min_images=1)
    found = np.array([True, True, True, False, True])
    n = len(found)
    dets = PhotoDetections(found, np.zeros((n, 4), np.float32), found.astype(np.float32),
                           np.full((n, 5, 2), np.nan, np.float32))
    # detected rows 0, 1, 2, 4: happiness right; fear (not scored) top but happiness beats neutral -> right;
    # neutral row predicted happiness (wrong); happiness right
    clf = TableClassifier([[0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.3, 0.6, 0.1], [0.1, 0.9, 0.0]])
    r = evaluate_photos(clf, photos, dets, crops=np.zeros((4, 48, 48), np.uint8))
    assert r["n"] == 5 and r["detected"] == 4 and r["missed"] == 1
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["per_class_recall"] == pytest.approx({"neutral": 0.0, "happiness": 1.0})
    assert r["uar"] == pytest.approx(0.5)
    assert r["support"] == {"neutral": 2, "happiness": 3}
    assert r["confusion"]["classes"] == ["neutral", "happiness", NO_FACE]
    assert r["confusion"]["matrix"][0] == [0, 1, 1]  # one neutral called happiness, one never found
    det = r["detected_only"]
    assert det["n"] == 4 and det["accuracy"] == pytest.approx(3 / 4) and det["uar"] == pytest.approx(0.5)
    assert det["nll"] == pytest.approx(-np.mean(np.log([8 / 9, 3 / 5, 0.3 / 0.9, 0.9 / 1.0])), rel=1e-5)
    json.dumps(r)


def test_real_pipeline_matches_analyzer(tmp_path, analyzer):
    """Crops and probabilities are the ones ``Analyzer.analyze`` gives; a cat photo is a miss."""
    rows = [("astronaut.png", "happy", "eileen"), ("cat.png", "neutral", "chelsea")]
    root = write_photo_folder(tmp_path / "set", rows, {"astronaut.png": astronaut(), "cat.png": chelsea()})
    photos = load_photo_set(root, min_images=1)
    dets = detect_photos(photos, analyzer.detector)
    assert dets.found.tolist() == [True, False]
    crops = photo_crops(photos, dets, 48, 1)
    p = analyzer.classifier.predict_proba(crops)[0]
    face = analyzer.analyze(astronaut())[0]
    np.testing.assert_allclose(p, [face.probabilities[c] for c in analyzer.classifier.classes], atol=1e-6)
    r = evaluate_photo_folder(analyzer.classifier, root, detector=analyzer.detector, min_images=1)
    assert r["missed"] == 1 and r["detected"] == 1 and r["detected_only"]["n"] == 1
    assert r["accuracy"] == (0.5 if face.expression == "happiness" else 0.0)


def test_cli_evaluate_photo_folder(tmp_path):
    rows = [("astronaut.png", "happy", "eileen"), ("cat.png", "neutral", "chelsea")]
    root = write_photo_folder(tmp_path / "set", rows, {"astronaut.png": astronaut(), "cat.png": chelsea()})
    cache = tmp_path / "det.npz"
    res = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--json", "-", "--detections", str(cache),
                                   "--min-images", "1"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert r["n"] == 2 and r["missed"] == 1 and r["split"] == "all" and cache.is_file()
    res = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--detections", str(cache), "--min-images", "1"])
    assert res.exit_code == 0 and "1 missed" in res.output and "UAR" in res.output
    res = CliRunner().invoke(app, ["evaluate", "--data", str(root), "--split", "PublicTest", "--min-images", "1"])
    assert res.exit_code == 2 and "train" in res.output
    res = CliRunner().invoke(app, ["evaluate", "--data", str(root)])  # 1 image per class: nothing to score
    assert res.exit_code == 2 and "50 images" in res.output


def _shared(name):
    path = shared_data_path(name)
    if not (path / "labels.csv").is_file():
        pytest.skip(f"{path} not found (set OPENFER_SHARED): the shared photo sets are not on this machine")
    return path


def test_muxspace_reader_on_shared_data():
    full = load_photo_set(_shared("muxspace"))
    assert full.classes == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust")
    assert full.left_out == {"fear": 21, "contempt": 9}
    test = load_photo_set(_shared("muxspace"), "test")
    # a fifth of the people; their share of images varies (some news people have hundreds of photos)
    assert 0.15 < len(test) / len(full) < 0.30
    assert not set(test.persons) & set(load_photo_set(_shared("muxspace"), "train").persons)
    assert np.bincount(test.labels, minlength=6).min() > 20  # every scored class is in the test part


def test_london_reader_on_shared_data():
    s = load_photo_set(_shared("london"))
    assert s.classes == ("neutral", "happiness") and len(s) == 204 and not s.left_out
    assert np.bincount(s.labels).tolist() == [102, 102]
