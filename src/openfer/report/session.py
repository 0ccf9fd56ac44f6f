"""What a recorded session shows, per person: time in each expression, episodes, notable moments, coverage, and a
derived valence/arousal, computed from the rows of ``openfer analyze video --out`` (``openfer.io.rows``).

Everything here describes apparent facial expressions as a model reads them from video frames, not felt emotions,
and not a diagnosis. Valence and arousal are *derived* from the expression probabilities by a fixed mapping
(``CIRCUMPLEX``), not measured.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

#: Where each expression sits on Russell's (1980) circumplex of affect, in degrees: his eight reference directions
#: are pleasure 0, excitement 45, arousal 90, distress 135, displeasure 180, depression 225, sleepiness 270,
#: relaxation 315. The placement of the expressions between them is ours (documented in docs/sessions.md);
#: neutral sits at the centre. valence = sum p_c cos(angle_c), arousal = sum p_c sin(angle_c), each in [-1, 1].
CIRCUMPLEX = {"happiness": 22.5, "surprise": 90.0, "fear": 112.5, "anger": 135.0, "disgust": 157.5,
              "contempt": 180.0, "sadness": 225.0}
#: Frames whose top probability is below this are counted as low-confidence time.
LOW_CONFIDENCE = 0.5
#: A head whose forward direction is within this many degrees of the line to the camera counts as facing it.
FACING_DEG = 20.0
#: A gaze (mean of both eyes) within this many degrees of the line to the camera counts as looking at it; the gaze
#: estimate is unvalidated (docs/geometry.md), so this share is a rough guide.
GAZE_DEG = 15.0
_POSE = ("pose_Rx", "pose_Ry", "pose_Tx", "pose_Ty", "pose_Tz")
_GAZE = tuple(f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz")


@dataclass(frozen=True)
class Attention:
    """Where a person's head and eyes pointed relative to the camera (frames with geometry only)."""

    frames: int  #: frames with a head pose
    facing_share: float  #: head pointed within ``FACING_DEG`` of the camera
    gaze_share: float  #: gaze within ``GAZE_DEG`` of the camera (unvalidated estimate)
    head_angle_deg: float  #: median angle between the head's forward direction and the line to the camera
    gaze_angle_deg: float  #: median angle between the gaze and the line to the camera


def _angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip((u * v).sum(1), -1.0, 1.0)))


def attention(rows) -> Attention | None:
    """The ``Attention`` of one person's rows, or ``None`` without geometry columns (no ``--geometry``).

    Angles are measured against the line from the head (``pose_T*``) to the camera, not the optical axis, so a person
    at the edge of the frame who looks into the lens counts as looking at the camera. The head's forward direction
    is the third column of OpenFace's R = Rx·Ry·Rz, negated: (−sin Ry, sin Rx cos Ry, −cos Rx cos Ry); roll does not
    move it.
    """
    if not set(_POSE + _GAZE) <= set(rows.columns):
        return None
    v = rows[list(_POSE + _GAZE)].to_numpy(np.float64)
    v = v[np.isfinite(v).all(1) & (v[:, 4] > 0)]
    if not len(v):
        return None
    rx, ry, to_camera = v[:, 0], v[:, 1], -v[:, 2:5]
    forward = np.stack([-np.sin(ry), np.sin(rx) * np.cos(ry), -np.cos(rx) * np.cos(ry)], 1)
    head = _angle_deg(forward, to_camera)
    gaze = _angle_deg(v[:, 5:8] + v[:, 8:11], to_camera)
    return Attention(frames=len(v), facing_share=float((head <= FACING_DEG).mean()),
                     gaze_share=float((gaze <= GAZE_DEG).mean()), head_angle_deg=float(np.median(head)),
                     gaze_angle_deg=float(np.median(gaze)))


@dataclass(frozen=True)
class Episode:
    """A stretch of time in which one expression was the top class (shorter interruptions absorbed)."""

    expression: str
    start_s: float
    end_s: float
    peak: float  #: highest probability of the expression in the stretch
    peak_s: float  #: when it was reached
    peak_frame: int  #: its frame number (1-based, as the rows)


