"""The Ray engine against the single-process run on generated photos and videos (issue 19).

    python benchmarks/scale.py [--photos 2000] [--videos 8] [--frames 150] [--rounds 2]

Each configuration runs in its own Python process, in alternating order over ``--rounds`` rounds (the machine is
shared: medians are reported), on the same inputs:

- ``single``: one process, ONNX Runtime's default threads (what ``openfer analyze DIR --out RES`` does);
- ``single-1t``: one process, one ONNX thread (the fair match for one worker of one CPU);
- ``ray-1``, ``ray-2``: a local Ray of 2 CPUs (``ray.init``) and ``openfer.scale.analyze`` with 1 and 2 workers.

Per configuration: wall seconds, images/s and videos/s (photos and videos are two runs), CPU seconds of the
whole process tree (the driver, Ray's own processes and the workers, from /proc before Ray shuts down), worker CPU
seconds, Ray's start-up (``ray.init``) and actor start-up (first result minus its own time), and peak memory per
worker. Writes benchmarks/results/scale.json. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
CONFIGS = ("single", "single-1t", "ray-1", "ray-2")


def generate(root: Path, photos: int, videos: int, frames: int) -> None:
    """``photos`` 640x480 JPEGs with 1-3 astronaut heads (50 distinct pictures, copied under new names) and
    ``videos`` 640x480 MJPG videos of ``frames`` frames with 2 moving heads."""
    import cv2

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import moving_faces_video, scattered_heads  # the tests' generators, shared on purpose

    (root / "photos").mkdir(parents=True)
    distinct = []
    for i in range(min(50, photos)):
        img, _ = scattered_heads(640, 480, 1 + i % 3, seed=i, lo=90, hi=150)
        path = root / "photos" / f"p{i:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        distinct.append(path)
    for i in range(len(distinct), photos):
        shutil.copyfile(distinct[i % len(distinct)], root / "photos" / f"p{i:05d}.jpg")
    for v in range(videos):
        lane = [(20 + (7 * i + 40 * v) % 260, 40, 150) for i in range(frames)]
        other = [(380 - (5 * i + 30 * v) % 200, 200, 120) for i in range(frames)]
        moving_faces_video(root / "videos" / f"v{v}.avi", {0: lane, 1: other}, size=(640, 480))


def run_single(data: Path, out: Path, threads: int) -> dict:
    """The single-machine batch, as the CLI runs it: photos through ``run_images``, videos one by one."""
    from openfer.pipeline import run_images
    from openfer.scale import AnalysisSettings
    from openfer.video.batch import analyze_video_file

    settings = AnalysisSettings(threads=threads)
    res = {}
    t0, c0 = time.perf_counter(), time.process_time()
    photos = sorted((data / "photos").iterdir())
    summary = run_images(settings.analyzer("photos"), photos, jsonl=str(out / "photos.jsonl"),
                         csv_path=str(out / "photos.csv"))
    res["photos"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "n": summary.done,
                     "faces": summary.faces}
    t0, c0 = time.perf_counter(), time.process_time()
    analyzer = settings.analyzer("video")
    frames = 0
    videos = sorted((data / "videos").iterdir())
    for v in videos:
        frames += analyze_video_file(analyzer, v, out / f"{v.stem}.rows.csv", out / f"{v.stem}.summary.json",
                                     settings.sampling()).frames
    res["videos"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "n": len(videos),
                     "frames": frames}
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["tree_cpu_s"] = time.process_time()
    return res


def descendants_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of every process below ``pid`` (Ray's GCS, raylet, dashboard, workers),
    from /proc."""
    parent, cpu = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for child, par in parent.items():
            if par == p:
                found[child] = cpu[child]
                todo.append(child)
    return found


class TreeCpu:
    """Samples ``descendants_cpu_s`` every half second in a thread, keeping each process's latest figure: Ray's
    raylet does not collect the CPU time of the workers it ends, so they are counted while they live (up to half
    a second of a killed worker's last moments is missed)."""

    def __init__(self) -> None:
        import threading

        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self.seen.update(descendants_cpu_s(os.getpid()))

    def total(self) -> float:
        """CPU seconds of this process and every process below it seen so far."""
        self.seen.update(descendants_cpu_s(os.getpid()))
        return time.process_time() + sum(self.seen.values())


