"""The Python API contract that external scripts and the held-out evaluation rely on.

Models are retrained and replaced behind this interface, so these tests assert shapes, dtypes, sums, names,
determinism and positions, not which expression a face gets (test_zoo.py checks the shipped models' accuracy).
"""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import openfer
from conftest import ASTRONAUT_FACE, CLASSES, astronaut, chelsea, grey_canvas, iou, label_of, paste_head, save


def _crops(n: int, h: int, w: int, rgb: bool, seed: int = 0) -> np.ndarray:
    """``n`` uint8 face-ish crops: resized astronaut face plus noise, so rows differ from each other."""
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE)
    face = cv2.resize(astronaut()[y1:y2, x1:x2], (w, h), interpolation=cv2.INTER_AREA)
    if not rgb:
        face = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(seed)
    noise = rng.integers(-40, 41, size=(n,) + face.shape)
    return np.clip(face[None].astype(np.int64) + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# load_classifier / predict_proba
# ---------------------------------------------------------------------------------------------------------------


def test_classifier_classes(classifier):
    assert classifier.classes == CLASSES
    assert isinstance(classifier.classes, tuple)


@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
@pytest.mark.parametrize("h,w", [(48, 48), (17, 23), (200, 150)])
@pytest.mark.parametrize("n", [0, 1, 5, 300])
def test_predict_proba_contract(classifier, n, h, w, rgb):
    faces = _crops(n, h, w, rgb)
    p = classifier.predict_proba(faces)
    assert isinstance(p, np.ndarray)
    assert p.dtype == np.float32
    assert p.shape == (n, len(CLASSES))
    assert np.isfinite(p).all()
    assert (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_predict_proba_deterministic(classifier):
    faces = _crops(5, 48, 48, rgb=False)
    a = classifier.predict_proba(faces)
    b = classifier.predict_proba(faces.copy())
    np.testing.assert_array_equal(a, b)


def test_predict_proba_rows_are_per_face(classifier):
    """Row i depends on crop i only: same result alone, in a batch, and across the internal 256-crop batches."""
    faces = _crops(300, 48, 48, rgb=False, seed=1)
    together = classifier.predict_proba(faces)
    for i in (0, 4, 255, 256, 299):
        alone = classifier.predict_proba(faces[i : i + 1])
        np.testing.assert_allclose(together[i], alone[0], atol=1e-5)
    # Different inputs give different rows (the output is not a constant).
    assert np.abs(together[0] - together[1]).max() > 0
    # Reversing the batch reverses the rows.
    np.testing.assert_allclose(classifier.predict_proba(faces[::-1]), together[::-1], atol=1e-5)


@pytest.mark.parametrize("h,w", [(48, 48), (17, 23), (200, 150)])
def test_grey_and_equal_channel_rgb_agree(classifier, h, w):
    grey = _crops(3, h, w, rgb=False, seed=2)
    rgb = np.repeat(grey[..., None], 3, axis=3)
    np.testing.assert_allclose(classifier.predict_proba(grey), classifier.predict_proba(rgb), atol=1e-4)


def test_rgb_crops_are_read_as_luminance(classifier):
    """A grey model sees an RGB crop as its luminance (ITU-R 601, as OpenCV converts), not as one channel."""
    if classifier.spec.channels != 1:
        pytest.skip("the model reads RGB")
    rgb = _crops(3, 48, 48, rgb=True, seed=3)
    rgb[..., 0] = 255 - rgb[..., 0]  # make the channels clearly different
    grey = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in rgb])
    np.testing.assert_array_equal(classifier.preprocess(rgb), classifier.preprocess(grey))
    assert not np.array_equal(classifier.preprocess(rgb), classifier.preprocess(rgb[..., 0].copy()))
    np.testing.assert_allclose(classifier.predict_proba(rgb), classifier.predict_proba(grey), atol=1e-5)


