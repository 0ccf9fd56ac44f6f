"""Report generation time for long sessions: synthetic rows of a 1-hour video (3 people, expressions changing every
few seconds, exits and returns, frames without a face), summarised and rendered to HTML without thumbnails.

Usage: python benchmarks/report.py [--minutes 60] [--fps 5] [--people 3] [--out benchmarks/results/report.json]

At ``--fps 5`` (``openfer analyze --fps 5``, a common setting for hour-long recordings) one hour is 18,000 frames
and about 50,000 rows. Times are wall-clock on this machine, reading the rows from CSV included.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from openfer.io.rows import read_rows, row_columns
from openfer.labels import CANONICAL8
from openfer.report.html import session_html
from openfer.report.session import summarize_rows


def synthetic_rows(minutes: float, fps: float, people: int, seed: int = 0) -> pd.DataFrame:
    """Rows as ``openfer analyze`` writes them: each person present 85 % of the time in stretches, with a top
    expression that changes every 2-20 s and Dirichlet-noisy probabilities."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * fps)
    t = np.arange(n) / fps
    frames = []
    for fid in range(people):
        present = np.repeat(rng.random(n // 50 + 1) < 0.85, 50)[:n]
        expr = np.repeat(rng.choice(len(CANONICAL8), n // 20 + 1, p=[.5, .2, .08, .08, .06, .03, .03, .02]),
                         rng.integers(10, 100, n // 20 + 1))[:n]
        alpha = np.full((n, len(CANONICAL8)), 0.3)
        alpha[np.arange(n), expr] = 6.0
        p = np.array([rng.dirichlet(a) for a in alpha])
        frames.append(pd.DataFrame({"frame": np.arange(n) + 1, "timestamp": t, "face_id": fid, "confidence": 0.9,
                                    "success": 1, "x1": 10.0, "y1": 10.0, "x2": 60.0, "y2": 60.0,
                                    "expression": [CANONICAL8[i] for i in p.argmax(1)],
                                    **{f"p_{c}": p[:, k] for k, c in enumerate(CANONICAL8)}})[present])
    rows = pd.concat(frames)
    empty = np.setdiff1d(np.arange(n) + 1, rows["frame"].unique())
    blank = pd.DataFrame({"frame": empty, "timestamp": (empty - 1) / fps, "face_id": -1, "confidence": 0.0,
                          "success": 0})
    return pd.concat([rows, blank]).sort_values(["frame", "face_id"]).reindex(columns=row_columns(CANONICAL8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--fps", type=float, default=5)
    ap.add_argument("--people", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/report.json")
    args = ap.parse_args()
    rows = synthetic_rows(args.minutes, args.fps, args.people)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        rows.to_csv(path, index=False)
        t0 = time.perf_counter()
        rows = read_rows(path)
        t1 = time.perf_counter()
        summary = summarize_rows(rows, name="synthetic")
        t2 = time.perf_counter()
        page = session_html(summary, rows)
        t3 = time.perf_counter()
    result = {"minutes": args.minutes, "fps": args.fps, "people": args.people, "rows": len(rows),
              "episodes": sum(len(p.episodes) for p in summary.people),
              "seconds": {"read_csv": t1 - t0, "summarize": t2 - t1, "html": t3 - t2, "total": t3 - t0},
              "html_bytes": len(page.encode())}
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
