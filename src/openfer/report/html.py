"""Self-contained HTML reports of sessions (``SessionSummary``): one file per video that opens from disk with no
network (plots and face thumbnails embedded as images), prints to PDF, and an index across videos.

Plots use matplotlib (static PNGs) with the Okabe-Ito palette, readable by colour-blind people, and every class
also keeps a fixed position in the stack so it can be told apart in grey.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from openfer.report.session import (CIRCUMPLEX, FACING_DEG, GAZE_DEG, LOW_CONFIDENCE, PersonSummary,
                                    SessionSummary, valence_arousal)

#: One colour per class (Okabe & Ito 2008, "Color Universal Design"), neutral in grey.
COLOURS = {"neutral": "#BBBBBB", "happiness": "#E69F00", "surprise": "#56B4E9", "sadness": "#0072B2",
           "anger": "#D55E00", "disgust": "#009E73", "fear": "#CC79A7", "contempt": "#F0E442"}

WHAT_IT_IS = (
    "These figures describe <b>apparent facial expressions</b>: how a model trained on labelled photos reads each "
    "video frame. They are not measurements of what anyone feels, and not a diagnosis. Expressions depend on "
    "context, culture and the person; a frame can be misread (pose, light, occlusion), and the model is less "
    "reliable for rare expressions (disgust, fear, contempt). <b>Valence</b> (pleasant–unpleasant) and "
    "<b>arousal</b> (calm–activated) are <i>derived</i> from the expression probabilities by a fixed mapping onto "
    "Russell's circumplex of affect, not measured. Use the report to find moments worth reviewing, with the video."
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1000px;color:#222;
padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.note{background:#f6f6f0;border-left:4px solid #bbb;padding:.6rem 1rem;font-size:.92rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem} td,th{padding:.2rem .6rem;text-align:left;
border-bottom:1px solid #eee} th{background:#fafafa}
.person{page-break-inside:avoid;margin-bottom:2rem} .thumb{width:96px;height:96px;object-fit:cover;
border-radius:4px;margin-right:.4rem;vertical-align:middle}
.row{display:flex;gap:1.2rem;align-items:flex-start;flex-wrap:wrap} .plot{max-width:100%}
.muted{color:#666;font-size:.88rem} .swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;
margin-right:.3rem;vertical-align:middle}
@media print{body{margin:0;max-width:none}.person{page-break-inside:avoid}}
"""


def _png(fig) -> str:
    """A matplotlib figure as an inline PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _jpeg(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def timeline_plot(rows, person: PersonSummary, classes: tuple[str, ...], duration_s: float) -> str:
    """Stacked probabilities of one person over time, and the derived valence/arousal under them (PNG URI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = rows[(rows["face_id"] == person.face_id) & (rows["success"] == 1)].sort_values("timestamp")
    t = g["timestamp"].to_numpy(np.float64)
    probs = g[[f"p_{c}" for c in classes]].to_numpy(np.float64)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 3.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    # gaps (the person out of view) stay empty instead of being bridged
    breaks = np.where(np.diff(t) > max(1.0, 3 * np.median(np.diff(t)) if len(t) > 1 else 1.0))[0] + 1
    for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(t)]):
        top.stackplot(t[a:b], probs[a:b].T, colors=[COLOURS.get(c, "#999999") for c in classes],
                      labels=classes if a == 0 else (), linewidth=0)
        v, ar = valence_arousal(probs[a:b], classes)
        bottom.plot(t[a:b], v, color="#0072B2", lw=1.2, label="valence (derived)" if a == 0 else None)
        bottom.plot(t[a:b], ar, color="#D55E00", lw=1.2, ls="--", label="arousal (derived)" if a == 0 else None)
    top.set_ylim(0, 1)
    top.set_ylabel("probability")
    top.set_xlim(0, max(duration_s, t[-1] if len(t) else 0))
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False, reverse=True)
    bottom.set_ylim(-1, 1)
    bottom.axhline(0, color="#999", lw=0.6)
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return _png(fig)