@dataclass(frozen=True)
class PersonSummary:
    """One tracked person (``face_id``) over the session."""

    face_id: int
    start_s: float
    end_s: float
    frames: int
    seconds: float  #: time on screen: analysed frames x the time between analysed frames
    share: dict[str, float]  #: time share of each expression as top class
    mean_probability: dict[str, float]
    dominant: str
    valence: float  #: derived (``CIRCUMPLEX``), mean over frames
    arousal: float  #: derived
    low_confidence_share: float
    episodes: tuple[Episode, ...]  #: every top-class stretch, in time order
    notable: tuple[Episode, ...]  #: the strongest non-neutral episodes, strongest first
    compounds: tuple[tuple[str, float], ...]  #: the two most common compound expressions and their time share
    best_frame: int  #: frame where the face was detected most confidently (for a thumbnail)
    best_box: tuple[float, float, float, float]
    attention: Attention | None = None  #: head pose and gaze, when the rows have geometry columns
    #: share of frames whose face was clean or had each kind of damage (``damage_shares``), with a damage probe
    damage: dict[str, float] | None = None


@dataclass(frozen=True)
class SessionSummary:
    """A session: its people and how much of it had a face at all."""

    name: str
    classes: tuple[str, ...]
    duration_s: float
    frame_step_s: float
    frames: int  #: analysed frames
    no_face_share: float  #: share of analysed frames without any face
    people: tuple[PersonSummary, ...] = field(default_factory=tuple)