def test_single_channel_last_axis_is_grey(classifier):
    grey = _crops(2, 48, 48, rgb=False)
    np.testing.assert_allclose(classifier.predict_proba(grey[..., None]), classifier.predict_proba(grey), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_predict_proba_wrong_dtype(classifier, dtype):
    with pytest.raises(TypeError, match="uint8"):
        classifier.predict_proba(np.zeros((2, 48, 48), dtype))


@pytest.mark.parametrize(
    "shape",
    [(2, 48, 48, 4), (2, 48, 48, 2), (48, 48), (2, 48), (1, 2, 48, 48, 3), (2, 0, 48), (2, 48, 0, 3)],
    ids=["rgba", "two-channels", "HW-without-N", "1d-crops", "5d", "zero-height", "zero-width"],
)
def test_predict_proba_wrong_shape(classifier, shape):
    with pytest.raises(ValueError):
        classifier.predict_proba(np.zeros(shape, np.uint8))


class FakeSession:
    """Stands in for onnxruntime.InferenceSession: records batch shapes, returns unnormalised scores."""

    def __init__(self, n_classes=8):
        self.n_classes = n_classes
        self.batches = []

    def get_inputs(self):
        class _Input:
            name = "x"

        return [_Input()]

    def run(self, output_names, feeds):
        x = feeds["x"]
        self.batches.append(x.shape)
        # score of class k = 1 + k * mean pixel: positive, not normalised, depends on the crop
        mean = x.reshape(len(x), -1).mean(1, keepdims=True)
        return [1.0 + np.arange(self.n_classes)[None, :] * mean]


def test_predict_proba_batches_and_normalises_with_fake_session():
    from openfer.classify import OnnxClassifier
    from openfer.zoo.registry import get_spec

    session = FakeSession()
    clf = OnnxClassifier(get_spec("default"), session=session, batch_size=256)
    faces = np.zeros((300, 30, 20), np.uint8)
    faces[:] = (np.arange(300) % 7).astype(np.uint8)[:, None, None]  # crop i has constant value i % 7
    p = clf.predict_proba(faces)
    s = clf.input_size
    assert session.batches == [(256, 1, s, s), (44, 1, s, s)]
    assert p.shape == (300, 8) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    v = (np.arange(300) % 7)[:, None]
    expected = (1.0 + np.arange(8)[None, :] * v) / (8 + 28 * v)
    np.testing.assert_allclose(p, expected, rtol=1e-5)
    # preprocess feeds raw 0..255 values (normalisation lives inside the graph)
    x = clf.preprocess(np.full((1, 10, 10), 200, np.uint8))
    assert x.dtype == np.float32 and x.shape == (1, 1, s, s) and np.allclose(x, 200)
    # crop 0 has equal probabilities: the label rule gives the tie to the rarest training class (disgust and
    # contempt tie at 0.47 %; the first wins); the others lean to contempt by far
    assert clf.predict(faces[:3]) == ["disgust", "contempt", "contempt"] == label_of(p[:3])
    assert session.batches[-1][0] == 3


def test_load_classifier_unknown_name():
    with pytest.raises(KeyError) as exc:
        openfer.load_classifier("nope")
    msg = str(exc.value)
    assert "nope" in msg and "default" in msg


# ---------------------------------------------------------------------------------------------------------------
# Analyzer
# ---------------------------------------------------------------------------------------------------------------


def _check_face(face, expected_box):
    assert isinstance(face, openfer.Face)
    assert len(face.box) == 4
    assert iou(face.box, expected_box) > 0.5, (face.box, expected_box)
    assert 0.5 < face.score <= 1.0
    lm = face.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32 and np.isfinite(lm).all()
    left_eye, right_eye, nose, mouth_l, mouth_r = lm
    assert left_eye[0] < right_eye[0]
    assert mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])
    x1, y1, x2, y2 = face.box
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()
    # eyes and mouth corners are spread across the face, not stacked on one vertical line
    assert right_eye[0] - left_eye[0] > 0.25 * (x2 - x1)
    assert mouth_r[0] - mouth_l[0] > 0.2 * (x2 - x1)
    assert face.expression in CLASSES
    assert tuple(face.probabilities) == CLASSES
    probs = np.array([face.probabilities[c] for c in CLASSES])
    assert np.isfinite(probs).all() and (probs >= 0).all()
    assert abs(probs.sum() - 1) < 1e-5
    assert face.expression == label_of(probs)


@pytest.mark.parametrize("source", ["array", "png-path", "png-str", "grey-array"])
def test_analyze_astronaut(analyzer, tmp_path, source):
    img = astronaut()
    if source == "array":
        arg = img
    elif source == "grey-array":
        arg = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        assert arg.ndim == 2
    else:
        path = save(tmp_path / "astronaut.png", img)
        arg = path if source == "png-path" else str(path)
    faces = analyzer.analyze(arg)
    assert isinstance(faces, list) and len(faces) == 1
    _check_face(faces[0], ASTRONAUT_FACE)


