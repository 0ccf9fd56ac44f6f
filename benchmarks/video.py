"""Video pipeline benchmarks on generated videos (astronaut heads moving over a grey background).

    python benchmarks/video.py throughput [--frames 300]   # frames/s at 640x480 and 1280x720, 1-3 faces
    python benchmarks/video.py tracking                    # ID switches / fragmentation on scenes with known ids
    python benchmarks/video.py memory [--minutes 60]       # peak RSS over a long video, sampled as it runs

Each writes JSON to benchmarks/results/video-<what>.json. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import moving_faces_video  # noqa: E402 - the tests' scene generator, shared on purpose

from openfer import Analyzer  # noqa: E402
from openfer.detect import CenterFaceDetector  # noqa: E402
from openfer.video import Sampling, open_source, run_video  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def walkers(n_frames: int, size: tuple[int, int], people: int) -> dict[int, list]:
    """``people`` heads bouncing across the frame on separate lanes (no overlap), head ~40% of the lane."""
    w, h = size
    lane = h // people
    head = int(lane * 0.8)
    head_w = int(head * 150 / 180) + 1
    out = {}
    for p in range(people):
        span = w - head_w - 1
        xs = [abs((p * 97 + 5 * i) % (2 * span) - span) for i in range(n_frames)]
        out[p] = [(x, p * lane + 2, head) for x in xs]
    return out


def environment(note: str = "") -> dict:
    """Machine facts and the 1-minute load average at the start (other work on the machine slows every number)."""
    load = os.getloadavg()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "load_avg_1m_at_start": load[0],
            "note": note}


def throughput(args) -> dict:
    """frames/s per video size, face count, model and decode-thread setting. With several ``--model``s the models
    run in turn, ``--repeats`` rounds, so they share the machine's load; the best and median round are kept."""
    res = {"environment": environment(args.note), "max_side": args.max_side, "models": args.model, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((640, 480), (1280, 720)):
            for people in (1, 3):
                path = Path(tmp) / f"{size[0]}x{size[1]}-{people}.avi"
                moving_faces_video(path, walkers(args.frames, size, people), size=size)
                analyzers = {m: Analyzer(detector=CenterFaceDetector(max_side=args.max_side), classifier=m)
                             for m in args.model}
                for prefetch in args.prefetch:
                    rounds: dict[str, list[float]] = {m: [] for m in args.model}
                    for _ in range(args.repeats):
                        for model, an in analyzers.items():
                            t0 = time.perf_counter()
                            r = run_video(an, open_source(path), out=Path(tmp) / "rows.csv",
                                          summary_path=Path(tmp) / "s.json", prefetch=prefetch)
                            rounds[model].append(r.frames / (time.perf_counter() - t0))
                    for model, fps in rounds.items():
                        key = f"{size[0]}x{size[1]} faces={people} prefetch={prefetch} model={model}"
                        res["runs"][key] = {"frames": r.frames, "faces_per_frame": people,
                                            "frames_per_s_best": round(max(fps), 1),
                                            "frames_per_s_median": round(float(np.median(fps)), 1),
                                            "rounds": [round(f, 1) for f in fps]}
                        print(key, res["runs"][key], flush=True)
    res["load_avg_1m_at_end"] = os.getloadavg()[0]
    return res


def _match(boxes: list, truth: list) -> dict[int, int]:
    """Greedy IoU >= 0.3 matching: index into ``truth`` -> index into ``boxes``."""
    from conftest import iou

    pairs = sorted(((iou(b, t), bi, ti) for bi, b in enumerate(boxes) for ti, t in enumerate(truth) if t),
                   reverse=True)
    used_b, used_t, out = set(), set(), {}
    for score, bi, ti in pairs:
        if score >= 0.3 and bi not in used_b and ti not in used_t:
            out[ti] = bi
            used_b.add(bi)
            used_t.add(ti)
    return out


def scenes(n: int) -> dict[str, dict[int, list]]:
    """Scenes with known identities at 640x480 (head 150 px tall unless said)."""
    return {
        "crossing": {0: [(20 + 4 * i, 150, 150) for i in range(n)],
                     1: [(495 - 4 * i, 170, 150) for i in range(n)]},
        "vanish_1s_and_return": {0: [None if 40 <= i < 70 else (100 + 2 * i, 100, 150) for i in range(n)],
                                 1: [(450, 250 - i, 140) for i in range(n)]},
        "three_moving": walkers(n, (640, 480), 3),
        "fast_motion_15px_per_frame": {0: [(abs((15 * i) % 1000 - 500), 150, 150) for i in range(n)]},
    }


def tracking(args) -> dict:
    res = {"environment": environment(args.note), "scenes": {}}
    an = Analyzer()
    with tempfile.TemporaryDirectory() as tmp:
        for name, people in scenes(args.frames).items():
            path = Path(tmp) / f"{name}.avi"
            truth = moving_faces_video(path, people, size=(640, 480))
            rows: list[dict] = []
            run_video(an, open_source(path), on_rows=rows.extend)
            by_frame: dict[int, list] = {}
            for r in rows:
                if r["success"]:
                    by_frame.setdefault(r["frame"] - 1, []).append(r)
            switches, ids, present, tracked = {p: 0 for p in truth}, {p: set() for p in truth}, 0, 0
            last = {p: None for p in truth}
            for i in range(args.frames):
                frs = by_frame.get(i, [])
                gt = [truth[p][i] for p in truth]
                m = _match([(r["x1"], r["y1"], r["x2"], r["y2"]) for r in frs], gt)
                for k, p in enumerate(truth):
                    if gt[k] is None:
                        continue
                    present += 1
                    fid = frs[m[k]]["face_id"] if k in m else -1
                    if fid < 0:
                        continue
                    tracked += 1
                    ids[p].add(fid)
                    if last[p] is not None and fid != last[p]:
                        switches[p] += 1
                    last[p] = fid
            res["scenes"][name] = {
                "people": len(truth), "frames": args.frames,
                "id_switches": sum(switches.values()),
                "fragmentation": sum(max(0, len(v) - 1) for v in ids.values()),
                "ids_per_person": {str(p): sorted(v) for p, v in ids.items()},
                "tracked_share": round(tracked / max(1, present), 3),
            }
            print(name, res["scenes"][name], flush=True)
    return res


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory(args) -> dict:
    fps, size = 15, (320, 240)
    n = int(args.minutes * 60 * fps)
    res = {"environment": environment(args.note), "video": {"minutes": args.minutes, "fps": fps, "size": list(size),
                                                   "frames": n, "every": args.every}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mp4"
        t0 = time.perf_counter()
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        from conftest import grey_canvas, paste_head

        for i in range(n):
            c = grey_canvas(*size)
            paste_head(c, 100, abs((3 * i) % 400 - 200), 40)
            if (i // 900) % 2:  # a second person every other minute
                paste_head(c, 80, 220, 150)
            writer.write(cv2.cvtColor(c, cv2.COLOR_RGB2BGR))
        writer.release()
        res["video"]["generate_s"] = round(time.perf_counter() - t0, 1)
        res["video"]["bytes"] = path.stat().st_size
        print("generated", res["video"], flush=True)
        an = Analyzer()
        samples: list[tuple[int, float]] = []

        def sample(r):
            if r.frames % 200 == 0:
                samples.append((r.frames, round(_rss_mb(), 1)))

        rss_before = _rss_mb()
        t0 = time.perf_counter()
        r = run_video(an, open_source(path, Sampling(every=args.every)), out=Path(tmp) / "rows.csv",
                      summary_path=Path(tmp) / "s.json", annotate_path=Path(tmp) / "a.mp4", on_frame=sample)
        secs = time.perf_counter() - t0
        import resource

        res.update(rss_before_run_mb=round(rss_before, 1),
                   peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                   rss_samples_frames_mb=samples, frames_analysed=r.frames, rows=r.rows, tracks=r.tracks,
                   seconds=round(secs, 1), problems=r.problems)
        print({k: v for k, v in res.items() if k != "rss_samples_frames_mb"}, flush=True)
        print("rss samples (first, middle, last):", samples[:2], samples[len(samples) // 2], samples[-2:])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["throughput", "tracking", "memory"])
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--every", type=int, default=5, help="memory: analyse every Nth frame")
    ap.add_argument("--max-side", type=int, default=640, help="throughput: detector's --max-side")
    ap.add_argument("--model", nargs="+", default=["default"],
                    help="throughput: expression models (default, fast, ...); several run in turn")
    ap.add_argument("--repeats", type=int, default=1, help="throughput: rounds per model")
    ap.add_argument("--note", default="", help="what else ran on the machine (stored with the results)")
    ap.add_argument("--prefetch", type=int, nargs="+", default=[4, 0],
                    help="throughput: decode-thread queue sizes to run (0: decode in the main thread)")
    args = ap.parse_args()
    args.frames = args.frames or {"throughput": 300, "tracking": 120, "memory": 0}[args.what]
    result = {"throughput": throughput, "tracking": tracking, "memory": memory}[args.what](args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = {"memory": f"video-memory-every{args.every}", "tracking": "video-tracking",
            "throughput": "video-throughput" + ("" if args.max_side == 640 else f"-max-side{args.max_side}")
            + ("" if args.model == ["default"] else "-" + "-".join(args.model))}[args.what]
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