def face_thumbnails(video: str | Path, wanted: dict[int, tuple[float, float, float, float]],
                    size: int = 96) -> dict[int, str]:
    """JPEG data URIs of face crops from ``video``: frame number (1-based, as the rows) -> box in that frame.
    Frames that cannot be read are left out."""
    import cv2

    out: dict[int, str] = {}
    cap = cv2.VideoCapture(str(video))
    try:
        for frame, (x1, y1, x2, y2) in sorted(wanted.items()):
            cap.set(cv2.CAP_PROP_POS_FRAMES, frame - 1)
            ok, bgr = cap.read()
            if not ok or bgr is None:
                continue
            h, w = bgr.shape[:2]
            side = max(x2 - x1, y2 - y1) * 1.3  # a square with some room around the face
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            crop = bgr[b:int(min(h, cy + side / 2)), a:int(min(w, cx + side / 2))]
            if crop.size:
                crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
                out[frame] = _jpeg(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return out


def _time(s: float) -> str:
    m, sec = divmod(max(0.0, s), 60)
    return f"{int(m)}:{sec:04.1f}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def session_html(session: SessionSummary, rows, video: str | Path | None = None, about: str = "") -> str:
    """The whole report of one session as an HTML string (``rows``: the DataFrame it was summarised from;
    ``video``: the source, for face thumbnails; ``about``: a line on how it was made, e.g. the model)."""
    e = html.escape
    thumbs: dict[int, str] = {}
    if video is not None:
        wanted = {}
        for p in session.people:
            wanted[p.best_frame] = p.best_box
            g = rows[rows["face_id"] == p.face_id].set_index("frame")
            for ep in p.notable:
                if ep.peak_frame in g.index:
                    r = g.loc[ep.peak_frame]
                    r = r.iloc[0] if r.ndim > 1 else r
                    wanted[ep.peak_frame] = tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        thumbs = face_thumbnails(video, wanted)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(session.name)} — openfer "
             f"report</title><meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{e(session.name)}</h1>",
             f"<p class='muted'>{_time(session.duration_s)} analysed ({session.frames} frames, one every "
             f"{session.frame_step_s:.2f} s); {len(session.people)} "
             f"{'person' if len(session.people) == 1 else 'people'} tracked; no face in "
             f"{_pct(session.no_face_share)} of the frames. {e(about)}</p>",
             f"<div class='note'>{WHAT_IT_IS}</div>"]
    legend = " ".join(f"<span><span class='swatch' style='background:{COLOURS.get(c, '#999')}'></span>{e(c)}</span>"
                      for c in session.classes)
    for p in session.people:
        shares = sorted(p.share.items(), key=lambda kv: -kv[1])
        share_rows = "".join(
            f"<tr><td><span class='swatch' style='background:{COLOURS.get(c, '#999')}'></span>{e(c)}</td>"
            f"<td>{_pct(v)}</td><td>{p.mean_probability[c]:.2f}</td></tr>" for c, v in shares if v > 0)
        thumb = f"<img class='thumb' src='{thumbs[p.best_frame]}' alt='person {p.face_id}'>" \
            if p.best_frame in thumbs else ""
        compounds = ", ".join(f"{e(name)} ({_pct(v)})" for name, v in p.compounds) or "none"
        notable = "".join(
            f"<tr><td>{_time(ep.peak_s)}</td><td>{e(ep.expression)}</td><td>{ep.peak:.2f}</td>"
            f"<td>{_time(ep.start_s)}–{_time(ep.end_s)}</td><td>"
            + (f"<img class='thumb' src='{thumbs[ep.peak_frame]}' alt='{e(ep.expression)} at {_time(ep.peak_s)}'>"
               if ep.peak_frame in thumbs else "") + "</td></tr>" for ep in p.notable)
        episodes = "".join(f"<tr><td>{_time(ep.start_s)}–{_time(ep.end_s)}</td><td>{e(ep.expression)}</td>"
                           f"<td>{ep.peak:.2f} at {_time(ep.peak_s)}</td></tr>" for ep in p.episodes[:40])
        more = f"<p class='muted'>… and {len(p.episodes) - 40} more (see the CSV).</p>" if len(p.episodes) > 40 else ""
        parts.append(
            f"<section class='person'><h2>{thumb}Person {p.face_id}</h2>"
            f"<p>On screen {_time(p.seconds)} (from {_time(p.start_s)} to {_time(p.end_s)}); mostly "
            f"<b>{e(p.dominant)}</b>. Derived valence {p.valence:+.2f}, arousal {p.arousal:+.2f} (−1 to +1). "
            f"Low-confidence frames (top probability under {LOW_CONFIDENCE:.1f}): {_pct(p.low_confidence_share)}. "
            f"Most common compound expressions: {compounds}.{_attention(p)}{_damage(p)}</p>"
            f"<img class='plot' src='{timeline_plot(rows, p, session.classes, session.duration_s)}' "
            f"alt='expression probabilities of person {p.face_id} over time'><p class='muted'>{legend}</p>"
            f"<div class='row'><div><table><tr><th>expression</th><th>time share</th><th>mean p</th></tr>"
            f"{share_rows}</table></div>"
            + (f"<div><table><tr><th>notable moment</th><th>expression</th><th>p</th><th>episode</th><th></th></tr>"
               f"{notable}</table></div>" if notable else "")
            + f"</div><details><summary>Episodes ({len(p.episodes)})</summary><table><tr><th>time</th>"
            f"<th>expression</th><th>peak</th></tr>{episodes}</table>{more}</details></section>")
    from openfer.report.voice import voice_section

    parts.append(voice_section(rows, session.classes, session.duration_s))  # empty unless rows have voice columns
    angles = ", ".join(f"{c} {a:g}°" for c, a in CIRCUMPLEX.items())
    parts.append(f"<p class='muted'>Made by openfer. Valence/arousal mapping (degrees on the circumplex, neutral at "
                 f"the centre): {e(angles)}. Episodes: stretches with one top expression, interruptions under 1 s "
                 f"absorbed.</p></body></html>")
    return "".join(parts)


