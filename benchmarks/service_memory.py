"""Peak memory of the web service per image request, measured in this process (Linux: RSS from /proc).

    python benchmarks/service_memory.py [--case transparent-png|photo-jpeg|small-jpeg] [--concurrent 1] [--json]

Builds the service (``create_app`` with the default models, ``--workers`` analysis workers), warms it up on a small
photo, then posts ``--concurrent`` copies of the case's image at once through FastAPI's TestClient while a thread
samples the resident set size every 5 ms. Prints the peak RSS above the warmed-up baseline, which is what
one request (or N at once) adds to a running server. Cases:

- ``transparent-png``: a fully transparent 6300 x 6300 RGBA PNG (154 KB on disk, 40 Mpx: just under the pixel
  limit), the decompression-bomb-like upload of issue 18.
- ``photo-jpeg``: a 6000 x 4000 JPEG (24 Mpx, a camera photo) with 6 faces.
- ``small-jpeg``: the 512 x 512 astronaut.

``tests/test_service.py`` runs this script in a subprocess to bound the first case; docs/reliability.md has the
figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
import warnings

import numpy as np
from PIL import Image

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakSampler:
    """Samples RSS every ``period`` seconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, period: float = 0.005) -> None:
        self.period, self.peak = period, rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kwargs)
    return buf.getvalue()


def case_image(name: str) -> bytes:
    """The upload of one case (see the module docstring)."""
    import skimage.data

    if name == "transparent-png":
        return encode(np.zeros((6300, 6300, 4), np.uint8), "PNG")
    if name == "small-jpeg":
        return encode(skimage.data.astronaut(), "JPEG", quality=90)
    if name == "photo-jpeg":
        import cv2

        canvas = np.full((4000, 6000, 3), 128, np.uint8)
        head = skimage.data.astronaut()[20:220, 140:320]
        for k in range(6):
            h = 300 + 60 * k
            patch = cv2.resize(head, (round(h * 0.9), h), interpolation=cv2.INTER_AREA)
            x, y = 200 + 950 * k, 800 + 250 * (k % 3)
            canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
        return encode(canvas, "JPEG", quality=90)
    raise SystemExit(f"unknown case {name!r}")


def measure(case: str, concurrent: int, workers: int) -> dict:
    """Peak RSS added by ``concurrent`` simultaneous ``POST /v1/analyze`` of the case's image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    import openfer
    from openfer.service import ServiceConfig, create_app

    data = case_image(case)
    cfg = ServiceConfig(workers=workers, queue=max(8, concurrent))
    with TestClient(create_app(cfg, analyzer=openfer.Analyzer()), base_url="http://127.0.0.1") as client:
        for _ in range(2):
            client.post("/v1/analyze", files={"file": ("a.jpg", case_image("small-jpeg"))})
        answers: list = []

        def post() -> None:
            answers.append(client.post("/v1/analyze", files={"file": ("upload", data)}))

        threads = [threading.Thread(target=post) for _ in range(concurrent)]
        base = rss_bytes()
        t = time.perf_counter()
        with PeakSampler() as sampler:
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        seconds = time.perf_counter() - t
    first = answers[0].json()
    return {"case": case, "upload_bytes": len(data), "concurrent": concurrent, "workers": workers,
            "statuses": sorted(a.status_code for a in answers), "width": first.get("width"),
            "height": first.get("height"), "faces": first.get("num_faces"), "seconds": round(seconds, 2),
            "baseline_rss_mb": round(base / 2**20, 1), "peak_added_mb": round((sampler.peak - base) / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="transparent-png", choices=["transparent-png", "photo-jpeg", "small-jpeg"])
    ap.add_argument("--concurrent", type=int, default=1, help="requests sent at once")
    ap.add_argument("--workers", type=int, default=2, help="server: images analysed at once")
    args = ap.parse_args()
    if not os.path.exists("/proc/self/statm"):
        raise SystemExit("needs Linux (/proc/self/statm) to read the resident set size")
    print(json.dumps(measure(args.case, args.concurrent, args.workers)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