def valence_arousal(probs: np.ndarray, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Derived valence and arousal of probability rows [N, K] (``CIRCUMPLEX``); classes not on it add 0."""
    angles = np.radians([CIRCUMPLEX.get(c, 0.0) for c in classes])
    on = np.array([c in CIRCUMPLEX for c in classes], np.float64)
    return probs @ (np.cos(angles) * on), probs @ (np.sin(angles) * on)


def episodes(top: list[str], probs: np.ndarray, times: np.ndarray, frames: np.ndarray, classes: tuple[str, ...],
             min_s: float, step: float) -> list[Episode]:
    """Runs of one top class, a run shorter than ``min_s`` absorbed into the one before it (flicker is not an
    episode); the person out of view for more than a second ends a run. ``probs`` [N, K], ``times`` and
    ``frames`` [N] in time order, ``step`` the time between analysed frames."""
    gap = max(1.0, 3 * step)  # the person out of view this long ends a stretch
    runs: list[list] = []  # [expression, first index, last index]
    for i, expr in enumerate(top):
        if runs and runs[-1][0] == expr and times[i] - times[i - 1] <= gap:
            runs[-1][2] = i
        else:
            runs.append([expr, i, i])
    merged: list[list] = []
    for run in runs:
        too_short = times[run[2]] - times[run[1]] + step < min_s
        joined = merged and times[run[1]] - times[merged[-1][2]] <= gap
        if joined and (too_short or merged[-1][0] == run[0]):
            merged[-1][2] = run[2]  # a flicker joins the stretch before it, which may then go on
        else:
            merged.append(run)
    out = []
    for expr, a, b in merged:
        k = classes.index(expr)
        j = a + int(np.argmax(probs[a:b + 1, k]))
        out.append(Episode(expr, float(times[a]), float(times[b] + step), float(probs[j, k]), float(times[j]),
                           int(frames[j])))
    return out


def damage_shares(rows) -> dict[str, float] | None:
    """Share of the rows whose face was ``clean`` or whose most likely damage was ``eyes covered``, ``mouth
    covered`` or ``low detail`` (``openfer.classify.damage.damage_note``), when the rows have the damage probe's
    ``damage_<kind>`` columns (a model such as ``default-soft``); None otherwise."""
    from openfer.classify.damage import DAMAGE_NOTES, damage_note

    cols = [c for c in rows.columns if c.startswith("damage_")]
    values = rows[cols].to_numpy(np.float64) if cols else np.zeros((0, 0))
    values = values[~np.isnan(values).any(axis=1)]
    if not len(values):
        return None
    kinds = [c[len("damage_"):] for c in cols]
    notes = Counter(damage_note(dict(zip(kinds, v))) or "clean" for v in values)
    return {n: notes.get(n, 0) / len(values) for n in DAMAGE_NOTES}


def summarize_rows(rows, name: str = "session", min_episode_s: float = 1.0, notable: int = 3) -> SessionSummary:
    """The session summary of a rows DataFrame (``openfer.io.rows.read_rows`` or ``analyze_video``).

    Args:
        rows: one row per analysed frame and face (``success`` 0 rows mark frames without a face).
        name: what the session is called in the report (the video's name).
        min_episode_s: an expression stretch shorter than this is absorbed into its neighbour.
        notable: how many notable moments (strongest non-neutral episodes) to keep per person.
    """
    from openfer.classify.compound import compound_indices, compound_name

    classes = tuple(c[2:] for c in rows.columns if c.startswith("p_"))
    if not classes:
        raise ValueError("these rows have no probability columns (p_<class>): not an openfer rows file")
    frame_times = rows.groupby("frame")["timestamp"].first().sort_values()
    steps = np.diff(frame_times.to_numpy())
    step = float(np.median(steps)) if len(steps) else 0.0
    faces = rows[(rows["success"] == 1) & (rows["face_id"] >= 0)]
    with_face = rows.loc[rows["success"] == 1, "frame"].nunique()
    people = []
    for fid, g in faces.groupby("face_id"):
        g = g.sort_values("timestamp")
        probs = g[[f"p_{c}" for c in classes]].to_numpy(np.float64)
        # the label each row was given (the model's decision rule); rows without one fall back to the argmax
        top = (g["expression"].astype(str).tolist() if "expression" in g and g["expression"].notna().all()
               else [classes[i] for i in probs.argmax(1)])
        times, frames = g["timestamp"].to_numpy(np.float64), g["frame"].to_numpy(np.int64)
        counts = Counter(top)
        share = {c: counts.get(c, 0) / len(top) for c in classes}
        v, a = valence_arousal(probs, classes)
        eps = episodes(top, probs, times, frames, classes, min_episode_s, step)
        strong = sorted((e for e in eps if e.expression != "neutral"), key=lambda e: -e.peak)[:notable]
        pairs, is_compound = compound_indices(probs)
        pair_counts = Counter((classes[p[0]], classes[p[1]]) for p, ok in zip(pairs.tolist(), is_compound) if ok)
        compounds = tuple((compound_name(p), n / len(top)) for p, n in pair_counts.most_common(2))
        best = g.loc[g["confidence"].idxmax()]
        people.append(PersonSummary(
            face_id=int(fid), start_s=float(times[0]), end_s=float(times[-1] + step), frames=len(g),
            seconds=len(g) * step, share=share,
            mean_probability={c: float(probs[:, k].mean()) for k, c in enumerate(classes)},
            dominant=max(share, key=share.get), valence=float(v.mean()), arousal=float(a.mean()),
            low_confidence_share=float((probs.max(1) < LOW_CONFIDENCE).mean()), episodes=tuple(eps),
            notable=tuple(strong), compounds=compounds, best_frame=int(best["frame"]),
            best_box=tuple(float(best[k]) for k in ("x1", "y1", "x2", "y2")), attention=attention(g),
            damage=damage_shares(g)))
    n_frames = int(rows["frame"].nunique())
    duration = float(frame_times.iloc[-1] - frame_times.iloc[0] + step) if n_frames else 0.0
    return SessionSummary(name=name, classes=classes, duration_s=duration, frame_step_s=step, frames=n_frames,
                          no_face_share=1 - with_face / n_frames if n_frames else math.nan,
                          people=tuple(sorted(people, key=lambda p: -p.seconds)))
