"""Outputs are written under a temporary name beside their target and renamed into place when complete, so a run
that is killed never leaves a half-written file where a good one was (an earlier result, or anything else)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path


def part_path(target: str | Path) -> Path:
    """The temporary name of ``target`` while it is written: hidden, in the same folder (so the rename is atomic),
    keeping the ending (video writers choose their container by it)."""
    target = Path(target)
    return target.with_name(f".{target.stem}.{os.getpid()}.part{target.suffix}")


def publish(part: str | Path, target: str | Path) -> None:
    """Move a finished ``part`` onto ``target`` in one step (an existing ``target`` is replaced only now)."""
    os.replace(part, target)


def write_text_atomic(target: str | Path, text: str) -> None:
    """``Path(target).write_text(text)``, but through a temporary file and a rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    part.write_text(text, encoding="utf-8")
    publish(part, target)


def write_csv_atomic(target: str | Path, rows: list[dict]) -> None:
    """``rows`` (dicts) as a CSV file with a header of every key in first-seen order, through ``write_text_atomic``
    (an empty list gives an empty file)."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    write_text_atomic(target, buf.getvalue())
