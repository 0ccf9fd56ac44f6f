"""Video-level summary per tracked face, accumulated row by row in constant memory per track."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from openfer.classify.damage import DAMAGE_NOTES, damage_note
from openfer.io.openface import summary_values
from openfer.types import Face


@dataclass
class _Stat:
    """Running count, mean, variance (Welford), min and max of one value."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, v: float) -> None:
        self.n += 1
        d = v - self.mean
        self.mean += d / self.n
        self.m2 += d * (v - self.mean)
        self.lo, self.hi = min(self.lo, v), max(self.hi, v)

    def to_dict(self) -> dict[str, float | None]:
        if not self.n:
            return {"mean": None, "std": None, "min": None, "max": None}
        r = lambda v: round(v, 5)  # noqa: E731
        return {"mean": r(self.mean), "std": r(math.sqrt(self.m2 / self.n)), "min": r(self.lo), "max": r(self.hi)}


@dataclass
class _Track:
    first_frame: int
    start: float
    last_frame: int = 0
    end: float = 0.0
    frames: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, _Stat] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # damage note (or "clean") -> frames, with a damage probe


class VideoSummary:
    """Per-track summary of a video: time share and segments of each expression, statistics of per-frame outputs.

    Feed it every analysed frame with ``add``; ``to_dict`` gives the JSON written by ``--summary``. Memory grows
    with the number of tracks and of expression changes, not with the number of frames.

    Args:
        classes: the classifier's class names.
        min_segment: an expression run shorter than this many analysed frames does not start a segment of its own
            (it is absorbed into the running segment), so one-frame flickers do not shatter the segment list.
    """

    def __init__(self, classes: tuple[str, ...], min_segment: int = 3) -> None:
        self.classes = classes
        self.min_segment = max(1, min_segment)
        self.frames = 0
        self.frames_with_faces = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self._tracks: dict[int, _Track] = {}
        # candidate run per track: expression, frames so far, onset frame, onset time, running segment's end
        self._pending: dict[int, tuple] = {}

    def add(self, frame_index: int, timestamp: float, faces: list[Face]) -> None:
        """Account one analysed frame (0-based source ``frame_index``) and its classified, tracked faces."""
        self.frames += 1
        self.frames_with_faces += bool(faces)
        self.first_t = timestamp if self.first_t is None else self.first_t
        self.last_t = timestamp
        for f in faces:
            if f.track_id is None or not f.expression:
                continue
            tr = self._tracks.get(f.track_id)
            if tr is None:
                tr = self._tracks[f.track_id] = _Track(first_frame=frame_index + 1, start=timestamp)
            tr.frames += 1
            tr.last_frame, tr.end = frame_index + 1, timestamp
            tr.counts[f.expression] = tr.counts.get(f.expression, 0) + 1
            if f.damage:
                note = damage_note(f.damage) or "clean"
                tr.notes[note] = tr.notes.get(note, 0) + 1
            for key, v in (("confidence", f.score), *((f"p_{c}", f.probabilities.get(c)) for c in self.classes),
                           *((f"damage_{k}", v) for k, v in f.damage.items()), *summary_values(f.geometry).items()):
                if v is not None:
                    tr.stats.setdefault(key, _Stat()).add(float(v))
            self._segment(f.track_id, tr, f.expression, frame_index + 1, timestamp)

    def _segment(self, tid: int, tr: _Track, expr: str, frame: int, t: float) -> None:
        segs = tr.segments
        if segs and segs[-1]["expression"] == expr:
            segs[-1].update(offset_frame=frame, offset_s=round(t, 4))
            self._pending.pop(tid, None)
            return
        pend = self._pending.get(tid)
        if pend is None or pend[0] != expr:  # a new candidate run; remember where the running segment ended
            last = (segs[-1]["offset_frame"], segs[-1]["offset_s"]) if segs else None
            pend = (expr, 0, frame, t, last)
        pend = (pend[0], pend[1] + 1, *pend[2:])
        if not segs or pend[1] >= self.min_segment:
            if pend[4] is not None:  # the candidate's frames belong to the new segment, not the running one
                segs[-1].update(offset_frame=pend[4][0], offset_s=pend[4][1])
            segs.append({"expression": expr, "onset_frame": pend[2], "offset_frame": frame,
                         "onset_s": round(pend[3], 4), "offset_s": round(t, 4)})
            self._pending.pop(tid, None)
        else:
            self._pending[tid] = pend
            segs[-1].update(offset_frame=frame, offset_s=round(t, 4))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (schema in docs/video.md)."""
        tracks = []
        for tid, tr in sorted(self._tracks.items()):
            share = {c: round(tr.counts.get(c, 0) / tr.frames, 4) for c in self.classes}
            tracks.append({
                "face_id": tid, "frames": tr.frames, "first_frame": tr.first_frame, "last_frame": tr.last_frame,
                "start_s": round(tr.start, 4), "end_s": round(tr.end, 4),
                "dominant_expression": max(share, key=share.get),
                "expression_share": share,
                **({"damage_share": {n: round(tr.notes.get(n, 0) / tr.frames, 4) for n in DAMAGE_NOTES}}
                   if tr.notes else {}),
                "stats": {k: s.to_dict() for k, s in tr.stats.items()},
                "segments": tr.segments,
            })
        return {"frames_analyzed": self.frames, "frames_with_faces": self.frames_with_faces,
                "start_s": self.first_t, "end_s": self.last_t, "num_tracks": len(tracks), "tracks": tracks}
