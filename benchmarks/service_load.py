"""Load test of `openfer serve` on loopback: N concurrent clients posting images to /v1/analyze.

    python benchmarks/service_load.py [--levels 1,4,16] [--requests 64] [--seconds 60] [--stream-frames 100]
    python benchmarks/service_load.py --explain-load 2 [--requests 64] [--seconds 60] [--src OLD/src]

Starts the service on a free 127.0.0.1 port (nothing else is ever contacted), then for each N runs N client threads
that post the same 512x512 JPEG (the astronaut, one face) until ``--requests`` answers have come back or
``--seconds`` have passed. A 503 (load shed) is counted, and the client waits its Retry-After (at most 1 s) as a
polite client would. A probe polls /healthz all along to show the server stays responsive. Then one client
streams frames over WS /v1/stream as the browser's live mode does. Writes
benchmarks/results/service-load.json. Not part of the test run.

With ``--explain-load N``: N clients keep posting ``/v1/explain?method=rise`` on a 1600x1200 JPEG of 16 faces (the
request that took both workers for minutes in issue 18) while one client posts the astronaut to /v1/analyze,
one request after another, until ``--requests`` answers or ``--seconds``; reports the analyze latencies and
status codes, and what the explanations answered. ``--src`` runs the server from another source tree (an older
checkout) to compare. Writes benchmarks/results/service-explain-load.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env_extra: dict[str, str], src: Path = REPO / "src") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", **env_extra}
    env.pop("OPENFER_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "openfer.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.monotonic()
    while time.monotonic() - t < 120:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("openfer serve did not become ready")


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def run_level(url: str, image: bytes, clients: int, requests: int, seconds: float) -> dict:
    lock = threading.Lock()
    issued = 0
    records: list[tuple[int, float]] = []  # (status or -1 for a transport error, seconds)
    stop_at = time.monotonic() + seconds

    def client() -> None:
        nonlocal issued
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < stop_at:
                with lock:
                    if issued >= requests:
                        return
                    issued += 1
                t = time.perf_counter()
                try:
                    r = http.post(url + "/v1/analyze", files={"file": ("a.jpg", image, "image/jpeg")})
                    status = r.status_code
                    retry = float(r.headers.get("retry-after", 0)) if status == 503 else 0.0
                except httpx.HTTPError:
                    status, retry = -1, 0.0
                with lock:
                    records.append((status, time.perf_counter() - t))
                if retry:
                    time.sleep(min(retry, 1.0))

    probe: list[float] = []
    probe_failures = 0
    done = threading.Event()

    def health() -> None:
        nonlocal probe_failures
        with httpx.Client(timeout=10) as http:
            while not done.wait(0.5):
                t = time.perf_counter()
                try:
                    ok = http.get(url + "/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                probe.append(time.perf_counter() - t)
                probe_failures += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    prober = threading.Thread(target=health)
    t0 = time.perf_counter()
    prober.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done.set()
    prober.join()
    ok = [s for c, s in records if c == 200]
    shed = [s for c, s in records if c == 503]
    return {
        "clients": clients, "answers": len(records), "ok": len(ok), "shed_503": len(shed),
        "errors": sum(c not in (200, 503) for c, _ in records),
        "other_statuses": sorted({c for c, _ in records if c not in (200, 503)}),
        "seconds": round(wall, 2), "throughput_ok_per_s": round(len(ok) / wall, 2),
        "latency_ok_ms": {"p50": percentile(ok, 50), "p95": percentile(ok, 95), "max": percentile(ok, 100)},
        "latency_503_ms": {"p50": percentile(shed, 50), "p95": percentile(shed, 95)},
        "healthz_ms": {"p50": percentile(probe, 50), "max": percentile(probe, 100), "failures": probe_failures},
    }


def run_stream(url: str, frames: list[bytes], count: int) -> dict:
    """One webcam-like client on WS /v1/stream: send a frame, wait for its result, repeat (what the page does)."""
    from websockets.sync.client import connect

    times, faces = [], []
    with connect(url.replace("http://", "ws://") + "/v1/stream", max_size=None) as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        t0 = time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            ws.send(frames[i % len(frames)])
            msg = json.loads(ws.recv())
            times.append(time.perf_counter() - t)
            faces.append([f.get("face_id") for f in msg.get("faces", [])])
        wall = time.perf_counter() - t0
    return {"frames": count, "frames_per_s": round(count / wall, 2), "round_trip_ms": {
        "p50": percentile(times, 50), "p95": percentile(times, 95)},
        "track_ids_seen": sorted({i for f in faces for i in f if i is not None}),
        "frames_with_a_face": sum(bool(f) for f in faces)}


def stream_frames() -> list[bytes]:
    """640x480 JPEGs of the astronaut's head gliding over a grey room (as the browser test's fake camera)."""
    import cv2
    import skimage.data

    head = skimage.data.astronaut()[30:210, 150:300]
    head = cv2.resize(head, (200, 240))
    out = []
    for i in range(30):
        canvas = np.full((480, 640, 3), 128, np.uint8)
        x = 80 + 8 * i
        canvas[100:340, x:x + 200] = head
        buf = io.BytesIO()
        Image.fromarray(canvas).save(buf, "JPEG", quality=80)
        out.append(buf.getvalue())
    return out


def sixteen_faces() -> bytes:
    """A 1600x1200 JPEG with 16 astronaut heads (150-220 px tall) on grey, one per cell of a 4x4 grid."""
    import cv2
    import skimage.data

    head = skimage.data.astronaut()[20:220, 140:320]
    canvas = np.full((1200, 1600, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    for k in range(16):
        r, c = divmod(k, 4)
        h = int(rng.uniform(150, 220))
        patch = cv2.resize(head, (round(h * 0.9), h), interpolation=cv2.INTER_AREA)
        y, x = r * 300 + int(rng.uniform(0, 300 - h)), c * 400 + int(rng.uniform(0, 400 - patch.shape[1]))
        canvas[y : y + h, x : x + patch.shape[1]] = patch
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def run_explain_load(url: str, image: bytes, faces: bytes, explainers: int, requests: int, seconds: float) -> dict:
    """``/v1/analyze`` latency, one request at a time, while ``explainers`` clients keep RISE explanations of 16
    faces in flight."""
    stop = threading.Event()
    explained: list[dict] = []

    def explainer() -> None:
        with httpx.Client(timeout=900) as http:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = http.post(url + "/v1/explain?method=rise&heatmap=false",
                                  files={"file": ("g.jpg", faces, "image/jpeg")})
                    body = r.json()
                    rec = {"status": r.status_code, "seconds": round(time.perf_counter() - t, 2),
                           "explained": body.get("explained"), "faces": body.get("num_faces"),
                           "notes": body.get("notes"), "detail": body.get("detail")}
                except httpx.HTTPError as e:
                    rec = {"status": -1, "seconds": round(time.perf_counter() - t, 2), "detail": str(e)}
                explained.append(rec)
                if rec["status"] == 503:
                    time.sleep(1.0)

    threads = [threading.Thread(target=explainer, daemon=True) for _ in range(explainers)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # the explanations are running
    records: list[tuple[int, float]] = []
    stop_at = time.monotonic() + seconds
    with httpx.Client(timeout=120) as http:
        while len(records) < requests and time.monotonic() < stop_at:
            t = time.perf_counter()
            try:
                status = http.post(url + "/v1/analyze", files={"file": ("a.jpg", image, "image/jpeg")}).status_code
            except httpx.HTTPError:
                status = -1
            records.append((status, time.perf_counter() - t))
    stop.set()
    for t in threads:
        t.join(timeout=900)
    times = [s for _, s in records]
    return {"explainers": explainers, "analyze_answers": len(records),
            "analyze_statuses": {str(c): sum(1 for s, _ in records if s == c) for c in sorted({s for s, _ in records})},
            "analyze_latency_ms": {"p50": percentile(times, 50), "p95": percentile(times, 95),
                                   "max": percentile(times, 100)},
            "explain_answers": explained}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,4,16", help="concurrent clients per level, comma-separated")
    ap.add_argument("--requests", type=int, default=64, help="answers per level (bounded)")
    ap.add_argument("--seconds", type=float, default=60.0, help="time limit per level")
    ap.add_argument("--workers", type=int, default=2, help="server: images analysed at once")
    ap.add_argument("--queue", type=int, default=8, help="server: requests that may wait before 503")
    ap.add_argument("--stream-frames", type=int, default=100, help="frames sent over WS /v1/stream")
    ap.add_argument("--explain-load", type=int, default=0, metavar="N",
                    help="measure /v1/analyze while N clients keep RISE explanations of 16 faces running")
    ap.add_argument("--src", type=Path, default=REPO / "src", help="run the server from this source tree")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.explain_load:
        explain_main(args)
        return
    args.out = args.out or RESULTS / "service-load.json"

    image = astronaut_jpeg()
    port = free_port()
    proc = start_server(port, {"OPENFER_WORKERS": str(args.workers), "OPENFER_QUEUE": str(args.queue)}, args.src)
    url = f"http://127.0.0.1:{port}"
    levels = []
    try:
        for n in (int(v) for v in args.levels.split(",")):
            load = os.getloadavg()[0]
            res = run_level(url, image, n, args.requests, args.seconds)
            res["load_average_1min_before"] = round(load, 2)
            levels.append(res)
            print(json.dumps(res), flush=True)
        stream = run_stream(url, stream_frames(), args.stream_frames)
        print(json.dumps({"stream": stream}), flush=True)
        alive = httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    out = {
        "what": "POST /v1/analyze, 512x512 JPEG with one face, N concurrent clients on loopback",
        "server": {"workers": args.workers, "queue": args.queue, "model": "default", "detector": "centerface"},
        "requests_per_level": args.requests, "seconds_limit_per_level": args.seconds,
        "server_alive_after": alive, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "levels": levels,
        "stream": {"what": "WS /v1/stream, one client, 640x480 JPEG frames, one in flight", **stream},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


def astronaut_jpeg() -> bytes:
    import skimage.data

    buf = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def explain_main(args: argparse.Namespace) -> None:
    """``--explain-load``: /v1/analyze while explanations run (see the module docstring)."""
    port = free_port()
    proc = start_server(port, {"OPENFER_WORKERS": str(args.workers), "OPENFER_QUEUE": str(args.queue)}, args.src)
    url = f"http://127.0.0.1:{port}"
    try:
        load = os.getloadavg()[0]
        res = run_explain_load(url, astronaut_jpeg(), sixteen_faces(), args.explain_load, args.requests,
                               args.seconds)
        alive = httpx.get(url + "/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = {"what": "POST /v1/analyze (512x512 JPEG, one client, one request at a time) while N clients keep "
                   "POST /v1/explain?method=rise on a 1600x1200 JPEG of 16 faces in flight",
           "server": {"workers": args.workers, "queue": args.queue, "src": str(args.src)},
           "load_average_1min_before": round(load, 2), "server_alive_after": alive, "cpu_count": os.cpu_count(),
           "platform": platform.platform(), "python": platform.python_version(), **res}
    print(json.dumps(out, indent=2))
    path = args.out or RESULTS / "service-explain-load.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
