"""Compare groups of sessions or people (a researcher's first look): per group the mean and 95 % confidence
interval of each person's time shares and derived valence/arousal, and a rank test across groups.

The unit is one tracked person in one video (a row of ``people.csv``). The tests are Kruskal-Wallis (Mann-Whitney
U for two groups) from scipy, uncorrected for the number of measures: a screen for where to look, not a
confirmatory analysis.
"""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openfer.errors import UnreadableInputError
from openfer.report.html import _CSS, COLOURS, WHAT_IT_IS, _png


class GroupsFileError(UnreadableInputError):
    """A groups file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class GroupRule:
    """One line of the groups file: a video (file name or stem), optionally one person of it, and its group."""

    video: str
    face_id: int | None
    group: str


def read_groups(path: str | Path) -> list[GroupRule]:
    """The rules of a groups CSV: columns ``video,group`` (every person of the video) or ``video,face_id,group``.

    Raises:
        GroupsFileError: missing file or columns, an empty group name, a face_id that is not a whole number.
    """
    path = Path(path)
    if not path.is_file():
        raise GroupsFileError(f"{path}: groups file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        if "video" not in cols or "group" not in cols:
            raise GroupsFileError(f"{path}: needs the columns video,group (and optionally face_id); found "
                                  f"{', '.join(reader.fieldnames or []) or 'none'}")
        rules = []
        for i, row in enumerate(reader, start=2):
            group = (row[cols["group"]] or "").strip()
            video = (row[cols["video"]] or "").strip()
            if not group or not video:
                raise GroupsFileError(f"{path}, line {i}: empty video or group")
            fid = (row.get(cols["face_id"]) or "").strip() if "face_id" in cols else ""
            try:
                rules.append(GroupRule(video, int(fid) if fid else None, group))
            except ValueError:
                raise GroupsFileError(f"{path}, line {i}: face_id {fid!r} is not a whole number") from None
    return rules


def group_of(rules: list[GroupRule], video: str, face_id: int) -> str | None:
    """The group of one person: a rule naming the person wins over one naming the whole video."""
    name, stem = Path(video).name, Path(video).stem
    best = None
    for r in rules:
        if r.video in (name, stem, video):
            if r.face_id == face_id:
                return r.group
            if r.face_id is None:
                best = r.group
    return best


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95 % t-interval (the interval is NaN with fewer than two values)."""
    from scipy import stats

    v = np.asarray(values, np.float64)
    m = float(v.mean()) if len(v) else float("nan")
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def compare_groups(people: list[dict], rules: list[GroupRule], measures: list[str]) -> dict:
    """Per group and measure the n, mean and 95 % CI, and per measure the rank test across groups.

    Args:
        people: rows of ``openfer.report.html.people_table`` (``session`` holds the video name).
        measures: the columns to compare (e.g. ``share_happiness``, ``valence_derived``).

    Returns:
        ``{"groups": {group: {"n": int, measure: (mean, lo, hi)}}, "tests": {measure: {"test", "statistic",
        "p"}}, "unassigned": [(video, face_id)]}``.
    """
    from scipy import stats

    by_group: dict[str, list[dict]] = {}
    unassigned = []
    for row in people:
        g = group_of(rules, row["session"], int(row["face_id"]))
        if g is None:
            unassigned.append((row["session"], int(row["face_id"])))
        else:
            by_group.setdefault(g, []).append(row)
    groups = {g: {"n": len(rows), **{m: mean_ci(np.array([r[m] for r in rows])) for m in measures}}
              for g, rows in sorted(by_group.items())}
    tests = {}
    samples = {m: [np.array([r[m] for r in rows], np.float64) for rows in by_group.values() if len(rows) >= 2]
               for m in measures}
    for m, xs in samples.items():
        if len(xs) < 2 or np.ptp(np.concatenate(xs)) == 0:
            tests[m] = {"test": "none (needs two groups of two with varying values)", "statistic": None, "p": None}
        elif len(xs) == 2:
            r = stats.mannwhitneyu(xs[0], xs[1], alternative="two-sided")
            tests[m] = {"test": "Mann-Whitney U", "statistic": float(r.statistic), "p": float(r.pvalue)}
        else:
            r = stats.kruskal(*xs)
            tests[m] = {"test": "Kruskal-Wallis H", "statistic": float(r.statistic), "p": float(r.pvalue)}
    return {"groups": groups, "tests": tests, "unassigned": unassigned}


def _plot(result: dict, measures: list[str]) -> str:
    """Means with 95 % intervals per group, one panel per measure (PNG data URI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(result["groups"])
    cols = min(4, len(measures))
    rows = -(-len(measures) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    for ax, m in zip(axes.ravel(), measures):
        means = [result["groups"][g][m][0] for g in groups]
        lo = [result["groups"][g][m][0] - result["groups"][g][m][1] for g in groups]
        hi = [result["groups"][g][m][2] - result["groups"][g][m][0] for g in groups]
        colour = COLOURS.get(m.removeprefix("share_"), "#0072B2")
        ax.bar(range(len(groups)), means, color=colour, edgecolor="#333", linewidth=0.5)
        ax.errorbar(range(len(groups)), means, yerr=[np.nan_to_num(lo), np.nan_to_num(hi)], fmt="none",
                    ecolor="#222", capsize=3)
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
        ax.set_title(m.replace("share_", "time share: ").replace("_derived", " (derived)"), fontsize=9)
    for ax in axes.ravel()[len(measures):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def groups_html(result: dict, measures: list[str]) -> str:
    """The comparison as one self-contained HTML page."""
    e = html.escape
    groups = list(result["groups"])
    head = "".join(f"<th>{e(g)} (n = {result['groups'][g]['n']})</th>" for g in groups)
    body = []
    for m in measures:
        cells = []
        for g in groups:
            mean, lo, hi = result["groups"][g][m]
            cells.append(f"<td>{mean:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else "") + "</td>")
        t = result["tests"][m]
        test = f"{e(t['test'])}: p = {t['p']:.3g}" if t["p"] is not None else e(t["test"])
        body.append(f"<tr><td>{e(m)}</td>{''.join(cells)}<td>{test}</td></tr>")
    missing = result["unassigned"]
    note = (f"<p class='muted'>{len(missing)} tracked people had no group and were left out (first: "
            f"{e(str(missing[0][0]))} person {missing[0][1]}).</p>" if missing else "")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>openfer: groups</title>"
            f"<style>{_CSS}</style></head><body><h1>Groups</h1><div class='note'>{WHAT_IT_IS}</div>"
            f"<p>Each tracked person in each video counts once. Means with 95 % confidence intervals (t); rank tests "
            f"across groups (Kruskal-Wallis, or Mann-Whitney U for two), <b>not corrected for the "
            f"{len(measures)} measures</b>: a first look for where to look, not a confirmatory analysis.</p>"
            f"<img class='plot' src='{_plot(result, measures)}' alt='means and intervals per group'>"
            f"<table><tr><th>measure</th>{head}<th>test</th></tr>{''.join(body)}</table>{note}</body></html>")


def groups_table(result: dict, measures: list[str]) -> list[dict]:
    """The comparison as CSV rows: one per group and measure, with the measure's test."""
    out = []
    for g, stats_ in result["groups"].items():
        for m in measures:
            mean, lo, hi = stats_[m]
            t = result["tests"][m]
            out.append({"group": g, "n": stats_["n"], "measure": m, "mean": mean, "ci95_low": lo, "ci95_high": hi,
                        "test": t["test"], "p": t["p"]})
    return out
