"""A user's labels for ``openfer fit``: a CSV naming images or video clips, a label each, optionally a group."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openfer.errors import UnreadableInputError


class LabelFileError(UnreadableInputError):
    """The labels CSV cannot be used as it is (the message says which rows and why)."""


@dataclass(frozen=True)
class LabelSet:
    """Labelled items, struct of arrays (N rows).

    Attributes:
        path: image or video file of each row, resolved against the CSV's folder.
        label: label name of each row (any label set: "engaged", "confused", ...).
        group: person / session / site of each row (cross-validation keeps a group on one side); None: no groups.
        start, end: seconds of a video clip (NaN: from the start / to the end); all NaN for images.
        classes: the sorted distinct labels.
    """

    path: list[str]
    label: list[str]
    group: list[str] | None
    start: np.ndarray
    end: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.path)

    @property
    def y(self) -> np.ndarray:
        """Label indices into ``classes`` [N]."""
        return np.array([self.classes.index(lab) for lab in self.label], np.int64)


def read_labels(csv_path: str | Path, min_per_class: int = 2) -> LabelSet:
    """Read ``path,label[,group][,start,end]`` rows (header required; other columns are ignored).

    Relative paths are taken from the CSV's folder. Refuses, with every problem listed: a missing column, empty
    labels, files that do not exist, fewer than two classes, or a class with fewer than ``min_per_class`` rows.

    Raises:
        FileNotFoundError: no CSV there. LabelFileError: the CSV cannot be used.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: labels file not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in reader.fieldnames or []]
        rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    missing = [c for c in ("path", "label") if c not in fields]
    if missing:
        raise LabelFileError(f"{csv_path} needs a header with columns path,label[,group][,start,end]; "
                             f"missing {', '.join(missing)} (found: {', '.join(fields) or 'nothing'})")
    if not rows:
        raise LabelFileError(f"{csv_path} has no rows")
    problems = []
    base = csv_path.parent
    paths, labels, groups, starts, ends = [], [], [], [], []
    for line, r in enumerate(rows, start=2):
        p = Path(r["path"])
        p = p if p.is_absolute() else base / p
        if not r["path"] or not p.is_file():
            problems.append(f"line {line}: file not found: {r['path'] or '(empty)'}")
        if not r["label"]:
            problems.append(f"line {line}: empty label")
        paths.append(str(p))
        labels.append(r["label"])
        groups.append(r.get("group", ""))
        starts.append(_seconds(r.get("start", ""), line, problems))
        ends.append(_seconds(r.get("end", ""), line, problems))
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise LabelFileError(f"{csv_path}: {len(problems)} problem(s): {shown}")
    counts = Counter(labels)
    if len(counts) < 2:
        raise LabelFileError(f"{csv_path} has a single class ({next(iter(counts))!r}): a classifier needs at least "
                             "two labels")
    small = {k: v for k, v in counts.items() if v < min_per_class}
    if small:
        raise LabelFileError(f"{csv_path}: every class needs at least {min_per_class} rows for cross-validation; "
                             f"too few: {small}")
    has_groups = "group" in fields and any(groups)
    if has_groups and not all(groups):
        raise LabelFileError(f"{csv_path}: the group column is empty on some rows; fill it on every row or drop it")
    return LabelSet(paths, labels, groups if has_groups else None, np.array(starts), np.array(ends),
                    tuple(sorted(counts)))


def _seconds(text: str, line: int, problems: list[str]) -> float:
    if not text:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        problems.append(f"line {line}: start/end must be seconds, got {text!r}")
        return float("nan")
