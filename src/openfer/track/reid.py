"""Re-identification: a person who leaves and comes back, is hidden for seconds, or reappears after a cut keeps
their ``face_id``.

ByteTrack (``openfer.track.bytetrack``) keeps an id through motion and short gaps by box overlap alone; after a
longer absence, or at another place after a cut, it starts a new track. ``Reidentifier`` sits after it: every
person (an *identity*, whose number becomes the rows' ``face_id``) keeps a small gallery of identity descriptors
(``openfer.track.identity``) from good views of their face. When a new track starts, its first frames are held
back (at most ``ReidSettings.max_hold`` frames) while descriptors of its face are collected; then the track is
linked to the absent identity it resembles most — if the cosine similarity reaches ``threshold`` and the gates
allow it — or becomes a new identity. Because the decision comes before those frames are passed on, every output
(rows, summary, annotated video, report) sees one id per person from the track's first frame.

Gates (each rules a candidate identity out, whatever the descriptors say):

* **not co-visible**: an identity seen at any time while the new track was seen is someone else (one person is
  not in the picture twice);
* **cuts**: at a cut (the whole picture changes at once) every face starts a new track, so the tracker's box
  overlap cannot carry an id over to another person who stands where someone stood;
* **crossing**: a visible person's face is described again every ``refresh_frames``; one that no longer resembles
  their gallery (``split_below``) means the tracker moved the id onto someone else, and the track is split there;
* **time**: an identity absent for longer than ``max_gap_seconds`` is not a candidate (None: no limit);
* **appearance**: only faces at least ``min_eye_px`` between the eyes, roughly frontal and not cut by the frame's
  edge are described, so the decision rests on views the network reads well.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Protocol

import cv2
import numpy as np

from openfer.errors import UsageError
from openfer.types import Face


class Describer(Protocol):
    """What ``Reidentifier`` needs of ``openfer.track.identity.FaceDescriber``: unit-length descriptors [N, D]."""

    def describe(self, image: np.ndarray, faces: list[Face]) -> np.ndarray: ...


@dataclass(frozen=True)
class ReidSettings:
    """How tracks are linked into identities.

    Attributes:
        threshold: cosine similarity between a new track's mean descriptor and an absent identity's closest
            gallery descriptor at or above which they are linked. Higher makes fewer wrong merges of two people
            but leaves more returns unrecognised. 0.75: one camera and one light make different people look more
            alike than LFW's news photos do. Of London's studio portraits (one studio, as in a session video),
            0.04 % of different-person pairs reach 0.75 (0.28 % reach 0.7, 4.8 % reach 0.6) and every same-person
            pair (neutral vs smiling, lowest 0.76) does; on LFW 0.1 % of different-person pairs reach 0.6
            (``benchmarks/reid.py template`` and ``london``). On the generated clips 0.7 let one stranger take an
            absent person's id (similarity 0.73), and returning people scored 0.85-0.99 (docs/sessions.md).
        max_gap_seconds: an identity absent for longer is no longer a candidate (None: any time within the video).
        descriptors: usable views of a new track's face collected before deciding (fewer decides sooner on less).
        max_hold: frames a new track's frames are held back at most while they are collected; then it is decided
            on what it has (with no usable view it becomes a new identity). Memory grows with it: one frame each.
        min_eye_px: faces with less distance between the eyes (pixels) are not described (too small to tell).
        max_yaw: faces turned further (nose off the eyes' midpoint by this share of the eye distance) are not
            described.
        refresh_frames: an identity's visible face is described again at most every this many frames to keep its
            gallery current (lighting, pose).
        gallery: descriptors kept per identity (the most recent distinct views).
        cut_threshold: a frame whose small grey thumbnail differs from the previous one's by more than this (mean
            absolute difference, 0-255) is a cut: every face after it starts a new track to re-identify, because
            the tracker would otherwise hand an id to whoever appears where someone stood before the cut. On the
            generated clips (benchmarks/reid.py) frames within a shot differed by at most 13 (a panel sliding in
            front of a face), cuts by 21 to 62. A false cut costs little: the same faces are re-identified with
            their own ids. Lower finds softer cuts (None: never).
        split_below: when a visible person's face is described again (``refresh_frames``) and is less similar than
            this to every view in their gallery, the tracker has moved their id onto someone else (faces crossing):
            from that frame the track is re-identified as a new one. 0.5 is above most different-person pairs of
            London's portraits (median 0.43) and far below the same person's (lowest 0.76). None: never.
    """

    threshold: float = 0.75
    max_gap_seconds: float | None = None
    descriptors: int = 3
    max_hold: int = 15
    min_eye_px: float = 16.0
    max_yaw: float = 0.35
    refresh_frames: int = 10
    gallery: int = 8
    cut_threshold: float | None = 18.0
    split_below: float | None = 0.5

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise UsageError(f"threshold is a cosine similarity between -1 and 1, got {self.threshold}")
        if self.descriptors < 1 or self.max_hold < 1 or self.refresh_frames < 1 or self.gallery < 1:
            raise UsageError("descriptors, max_hold, refresh_frames and gallery must be at least 1")
        if self.max_gap_seconds is not None and self.max_gap_seconds < 0:
            raise UsageError(f"max_gap_seconds must be >= 0 or None, got {self.max_gap_seconds}")


#: Visible spans of one identity closer than this (seconds) are one span (frames of one track are this close).
_SPAN_GAP = 1.0


@dataclass
class _Identity:
    id: int
    gallery: list[np.ndarray] = field(default_factory=list)
    seen: list[list[float]] = field(default_factory=list)  # [start, end] seconds when visible, in order

    def see(self, start: float, end: float) -> None:
        """Add a time span the person was visible (merged with spans that overlap or nearly touch)."""
        spans = sorted([*self.seen, [start, end]])
        self.seen = [spans[0]]
        for a, b in spans[1:]:
            if a <= self.seen[-1][1] + _SPAN_GAP:
                self.seen[-1][1] = max(self.seen[-1][1], b)
            else:
                self.seen.append([a, b])

    def overlaps(self, start: float, end: float) -> bool:
        """Whether the person was visible at some time between ``start`` and ``end``."""
        return any(a <= end and b >= start for a, b in self.seen)

    def gap_to(self, start: float, end: float) -> float:
        """Seconds between the span ``start``-``end`` and the nearest time the person was visible (0: overlapping;
        inf: never visible)."""
        return min((max(a - end, start - b, 0.0) for a, b in self.seen), default=np.inf)
    last_described: int = -(10**9)


@dataclass
class _NewTrack:
    first_seen: float
    last_seen: float
    last_frame: int
    box: tuple[float, float, float, float]
    frames: int = 0
    views: list[np.ndarray] = field(default_factory=list)
    absorbed: list[int] = field(default_factory=list)  # earlier short tracks this one continues


def usable(face: Face, shape: tuple[int, ...], settings: ReidSettings) -> bool:
    """Whether ``face`` in a frame of ``shape`` gives a trustworthy descriptor: landmarks, eyes at least
    ``min_eye_px`` apart, yaw proxy under ``max_yaw``, box inside the frame."""
    lm = face.landmarks
    if lm is None or not np.isfinite(lm).all():
        return False
    eyes = lm[1] - lm[0]
    dist = float(np.hypot(*eyes))
    if dist < settings.min_eye_px:
        return False
    mid = (lm[0] + lm[1]) / 2
    yaw = abs(float(np.dot(lm[2] - mid, eyes)) / dist) / dist  # nose offset along the eye line
    x1, y1, x2, y2 = face.box
    inside = x1 >= 0 and y1 >= 0 and x2 <= shape[1] and y2 <= shape[0]
    return yaw <= settings.max_yaw and inside


class Reidentifier:
    """Relabels tracked faces so that one person keeps one ``track_id`` (the rows' ``face_id``) across absences.

    Args:
        describer: makes identity descriptors (``openfer.track.identity.load_describer()``; tests pass a fake).
        settings: thresholds and gates (``ReidSettings``).

    Feed it the tracked frames in order through ``relabel``; call ``reset`` between unrelated videos.

    Example (a fake describer: two looks, "a" and "b"):
        >>> import numpy as np
        >>> from openfer.types import Face
        >>> class Looks:
        ...     def describe(self, image, faces):
        ...         return np.array([[1.0, 0.0] if f.score > 0.8 else [0.0, 1.0] for f in faces])
        >>> lm = np.array([[40, 40], [60, 40], [50, 50], [42, 60], [58, 60]], np.float32)
        >>> def face(track, score): return Face(box=(30, 25, 70, 75), score=score, landmarks=lm, track_id=track)
        >>> frames = [(t, [face(track, score)]) for t, track, score in
        ...           [(0, 0, 0.9), (1, 0, 0.9), (5, 1, 0.7), (6, 1, 0.7), (9, 2, 0.9), (10, 2, 0.9)]]
        >>> reid = Reidentifier(Looks(), ReidSettings(descriptors=1))
        >>> image = np.zeros((100, 100, 3), np.uint8)
        >>> [faces[0].track_id for _, faces in reid.relabel((image, t, f) for t, f in frames)]
        [0, 0, 1, 1, 0, 0]
    """

    def __init__(self, describer: Describer, settings: ReidSettings | None = None) -> None:
        self.describer = describer
        self.settings = settings or ReidSettings()
        self.reset()

    def reset(self) -> None:
        """Forget every identity and track (ids restart from 0)."""
        self._identities: dict[int, _Identity] = {}
        self._tracks: dict[int, int] = {}  # track (key) -> identity id
        self._new: dict[int, _NewTrack] = {}
        self._keys: dict[int, int] = {}  # tracker's track id -> its track key since the last cut
        self._thumb: np.ndarray | None = None
        self._next_key = 0
        #: cuts found, and tracks split because their face changed (frame numbers, 1-based)
        self.cuts: list[int] = []
        self.splits: list[int] = []
        self._frame = 0
        #: links made: (track id, identity id, similarity, seconds absent) for the summary
        self.links: list[tuple[int, int, float, float]] = []

    def relabel(self, frames: Iterable[tuple[Any, float, list[Face]]]) -> Iterator[tuple[Any, list[Face]]]:
        """Yield ``(item, faces)`` for each ``(item, timestamp, faces)`` of ``frames``, in order, with each face's
        ``track_id`` replaced by its identity's number (faces without a track id are passed as they are).

        ``item`` is passed through untouched (e.g. the pipeline's ``Frame``); when it is not an image itself,
        ``image_of`` must give the frame's RGB image. Frames are held back while a new track is being decided, at
        most ``settings.max_hold`` frames; the rest are yielded when ``frames`` ends.
        """
        held: deque[tuple[Any, list[Face]]] = deque()
        for item, timestamp, faces in frames:
            faces = self._observe(image_of(item), float(timestamp), faces)
            held.append((item, faces))
            while held and all(f.track_id is None or f.track_id in self._tracks for f in held[0][1]):
                yield self._mapped(*held.popleft())
        self._decide_all()
        while held:
            yield self._mapped(*held.popleft())

    def summary(self) -> dict[str, Any]:
        """The identities, the links made and the descriptors' cost (for the run's summary JSON)."""
        count, seconds = getattr(self.describer, "count", 0), getattr(self.describer, "seconds", 0.0)
        return {"identities": len(self._identities), "tracks": len(self._tracks), "cuts": self.cuts,
                "splits": self.splits,
                "descriptors": count,
                "ms_per_descriptor": round(1000 * seconds / count, 2) if count else None,
                "links": [{"track": t, "face_id": i, "similarity": round(s, 4), "absent_seconds": round(g, 3)}
                          for t, i, s, g in self.links],
                "settings": dataclasses.asdict(self.settings)}

    # --- internals -------------------------------------------------------------------------------------------

    def _mapped(self, item: Any, faces: list[Face]) -> tuple[Any, list[Face]]:
        return item, [f if f.track_id is None else dataclasses.replace(f, track_id=self._tracks[f.track_id])
                      for f in faces]

    def _observe(self, image: np.ndarray, t: float, faces: list[Face]) -> list[Face]:
        """Take in one frame: ``faces`` with their tracker ids replaced by track keys (new ones after a cut)."""
        s = self.settings
        self._frame += 1
        if self._is_cut(image):
            self._keys.clear()
            self.cuts.append(self._frame)
        faces = [f if f.track_id is None else dataclasses.replace(f, track_id=self._key(f.track_id)) for f in faces]
        present = {f.track_id for f in faces if f.track_id is not None}
        # vanished and not continued by another track within max_hold frames: decide
        self._decide(*[k for k, new in self._new.items()
                       if k not in present and self._frame - new.last_frame > s.max_hold])
        want: list[tuple[Face, int]] = []
        for f in faces:
            if f.track_id is None:
                continue
            if f.track_id not in self._tracks and f.track_id not in self._new:
                self._new[f.track_id] = self._continued(f, t, present)
            ok = usable(f, image.shape, s)
            if f.track_id in self._new:
                new = self._new[f.track_id]
                new.frames += 1
                new.last_seen, new.last_frame, new.box = t, self._frame, f.box
                if ok:
                    want.append((f, f.track_id))
            else:
                ident = self._identities[self._tracks[f.track_id]]
                ident.see(t, t)
                if ok and self._frame - ident.last_described >= s.refresh_frames:
                    ident.last_described = self._frame
                    want.append((f, f.track_id))
        if want:
            descriptors = self.describer.describe(image, [f for f, _ in want])
            for (f, track), d in zip(want, descriptors):
                if track in self._new:
                    self._new[track].views.append(d)
                    continue
                ident = self._identities[self._tracks[track]]
                if ident.gallery and s.split_below is not None and max(float(g @ d) for g in ident.gallery) \
                        < s.split_below:
                    faces = self._resplit(track, f, t, d, faces)
                else:
                    self._remember(ident, d)
        self._decide(*[k for k, new in self._new.items()
                       if len(new.views) >= s.descriptors or new.frames >= s.max_hold])
        self._split_duplicates(faces, t)
        return faces

    def _resplit(self, key: int, face: Face, t: float, view: np.ndarray, faces: list[Face]) -> list[Face]:
        """The tracker's track under ``key`` now shows someone else (its id moved between crossing faces): from this
        frame on it is a new track to re-identify, starting with ``view``; returns ``faces`` relabelled."""
        tracker_id = next(k for k, v in self._keys.items() if v == key)
        new_key = self._keys[tracker_id] = self._next_key
        self._next_key += 1
        self._new[new_key] = _NewTrack(first_seen=t, last_seen=t, last_frame=self._frame, box=face.box, frames=1,
                                       views=[view])
        self.splits.append(self._frame)
        return [dataclasses.replace(f, track_id=new_key) if f.track_id == key else f for f in faces]

    def _key(self, track: int) -> int:
        """The key of the tracker's ``track`` (a fresh one for its first face after a cut)."""
        if track not in self._keys:
            self._keys[track] = self._next_key
            self._next_key += 1
        return self._keys[track]

    def _is_cut(self, image: np.ndarray) -> bool:
        """Whether ``image`` starts a new shot: its 32 x 18 grey thumbnail far from the previous frame's."""
        if self.settings.cut_threshold is None:
            return False
        grey = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
        before, self._thumb = self._thumb, thumb
        return before is not None and before.shape == thumb.shape and \
            float(np.abs(thumb - before).mean()) > self.settings.cut_threshold

    def _continued(self, face: Face, t: float, present: set[int]) -> _NewTrack:
        """A new track's record; if it starts next to where an undecided track just vanished (the tracker lost a
        face entering fast, or for a frame), it continues that track: its views and frames carry over, and one
        decision labels both."""
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        best, best_d = None, np.inf
        for k, old in self._new.items():
            if k in present or old.last_frame >= self._frame or t - old.last_seen > 1.0:
                continue
            reach = 1.5 * max(old.box[2] - old.box[0], old.box[3] - old.box[1], face.box[2] - face.box[0])
            d = float(np.hypot(cx - (old.box[0] + old.box[2]) / 2, cy - (old.box[1] + old.box[3]) / 2))
            if d <= reach and d < best_d:
                best, best_d = k, d
        if best is None:
            return _NewTrack(first_seen=t, last_seen=t, last_frame=self._frame, box=face.box)
        old = self._new.pop(best)
        return dataclasses.replace(old, absorbed=[*old.absorbed, best])

    def _remember(self, ident: _Identity, d: np.ndarray) -> None:
        """Add a view to the gallery unless it repeats one closely; the oldest goes when it is full."""
        if any(float(g @ d) > 0.97 for g in ident.gallery):
            return
        ident.gallery.append(d)
        del ident.gallery[: -self.settings.gallery]

    def _decide(self, *tracks: int) -> None:
        """Link the new ``tracks`` (decided together) to absent identities, best similarity first, one track per
        identity; the others become new identities."""
        s = self.settings
        news = {k: self._new.pop(k) for k in tracks}
        pairs = []  # (similarity, track, identity)
        for k, new in news.items():
            if not new.views:
                continue
            probe = np.mean(new.views, axis=0)
            probe /= max(float(np.linalg.norm(probe)), 1e-12)
            for ident in self._identities.values():
                if not ident.gallery or ident.overlaps(new.first_seen, new.last_seen):
                    continue  # no views, or visible together with the new track: someone else
                if s.max_gap_seconds is not None and ident.gap_to(new.first_seen, new.last_seen) > s.max_gap_seconds:
                    continue
                sim = max(float(g @ probe) for g in ident.gallery)
                if sim >= s.threshold:
                    pairs.append((sim, k, ident.id))
        linked: dict[int, int] = {}  # track -> identity
        for sim, k, i in sorted(pairs, reverse=True):
            if k in linked or i in linked.values():
                continue
            linked[k] = i
            self.links.append((k, i, sim, self._identities[i].gap_to(news[k].first_seen, news[k].last_seen)))
        for k, new in news.items():  # in the order the tracks started: new identities are numbered that way
            if k in linked:
                ident = self._identities[linked[k]]
            else:
                ident = self._identities[len(self._identities)] = _Identity(len(self._identities))
            for key in [k, *new.absorbed]:
                self._tracks[key] = ident.id
            ident.see(new.first_seen, new.last_seen)
            for d in new.views:
                self._remember(ident, d)

    def _decide_all(self) -> None:
        self._decide(*self._new)

    def _split_duplicates(self, faces: list[Face], t: float) -> None:
        """Two decided tracks of one identity in one frame (the tracker revived an old track of a person already
        linked to a new one): the later track becomes its own identity from here on."""
        seen: dict[int, int] = {}
        for f in sorted((f for f in faces if f.track_id in self._tracks), key=lambda f: f.track_id):
            ident = self._tracks[f.track_id]
            if ident in seen:
                new = self._identities[len(self._identities)] = _Identity(len(self._identities), seen=[[t, t]])
                self._tracks[f.track_id] = new.id
            else:
                seen[ident] = f.track_id


def image_of(item: Any) -> np.ndarray:
    """The RGB image of a pipeline ``Frame`` (its ``image``) or of a bare array."""
    return item if isinstance(item, np.ndarray) else item.image
