"""Following faces between detections (openfer.track.flow, openfer.track.follow) on generated clips."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from conftest import astronaut, iou, moving_faces_video

from openfer.errors import UsageError
from openfer.track import FaceTracker
from openfer.track.flow import FlowCarrier
from openfer.track.follow import DEFAULT_DETECT_EVERY, FaceFollower
from openfer.types import Face
from openfer.video import open_source, run_video

N_FRAMES, EVERY = 36, 5
ENTERS = 13  # person 1 enters on a frame the detector skips (13 % 5 != 0)


def textured(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    import cv2

    small = (rng.random((h // 8, w // 8)) * 255).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def test_carrier_moves_box_and_landmarks_with_the_picture():
    frame = textured()
    lms = np.array([[120, 100], [140, 100], [130, 110], [122, 125], [138, 125]], np.float32)
    carrier = FlowCarrier()
    carrier.start(frame, [Face(box=(100.0, 80.0, 160.0, 150.0), score=0.9, landmarks=lms, track_id=4)])
    moved, uncertain = carrier.carry(np.roll(np.roll(frame, 4, axis=1), -2, axis=0))
    assert not uncertain and len(moved) == 1
    assert np.allclose(moved[0].box, (104, 78, 164, 148), atol=0.5)
    assert np.allclose(moved[0].landmarks, lms + [4, -2], atol=0.5)
    assert moved[0].track_id == 4 and moved[0].score == 0.9, "other fields are kept"


def test_carrier_reports_a_face_that_vanishes_or_leaves():
    frame = textured()
    carrier = FlowCarrier()
    carrier.start(frame, [Face(box=(100.0, 80.0, 160.0, 150.0), score=0.9)])
    moved, uncertain = carrier.carry(np.full_like(frame, 128))
    assert uncertain and moved == []
    carrier.start(frame, [Face(box=(250.0, 80.0, 318.0, 150.0), score=0.9)])
    moved, uncertain = carrier.carry(np.roll(frame, 10, axis=1))  # would cross the right edge
    assert uncertain and moved == []
    with pytest.raises(UsageError):
        FlowCarrier().carry(frame)


def people() -> dict[int, list]:
    """Person 0 walks right along the top from the start; person 1 enters at ENTERS and walks left below."""
    return {0: [(10 + 3 * i, 5, 90) for i in range(N_FRAMES)],
            1: [None if i < ENTERS else (220 - 3 * (i - ENTERS), 130, 90) for i in range(N_FRAMES)]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("follow") / "enter.avi"
    return path, moving_faces_video(path, people())


@pytest.fixture(scope="module")
def rows_by_every(clip, analyzer):
    """Rows of the every-frame path and of the default fast path over the same clip."""
    out = {}
    for every in (1, EVERY):
        rows: list[dict] = []
        result = run_video(analyzer, open_source(clip[0]), on_rows=rows.extend, detect_every=every)
        out[every] = (rows, result)
    return out


def _person_rows(rows: list[dict], truth: list, i: int) -> list[dict]:
    return [r for r in rows if r["frame"] == i + 1 and r["success"] and truth[i] is not None
            and iou((r["x1"], r["y1"], r["x2"], r["y2"]), truth[i]) >= 0.3]


def test_fast_path_detects_only_some_frames(rows_by_every):
    rows, result = rows_by_every[EVERY]
    assert result.summary["detect_every"] == EVERY
    assert result.summary["detected_frames"] <= N_FRAMES // EVERY + 3, "the detector skips most frames"
    assert rows_by_every[1][1].summary["detected_frames"] == N_FRAMES


def test_face_entering_between_detections_is_found_within_n_frames(rows_by_every, clip):
    rows, _ = rows_by_every[EVERY]
    truth = clip[1][1]
    first = next(i for i in range(N_FRAMES) if _person_rows(rows, truth, i))
    assert ENTERS <= first < ENTERS + EVERY
    assert all(_person_rows(rows, truth, i) for i in range(first, N_FRAMES)), "followed from then on"


def test_ids_do_not_switch_on_the_fast_path(rows_by_every, clip):
    rows, _ = rows_by_every[EVERY]
    for person, truth in clip[1].items():
        ids = {r["face_id"] for i in range(N_FRAMES) for r in _person_rows(rows, truth, i)}
        assert len(ids) == 1 and min(ids) >= 0, (person, ids)
    assert len({r["face_id"] for r in rows if r["success"]}) == 2


def test_fast_path_agrees_with_the_every_frame_path(rows_by_every):
    ref, fast = rows_by_every[1][0], rows_by_every[EVERY][0]
    matched = agree = 0
    n_ref = sum(r["success"] for r in ref)
    for r in (r for r in ref if r["success"]):
        box = (r["x1"], r["y1"], r["x2"], r["y2"])
        twins = [f for f in fast if f["frame"] == r["frame"] and f["success"]
                 and iou(box, (f["x1"], f["y1"], f["x2"], f["y2"])) >= 0.7]
        if twins:
            matched += 1
            agree += twins[0]["expression"] == r["expression"]
            assert abs(twins[0]["p_happiness"] - r["p_happiness"]) < 0.2
    # the only faces the fast path may miss are person 1's first frames, before the next detection
    assert matched >= n_ref - (EVERY - 1)
    assert agree / matched >= 0.98


class _Counting:
    """A detector that finds one fixed face and counts its calls; fails when told to."""

    def __init__(self, box=(100.0, 80.0, 160.0, 150.0)):
        self.calls, self.fail, self.box = 0, False, box

    def detect(self, image):
        self.calls += 1
        if self.fail:
            raise RuntimeError("boom")
        return [Face(box=self.box, score=0.9)]


def test_follower_detects_on_schedule_on_loss_and_after_a_failure():
    det = _Counting()
    follower = FaceFollower(det, FaceTracker(), detect_every=3, full_every=1)
    frame = textured()
    ids = [f.track_id for t in range(7) for f in follower.step(frame, t / 30)]
    assert ids == [0] * 7 and det.calls == 3, "frames 0, 3 and 6"
    follower.step(np.full_like(frame, 128), 7 / 30)  # the face vanishes: flow loses it, the detector runs
    assert det.calls == 4
    det.fail = True
    with pytest.raises(RuntimeError):
        follower.step(frame, 8 / 30)
    assert follower.missed(8 / 30) == []
    det.fail = False
    follower.step(frame, 9 / 30)
    assert det.calls == 6, "the frame after a failed detection detects again"
    every = FaceFollower(_Counting(), FaceTracker(), detect_every=1)
    for t in range(4):
        every.step(frame, t / 30)
    assert every.detector.calls == 4
    with pytest.raises(UsageError, match="detect_every"):
        FaceFollower(det, detect_every=0)


def test_follower_on_a_still_photo_keeps_one_id():
    from openfer.detect import load_detector

    follower = FaceFollower(load_detector("centerface", max_shrink=None))
    frame = astronaut()
    assert [[f.track_id for f in follower.step(frame, t / 25)] for t in range(6)] == [[0]] * 6
    assert follower.detections == 2


def test_cli_default_is_the_library_default():
    from openfer import cli

    assert inspect.signature(cli.analyze).parameters["detect_every"].default == DEFAULT_DETECT_EVERY
    assert inspect.signature(run_video).parameters["detect_every"].default == DEFAULT_DETECT_EVERY


def test_scheduled_detections_shrink_to_the_followed_faces_and_small_newcomers_are_found(tmp_path, analyzer):
    """A big face followed: scheduled detections run shrunk (cheaper); a small face entering is still found
    within detect_every * full_every frames (the full-size detection), and the big face keeps its id."""
    n, enters = 40, 6
    path = tmp_path / "small.avi"
    truth = moving_faces_video(path, {0: [(40 + 2 * i, 40, 260) for i in range(n)],
                                      1: [None if i < enters else (480, 300, 60) for i in range(n)]},
                               size=(640, 480))
    sizes = []

    class Spy:
        max_side, upscale = 640, False

        def detect(self, image):
            sizes.append(image.shape[1])
            return analyzer.detector.detect(image)

    rows: list[dict] = []
    run_video(analyzer, open_source(path), on_rows=rows.extend,
              follower=FaceFollower(Spy(), FaceTracker(), detect_every=EVERY, full_every=3))
    assert sizes[0] == 640 and min(sizes) < 400, sizes
    assert sizes.count(640) < len(sizes), "some scheduled detections ran shrunk"
    first = next(i for i in range(n) if _person_rows(rows, truth[1], i))
    assert first < enters + EVERY * 3
    ids = {r["face_id"] for i in range(n) for r in _person_rows(rows, truth[0], i)}
    assert len(ids) == 1


def test_centerface_edit_is_cached_so_start_up_skips_onnx(tmp_path, monkeypatch):
    """The free-size CenterFace graph is made once per user cache (editing it needs the slow-to-import onnx
    package); later loads read the cached file, which detects as the edit made in memory does."""
    from openfer.detect import centerface as cf

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = cf._dynamic_bundled_path()
    assert path.is_file() and path.parent == tmp_path / "openfer" / "models"
    monkeypatch.setattr(cf, "_dynamic_model_bytes", lambda p: pytest.fail("the cached file should be used"))
    assert cf._dynamic_bundled_path() == path
    faces = cf.CenterFaceDetector(max_shrink=None).detect(astronaut())
    assert len(faces) == 1 and faces[0].score > 0.5


def test_cheap_scheduled_detection_refreshes_followed_faces_on_crops_and_finds_new_ones(analyzer):
    """A scheduled detection while a face is followed: the face is detected again on a crop around it (its box
    and landmarks as a full-frame detection gives them), and new faces are looked for on a 320-px copy; a
    newcomer found there is detected on the whole frame (so the tracker gives it an id at once), and the next
    scheduled detection is cheap again."""
    from conftest import grey_canvas, paste_head

    first = grey_canvas()
    paste_head(first, 200, 60, 100)
    later = first.copy()
    paste_head(later, 200, 380, 120)  # someone new appears on the scheduled detection's frame
    seen = []

    class Spy:
        max_side, upscale = 640, False

        def detect(self, image):
            seen.append(image.shape[:2])
            return analyzer.detector.detect(image)

    follower = FaceFollower(Spy(), FaceTracker(), detect_every=2, full_every=3)
    assert len(follower.step(first, 0.0)) == 1 and seen == [(480, 640)]
    faces = follower.step(later, 1 / 30)  # carried: the new face is not seen yet
    assert len(faces) == 1 and len(seen) == 1
    faces = follower.step(later, 2 / 30)
    assert (240, 320) in seen[1:-1] and seen[-1] == (480, 640), seen  # crop, small copy, then the whole frame
    assert max(h * w for h, w in seen[1:-1]) < 480 * 640 / 3, "a crop around the followed face, and the small copy"
    assert sorted(f.track_id for f in faces) == [0, 1]  # the newcomer has its id on the frame it was found
    follower.step(later, 3 / 30)  # carried
    before = len(seen)
    faces = follower.step(later, 4 / 30)  # scheduled again, nobody new: crops and the small copy only
    assert len(seen) > before and (480, 640) not in seen[before:], seen
    assert max(h * w for h, w in seen[before:]) < 480 * 640 / 3, "crops around the followed faces, the small copy"
    full = analyzer.detector.detect(later)
    assert len(faces) == len(full) == 2
    for f in full:
        twin = max(faces, key=lambda g: iou(g.box, f.box))
        assert iou(twin.box, f.box) > 0.85
        assert np.abs(twin.landmarks - f.landmarks).max() < 6
    assert sorted(f.track_id for f in faces) == [0, 1]


def test_tracking_library_is_imported_on_first_use_or_in_the_background():
    """FaceTracker() alone does not import the tracking library (about 1 s of imports); its first update does,
    and preload() imports it in a background thread (the CLI overlaps it with loading the models)."""
    import subprocess
    import sys

    code = ("import sys; from openfer.track import FaceTracker; from openfer.track.bytetrack import preload; "
            "from openfer.types import Face; t = FaceTracker(); print('trackers' in sys.modules); "
            "th = preload(); th.join(); print('trackers' in sys.modules, preload() is None); "
            "print([f.track_id for f in t.update([Face(box=(0.0, 0.0, 50.0, 60.0), score=0.9)], 0.0)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == ["False", "True True", "[0]"], out