def run_ray(data: Path, out: Path, workers: int) -> dict:
    """A local Ray of 2 CPUs, then ``openfer.scale.analyze`` on the photos and on the videos."""
    import ray

    import openfer.scale

    cpu = TreeCpu()
    t0 = time.perf_counter()
    ray.init(num_cpus=2, object_store_memory=100 * 1024 * 1024, log_to_driver=False)
    res = {"ray_init_s": time.perf_counter() - t0}
    for kind in ("photos", "videos"):
        t0, c0 = time.perf_counter(), time.process_time()
        r = openfer.scale.analyze([data / kind], out / kind, workers=workers)
        wall = time.perf_counter() - t0
        busy = sum(w["wall_s"] for w in r.workers.values())
        res[kind] = {"wall_s": wall, "driver_cpu_s": time.process_time() - c0, "n": r.photos_done or len(r.videos_done),
                     "faces": r.faces, "actor_startup_s": r.startup_s, "workers": len(r.workers),
                     "worker_cpu_s": sum(w["cpu_s"] for w in r.workers.values()),
                     "worker_peak_rss_mb": max(w["max_rss_mb"] for w in r.workers.values()),
                     "worker_busy_share": busy / (wall * len(r.workers))}
    res["tree_cpu_s"] = cpu.total()
    ray.shutdown()
    return res


def one(args) -> None:
    """Run one configuration (in its own process) and print its JSON."""
    data, out = Path(args.data), Path(args.out)
    if args.config.startswith("single"):
        res = run_single(data, out, threads=1 if args.config == "single-1t" else 0)
    else:
        res = run_ray(data, out, workers=int(args.config.split("-")[1]))
    print(json.dumps(res))


def main(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        generate(data, args.photos, args.videos, args.frames)
        print(f"generated {args.photos} photos, {args.videos} videos in {time.perf_counter() - t0:.0f} s", flush=True)
        runs: dict[str, list] = {c: [] for c in CONFIGS}
        for rnd in range(args.rounds):
            for config in CONFIGS if rnd % 2 == 0 else reversed(CONFIGS):
                out = Path(tmp) / f"out-{config}-{rnd}"
                out.mkdir()
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, __file__, "one", config, str(data), str(out)],
                                      capture_output=True, text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
                if proc.returncode:
                    sys.exit(f"{config} failed:\n{proc.stderr[-3000:]}")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                res["process_wall_s"] = time.perf_counter() - t0
                res["load_avg_1m_after"] = os.getloadavg()[0]
                runs[config].append(res)
                print(config, rnd, json.dumps(res), flush=True)
                shutil.rmtree(out)
    table = {}
    for config, rs in runs.items():
        med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
        table[config] = {
            "images_per_s": med(lambda r: r["photos"]["n"] / r["photos"]["wall_s"]),
            "videos_per_s": med(lambda r: r["videos"]["n"] / r["videos"]["wall_s"]),
            "photos_wall_s": med(lambda r: r["photos"]["wall_s"]),
            "videos_wall_s": med(lambda r: r["videos"]["wall_s"]),
            "process_wall_s": med(lambda r: r["process_wall_s"]),
            "tree_cpu_s": med(lambda r: r["tree_cpu_s"]),
        }
        if config.startswith("ray"):
            table[config].update(
                ray_init_s=med(lambda r: r["ray_init_s"]),
                actor_startup_s=med(lambda r: (r["photos"]["actor_startup_s"] + r["videos"]["actor_startup_s"]) / 2),
                worker_cpu_s=med(lambda r: r["photos"]["worker_cpu_s"] + r["videos"]["worker_cpu_s"]),
                worker_peak_rss_mb=med(lambda r: max(r["photos"]["worker_peak_rss_mb"],
                                                     r["videos"]["worker_peak_rss_mb"])),
                worker_busy_share=med(lambda r: r["photos"]["worker_busy_share"]))
        else:
            table[config]["peak_rss_mb"] = med(lambda r: r["peak_rss_mb"])
    result = {"environment": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                              "note": args.note},
              "inputs": {"photos": args.photos, "videos": args.videos, "frames_per_video": args.frames,
                         "photo_size": "640x480, 1-3 faces", "video_size": "640x480 MJPG, 2 faces"},
              "rounds": args.rounds, "medians": table, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(table, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        p = argparse.ArgumentParser()
        p.add_argument("cmd")
        p.add_argument("config", choices=CONFIGS)
        p.add_argument("data")
        p.add_argument("out")
        one(p.parse_args())
    else:
        p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        p.add_argument("--photos", type=int, default=2000)
        p.add_argument("--videos", type=int, default=8)
        p.add_argument("--frames", type=int, default=150)
        p.add_argument("--rounds", type=int, default=2)
        p.add_argument("--note", default="shared 2-core machine; other work ran at the same time")
        main(p.parse_args())
