"""Many videos in one `openfer analyze FOLDER --out DIR` (issue 16): throughput, and resume after Ctrl-C.

    python benchmarks/batch.py [--videos 8] [--frames 150] [--stop-after 3]

On generated 640x480 videos with two moving faces (the generator benchmarks/scale.py uses), as a user runs it
(the CLI in a subprocess, start-up included):

1. ``full``: the whole folder into a fresh output folder: wall seconds, videos/s, frames/s;
2. ``interrupted``: the same into another folder, Ctrl-C (SIGINT) once ``--stop-after`` videos have their summary;
3. ``resume``: the same command again: it must skip the finished videos and do the rest; its rows must equal the
   full run's, video by video;
4. ``rerun``: once more, with everything finished: it must skip all.

Writes benchmarks/results/batch.json. Not part of the test run; the machine may be shared (load is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def analyze(videos: Path, out: Path, stop_after: int | None = None) -> dict:
    """``openfer analyze videos --out out`` in a subprocess; with ``stop_after``, SIGINT once that many summaries
    exist. Returns wall seconds, exit code and how many summaries there are at the end."""
    cmd = [sys.executable, "-m", "openfer.cli", "analyze", str(videos), "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    signalled = None
    while stop_after is not None and proc.poll() is None:
        if len(list(out.glob("*.summary.json"))) >= stop_after:
            proc.send_signal(signal.SIGINT)
            signalled = time.perf_counter() - t0
            break
        time.sleep(0.05)
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else {}
    statuses = [e.get("status") for e in manifest.get("videos", {}).values()]
    return {"wall_s": round(wall, 2), "exit_code": proc.returncode, "sigint_at_s": signalled,
            "summaries": len(list(out.glob("*.summary.json"))),
            "status_counts": {s: statuses.count(s) for s in sorted(set(statuses), key=str)},
            "stderr_tail": err.strip().splitlines()[-3:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--stop-after", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from scale import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "data", 0, args.videos, args.frames)
        videos = root / "data" / "videos"
        load = [os.getloadavg()[0]]
        res = {"videos": args.videos, "frames_per_video": args.frames, "size": "640x480, 2 moving faces"}
        full = analyze(videos, root / "full")
        full["videos_per_s"] = round(args.videos / full["wall_s"], 3)
        full["frames_per_s"] = round(args.videos * args.frames / full["wall_s"], 1)
        res["full"] = full
        out = root / "resumed"
        res["interrupted"] = analyze(videos, out, stop_after=args.stop_after)
        res["resume"] = analyze(videos, out)
        res["rerun"] = analyze(videos, out)
        load.append(os.getloadavg()[0])
        same = [(out / p.name).read_bytes() == p.read_bytes() for p in sorted((root / "full").glob("*.rows.csv"))]
        res["resumed_rows_equal_full_run"] = f"{sum(same)} of {len(same)}"
        res["load_average_1min"] = load
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