def test_analyze_path_and_array_agree(analyzer, tmp_path):
    img = astronaut()
    from_array = analyzer.analyze(img)[0]
    from_path = analyzer.analyze(save(tmp_path / "a.png", img))[0]
    np.testing.assert_allclose(from_array.box, from_path.box, atol=1e-4)
    assert from_array.probabilities == pytest.approx(from_path.probabilities, abs=1e-6)


@pytest.mark.parametrize(
    "name,make",
    [("cat", chelsea), ("blank", lambda: np.zeros((480, 640, 3), np.uint8)), ("grey-wall", grey_canvas)],
)
def test_analyze_no_face(analyzer, name, make):
    assert analyzer.analyze(make()) == []


def test_analyze_multiple_faces(analyzer):
    canvas = grey_canvas(640, 480)
    expected = [paste_head(canvas, 140, 40, 60), paste_head(canvas, 90, 300, 250), paste_head(canvas, 60, 500, 80)]
    faces = analyzer.analyze(canvas)
    assert len(faces) == 3
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True), "faces must come highest score first"
    for box in expected:
        best = max(faces, key=lambda f: iou(f.box, box))
        _check_face(best, box)
    # each pasted face matched by a different detection
    matched = {max(range(3), key=lambda i: iou(faces[i].box, box)) for box in expected}
    assert matched == {0, 1, 2}


def test_analyze_does_not_modify_input(analyzer):
    img = astronaut()
    before = img.copy()
    analyzer.analyze(img)
    np.testing.assert_array_equal(img, before)


def test_analyze_deterministic(analyzer):
    a = analyzer.analyze(astronaut())[0]
    b = analyzer.analyze(astronaut())[0]
    assert a.box == b.box and a.probabilities == b.probabilities


def test_analyze_unreadable_path(analyzer, tmp_path):
    with pytest.raises(openfer.ImageReadError):
        analyzer.analyze(tmp_path / "missing.png")


def test_analyzer_with_objects_and_names():
    det = openfer.load_detector("haar")
    clf = openfer.load_classifier("default")
    a = openfer.Analyzer(detector=det, classifier=clf)
    assert a.detector is det and a.classifier is clf
    faces = a.analyze(astronaut())
    assert len(faces) == 1 and iou(faces[0].box, ASTRONAUT_FACE) > 0.5
    with pytest.raises(KeyError):
        openfer.Analyzer(detector="nope")


# ---------------------------------------------------------------------------------------------------------------
# Face
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"box": (1, 2, 3), "score": 0.9},
        {"box": (1, 2, 3, 4, 5), "score": 0.9},
        {"box": (1, 2, 3, 4), "score": 0.9, "landmarks": np.zeros((4, 2))},
        {"box": (1, 2, 3, 4), "score": 0.9, "landmarks": np.zeros((5, 3))},
        {"box": (1, 2, 3, 4), "score": 0.9, "landmarks": np.zeros(10)},
    ],
    ids=["box3", "box5", "lm4x2", "lm5x3", "lm-flat"],
)
def test_face_validation(kwargs):
    with pytest.raises(ValueError):
        openfer.Face(**kwargs)


def test_face_normalises_fields():
    f = openfer.Face(box=np.array([1, 2, 11, 22], np.int64), score=0.5, landmarks=np.ones((5, 2), np.float64))
    assert f.box == (1.0, 2.0, 11.0, 22.0) and all(type(v) is float for v in f.box)
    assert f.landmarks.dtype == np.float32
    assert (f.width, f.height) == (10.0, 20.0)
    assert openfer.Face(box=(0, 0, 1, 1), score=1.0).expression is None


