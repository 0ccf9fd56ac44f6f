"""Stable face identities over a video with ByteTrack (the maintained implementation in Roboflow's ``trackers``)."""

from __future__ import annotations

import dataclasses
import importlib.util
import threading

import numpy as np

from openfer.errors import MissingExtraError, UsageError
from openfer.types import Face


class FaceTracker:
    """Gives each face a ``track_id`` that stays the same for one person across frames.

    ByteTrack matches this frame's boxes to the Kalman-predicted boxes of known tracks by IoU, first with
    confident detections, then with weak ones (a face turning away or half hidden keeps its id). A track with no
    match is kept for ``lost_seconds`` so a face that is missed or occluded for a moment comes back with its id.

    Args:
        lost_seconds: how long a lost face keeps its id. Longer bridges longer occlusions, but a different person
            appearing where someone left within that time may inherit the id.
        activation_score: minimum detection score that starts a new track (weaker faces only continue tracks).
            Higher avoids ids for false detections; lower tracks faint faces sooner.
        high_score: detections at or above this are matched first; weaker ones only revive unmatched tracks.
        min_iou: minimum overlap between a predicted track box and a detection to match them. Lower follows
            fast motion at low frame rates, but swaps ids of faces that pass close to each other more easily.
        confirm_frames: consecutive detected frames before a track gets an id (faces before that have
            ``track_id=None``). 1 gives an id from a face's first frame; higher suppresses one-off false faces.
        frame_rate: nominal frames per second; only used when ``update`` is called without timestamps.

    Ids count from 0 in the order tracks are confirmed and are never reused within one tracker.
    """

    def __init__(self, lost_seconds: float = 2.0, activation_score: float = 0.5, high_score: float = 0.5,
                 min_iou: float = 0.1, confirm_frames: int = 1, frame_rate: float = 30.0) -> None:
        if importlib.util.find_spec("trackers") is None:
            raise MissingExtraError("video tracking needs the [video] extra", "video")
        if lost_seconds < 0 or frame_rate <= 0:
            raise UsageError(f"lost_seconds must be >= 0 and frame_rate > 0, got {lost_seconds}, {frame_rate}")
        self._settings = dict(
            lost_track_buffer=max(0, int(round(lost_seconds * 30))),  # the library counts 30 fps frames
            frame_rate=frame_rate, track_activation_threshold=activation_score,
            minimum_consecutive_frames=confirm_frames, minimum_iou_threshold=min_iou,
            high_conf_det_threshold=high_score,
        )
        self._impl = None
        self._confirm_frames = confirm_frames
        self._last_t: float | None = None

    @property
    def _tracker(self):
        """The library's ByteTrack, made on first use: importing the library takes about a second (it imports
        supervision and SciPy), which ``preload`` can overlap with loading the models."""
        if self._impl is None:
            try:
                from trackers import ByteTrackTracker
            except ImportError as e:
                raise MissingExtraError("video tracking needs the [video] extra", "video", e) from None
            self._impl = ByteTrackTracker(**self._settings)
        return self._impl

    def update(self, faces: list[Face], timestamp: float | None = None) -> list[Face]:
        """New ``Face`` objects for this frame's ``faces``, in the same order, with ``track_id`` set.

        Args:
            faces: the detections of one frame (may be empty: tracks then age).
            timestamp: the frame's time in seconds; gaps between timestamps (frame stepping, variable frame rate,
                dropped frames) are taken into account. Times that go backwards are clamped to the last one.
        """
        import supervision as sv

        if timestamp is not None:
            timestamp = float(timestamp) if self._last_t is None else max(float(timestamp), self._last_t)
            self._last_t = timestamp
        if faces:
            dets = sv.Detections(xyxy=np.array([f.box for f in faces], np.float32),
                                 confidence=np.array([f.score for f in faces], np.float32),
                                 data={"index": np.arange(len(faces))})
        else:
            dets = sv.Detections.empty()
        tracked = self._tracker.update(dets, timestamp=timestamp)
        ids: dict[int, int] = {}
        if len(tracked) and "index" in tracked.data:
            ids = {int(i): int(t) for i, t in zip(tracked.data["index"], tracked.tracker_id)}
            if self._confirm_frames == 1:
                self._confirm_new_tracks(faces, ids)
        return [dataclasses.replace(f, track_id=ids[i] if ids.get(i, -1) >= 0 else None)
                for i, f in enumerate(faces)]

    def _confirm_new_tracks(self, faces: list[Face], ids: dict[int, int]) -> None:
        """Give tracks started on this frame their id now, so a face's first frame is not left without one.

        The library confirms a track on its second matched frame even when one frame is enough; with
        ``confirm_frames=1`` we confirm it at birth, through the library's own id allocator (its tracklets are
        created from the detection's box, which identifies them). Pinned library version: see pyproject.toml.
        """
        newborn = [t for t in self._tracker.tracks if t.tracker_id == -1 and t.number_of_successful_consecutive_updates
                   == 1 and getattr(t, "age", 0) == 0]
        for i, face in enumerate(faces):
            if ids.get(i, -1) >= 0 or face.score < self._tracker.track_activation_threshold:
                continue
            for t in newborn:
                if np.allclose(t.get_state_bbox(), face.box, atol=1e-3):
                    t.tracker_id = ids[i] = self._tracker._allocate_tracker_id()
                    newborn.remove(t)
                    break

    def reset(self) -> None:
        """Forget every track (ids restart from 0): call between unrelated videos."""
        if self._impl is not None:
            self._impl.reset()
        self._last_t = None


def preload() -> threading.Thread | None:
    """Import the tracking library in a background thread, so that its second or so of imports (supervision,
    SciPy) overlaps with work that releases the GIL: loading the ONNX models, opening the video, the first
    detection. A ``FaceTracker`` that needs the library first waits for the import to finish (Python's import
    lock). Returns the thread, or None when the library is missing or already imported."""
    import sys

    if "trackers" in sys.modules or importlib.util.find_spec("trackers") is None:
        return None

    def run() -> None:
        try:
            import trackers  # noqa: F401
        except Exception:  # noqa: BLE001 - the FaceTracker that needs it raises the error in its own thread
            pass
    thread = threading.Thread(target=run, name="openfer-import-trackers", daemon=True)
    thread.start()
    return thread
