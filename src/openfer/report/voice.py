"""The voice track of a session report: who-speaks-when and vocal arousal over time under the faces, from the
voice columns of rows written with ``openfer analyze VIDEO --audio`` (nothing when the rows have none)."""

from __future__ import annotations

import html

import numpy as np

from openfer.report.session import valence_arousal

VOICE_NOTE = (
    "The <b>voice</b> line is the label-free vocal arousal index: the mean z-score of pitch, loudness, alpha ratio, "
    "minus the Hammarberg index, and speaking rate over this session's speech seconds (0 = this session's average "
    "voice, +1 = one standard deviation more activated). The face line is the faces' derived arousal, z-scored over "
    "the same session so both share a scale; the two are shown side by side, not combined. Speech-emotion "
    "probabilities come from a classifier trained on <b>German acted speech</b> (EmoDB, 10 actors): treat them as "
    "a rough hint, not a reading of anyone's feelings."
)


def _z(v: np.ndarray) -> np.ndarray:
    ok = np.isfinite(v)
    if ok.sum() < 2 or np.nanstd(v) < 1e-9:
        return np.full(v.shape, np.nan)
    return (v - np.nanmean(v)) / np.nanstd(v)


def voice_timeline(rows, classes: tuple[str, ...]):
    """One row per analysed frame time: ``time``, ``speech``, ``voice_arousal``, ``face_arousal`` (faces'
    derived arousal averaged over the faces of that frame, z-scored over the session) and ``voice_expression``;
    None when the rows have no voice values."""
    if "voice_speech" not in rows.columns or rows["voice_speech"].isna().all():
        return None
    import pandas as pd

    cols = [f"p_{c}" for c in classes]
    faces = rows[rows["success"] == 1]
    _, ar = valence_arousal(faces[cols].to_numpy(np.float64), classes)
    face = pd.Series(ar, index=faces.index).groupby(faces["timestamp"]).mean()
    g = rows.groupby("timestamp").first()
    out = pd.DataFrame({"time": g.index.to_numpy(np.float64), "speech": g["voice_speech"].to_numpy(np.float64),
                        "voice_arousal": g["voice_arousal"].to_numpy(np.float64),
                        "voice_expression": g["voice_expression"].to_numpy()})
    out["face_arousal"] = _z(face.reindex(g.index).to_numpy(np.float64))
    return out


def voice_plot(tl, duration_s: float) -> str:
    """Speech (shaded) and the voice and face arousal over time (PNG URI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from openfer.report.html import _png

    t = tl["time"].to_numpy()
    fig, ax = plt.subplots(figsize=(9, 2.2))
    ax.fill_between(t, -3, 3, where=tl["speech"].to_numpy() > 0, color="#CCE5F5", step="mid", label="speech",
                    linewidth=0)
    ax.plot(t, tl["voice_arousal"].clip(-3, 3), color="#D55E00", lw=1.4, label="voice arousal (z)")
    ax.plot(t, tl["face_arousal"].clip(-3, 3), color="#555555", lw=1.0, ls="--", label="face arousal (derived, z)")
    ax.axhline(0, color="#999", lw=0.6)
    ax.set_ylim(-3, 3)
    ax.set_xlim(0, max(duration_s, t[-1] if len(t) else 0))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("z")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return _png(fig)


def voice_section(rows, classes: tuple[str, ...], duration_s: float) -> str:
    """The report's "Voice" section (HTML), or "" when the rows carry no voice."""
    tl = voice_timeline(rows, classes)
    if tl is None:
        return ""
    e = html.escape
    speaking = tl["speech"] > 0
    share = float(speaking.mean()) if len(tl) else 0.0
    both = tl[speaking & tl["voice_arousal"].notna() & tl["face_arousal"].notna()]
    corr = (f"; voice and face arousal correlate at r = {np.corrcoef(both['voice_arousal'], both['face_arousal'])[0, 1]:+.2f} "
            f"over {len(both)} speaking frames" if len(both) > 10 and both["voice_arousal"].std() > 0
            and both["face_arousal"].std() > 0 else "")
    emo = tl.loc[speaking, "voice_expression"].dropna().value_counts(normalize=True)
    emo_rows = "".join(f"<tr><td>{e(str(k))}</td><td>{v * 100:.0f} %</td></tr>" for k, v in emo.items())
    return (f"<section class='person'><h2>Voice</h2><p>Someone speaks in {share * 100:.0f} % of the analysed "
            f"frames{corr}.</p><img class='plot' src='{voice_plot(tl, duration_s)}' alt='speech and arousal over "
            f"time'>" + (f"<table><tr><th>speech emotion (top class)</th><th>share of speaking frames</th></tr>"
                         f"{emo_rows}</table>" if emo_rows else "") + f"<div class='note'>{VOICE_NOTE}</div></section>")