def test_face_to_dict_json(analyzer):
    face = analyzer.analyze(astronaut())[0]
    d = face.to_dict()
    assert set(d) == {"box", "confidence", "landmarks", "expression", "probabilities"}
    back = json.loads(json.dumps(d))
    assert back == d
    assert len(back["box"]) == 4 and np.array(back["landmarks"]).shape == (5, 2)
    assert back["expression"] == face.expression
    assert list(back["probabilities"]) == list(CLASSES)
    assert abs(sum(back["probabilities"].values()) - 1) < 1e-3
    # A face before classification (no landmarks, NaN) is still serialisable.
    bare = openfer.Face(box=(0, 0, 1, 1), score=np.float32(0.7)).to_dict()
    assert json.loads(json.dumps(bare)) == {"box": [0, 0, 1, 1], "confidence": 0.7, "landmarks": None,
                                           "expression": None, "probabilities": {}}


def test_image_result_is_the_one_serializer(analyzer, tmp_path):
    """Issue 17: one result type per photo or frame; its JSON and rows use one name per field (``confidence``,
    ``face``, ``face_id``, ``frame`` from 1) wherever they appear."""
    path = save(tmp_path / "a.png", astronaut())
    res = analyzer.result(path)
    assert isinstance(res, openfer.ImageResult) and res.ok and (res.width, res.height) == (512, 512)
    assert res.source == str(path) and res.detect_sides == (512,)
    assert [f.box for f in res.faces] == [f.box for f in analyzer.analyze(path)]
    rec = json.loads(json.dumps(res.to_dict()))
    assert rec["path"] == str(path) and rec["num_faces"] == 1 and "frame" not in rec
    assert rec["faces"][0] == res.faces[0].to_dict(index=0) and rec["faces"][0]["face"] == 0
    (row,) = res.to_rows(CLASSES)
    assert (row["path"], row["face"], row["confidence"]) == (str(path), 0, rec["faces"][0]["confidence"])
    assert "frame" not in row and "score" not in row

    tracked = openfer.Face(box=(0, 0, 10, 10), score=0.9, track_id=3, expression="neutral",
                           probabilities=dict.fromkeys(CLASSES, 1 / len(CLASSES)))
    frame = openfer.ImageResult([tracked], "v.mp4", 64, 48, frame=0, timestamp=0.5)
    d = frame.to_dict()
    assert (d["frame"], d["timestamp"], d["faces"][0]["face_id"], d["faces"][0]["face"]) == (1, 0.5, 3, 0)
    (row,) = frame.to_rows(CLASSES)
    assert (row["frame"], row["timestamp"], row["face_id"], row["success"]) == (1, 0.5, 3, 1)
    empty = openfer.ImageResult([], frame=4, timestamp=1.0).to_rows(CLASSES)
    assert [(r["frame"], r["face_id"], r["success"]) for r in empty] == [(5, -1, 0)]
    assert openfer.ImageResult([], "x.png").to_rows(CLASSES) == []  # a photo without faces has no rows
    failed = openfer.ImageResult(source="bad.jpg", error="file is empty")
    assert not failed.ok and failed.to_dict()["num_faces"] == 0 and failed.to_dict()["error"] == "file is empty"


# ---------------------------------------------------------------------------------------------------------------
# import cost
# ---------------------------------------------------------------------------------------------------------------


def test_import_does_not_load_torch():
    code = "import openfer, sys; openfer.Analyzer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_public_names():
    for name in openfer.__all__:
        assert getattr(openfer, name) is not None
    with pytest.raises(AttributeError):
        openfer.does_not_exist  # noqa: B018


def test_analyze_batch_matches_analyze_one_by_one(analyzer, tmp_path):
    canvas = grey_canvas()
    boxes = [paste_head(canvas, 150, 40, 60), paste_head(canvas, 110, 400, 200)]
    path = save(tmp_path / "a.png", astronaut())
    images = [canvas, chelsea(), path, np.zeros((100, 100, 3), np.uint8)]
    batched = analyzer.analyze_batch(images)
    single = [analyzer.analyze(im) for im in images]
    assert [len(b) for b in batched] == [2, 0, 1, 0] == [len(s) for s in single]
    for b_faces, s_faces in zip(batched, single):
        for b, s in zip(b_faces, s_faces):
            assert b.box == s.box and b.expression == s.expression
            for c in b.probabilities:
                assert b.probabilities[c] == pytest.approx(s.probabilities[c], abs=1e-5)
    assert analyzer.analyze_batch([]) == []
    assert analyzer.analyze_batch([chelsea()]) == [[]]
    for box, face in zip(sorted(boxes), sorted(batched[0], key=lambda f: f.box)):
        assert iou(box, face.box) > 0.3