def _attention(p: PersonSummary) -> str:
    """The head pose / gaze sentence of a person (empty without ``--geometry``)."""
    a = p.attention
    if a is None:
        return ""
    return (f" Head pointed at the camera (within {FACING_DEG:g}°) {_pct(a.facing_share)} of the frames with geometry "
            f"({a.frames}); gaze towards the camera (within {GAZE_DEG:g}°; an unvalidated estimate) "
            f"{_pct(a.gaze_share)}.")


def _damage(p: PersonSummary) -> str:
    """The sentence on how often the face was covered or unclear (empty without a damage probe's columns)."""
    if p.damage is None:
        return ""
    rest = ", ".join(f"{n} {_pct(v)}" for n, v in p.damage.items() if n != "clean")
    return (f" Face clear in {_pct(p.damage['clean'])} of the frames ({rest}; the model's damage probe): "
            f"expressions read on the others are less certain.")


def people_table(session: SessionSummary) -> list[dict]:
    """The per-person numbers of a report as rows for a CSV (one per person)."""
    out = []
    for p in session.people:
        row = {"session": session.name, "face_id": p.face_id, "start_s": round(p.start_s, 3),
               "end_s": round(p.end_s, 3), "seconds": round(p.seconds, 3), "frames": p.frames,
               "dominant": p.dominant, "valence_derived": round(p.valence, 4), "arousal_derived": round(p.arousal, 4),
               "low_confidence_share": round(p.low_confidence_share, 4), "episodes": len(p.episodes)}
        row.update({f"share_{c}": round(v, 4) for c, v in p.share.items()})
        row.update({f"mean_p_{c}": round(v, 4) for c, v in p.mean_probability.items()})
        if p.attention is not None:
            a = p.attention
            row.update(facing_camera_share=round(a.facing_share, 4), gaze_camera_share=round(a.gaze_share, 4),
                       head_angle_deg=round(a.head_angle_deg, 2), gaze_angle_deg=round(a.gaze_angle_deg, 2))
        if p.damage is not None:
            row.update({f"damage_share_{n.replace(' ', '_')}": round(v, 4) for n, v in p.damage.items()})
        out.append(row)
    return out


def index_html(entries: list[tuple[str, SessionSummary | None, str]]) -> str:
    """The index across sessions: (report file name, its summary or None when it failed, a note)."""
    e = html.escape
    rows = []
    for link, s, note in entries:
        if s is None:
            rows.append(f"<tr><td>{e(link)}</td><td colspan='4'>failed: {e(note)}</td></tr>")
            continue
        people = "; ".join(f"person {p.face_id}: {e(p.dominant)} ({_time(p.seconds)})" for p in s.people) or "no face"
        rows.append(f"<tr><td><a href='{e(link)}'>{e(s.name)}</a></td><td>{_time(s.duration_s)}</td>"
                    f"<td>{len(s.people)}</td><td>{_pct(s.no_face_share)}</td><td>{people}</td></tr>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>openfer reports</title>"
            f"<style>{_CSS}</style></head><body><h1>Sessions</h1><div class='note'>{WHAT_IT_IS}</div>"
            f"<table><tr><th>session</th><th>length</th><th>people</th><th>no face</th><th>people: mostly</th></tr>"
            f"{''.join(rows)}</table></body></html>")
