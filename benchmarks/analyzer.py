"""Whole-pipeline throughput: ``Analyzer.analyze`` on a 640x480 RGB frame with one face (the astronaut, scaled
into a 640x480 canvas), plus the share of time per stage.

Usage: python benchmarks/analyzer.py [--seconds 10] [--max-side 640]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

from openfer import Analyzer
from openfer.align import align_faces
from openfer.detect import CenterFaceDetector


def frame_640x480() -> np.ndarray:
    """The astronaut photo scaled to 480 px high and centred on a 640x480 grey canvas (face ~110 px)."""
    img = cv2.resize(skimage.data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 127, np.uint8)
    canvas[:, 80:560] = img
    return canvas


def timed(fn, seconds: float) -> tuple[float, int]:
    """Median seconds per call of ``fn`` over about ``seconds`` of calls, and the number of calls."""
    fn()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--out", default="benchmarks/results/analyzer.json")
    args = ap.parse_args()
    frame = frame_640x480()
    results = {}
    for max_side in (640, 480, 320):
        an = Analyzer(detector=CenterFaceDetector(max_side=max_side))
        faces = an.analyze(frame)
        assert len(faces) == 1, f"expected one face, got {len(faces)}"
        t_all, n = timed(lambda: an.analyze(frame), args.seconds)
        t_det, _ = timed(lambda: an.detector.detect(frame), args.seconds / 2)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        t_align, _ = timed(lambda: align_faces(grey, faces, 48), 1)
        crops = align_faces(grey, faces, 48)
        t_cls, _ = timed(lambda: an.classifier.predict_proba(crops), 1)
        results[f"max_side={max_side}"] = {
            "images_per_s": 1 / t_all, "ms_per_image": 1000 * t_all, "calls": n, "ms_detect": 1000 * t_det,
            "ms_align": 1000 * t_align, "ms_classify": 1000 * t_cls,
        }
        r = results[f"max_side={max_side}"]
        print(f"max_side={max_side}: {r['images_per_s']:.1f} images/s ({r['ms_per_image']:.1f} ms: detect "
              f"{r['ms_detect']:.1f}, align {r['ms_align']:.2f}, classify {r['ms_classify']:.2f})")
    an = Analyzer()
    with tempfile.TemporaryDirectory() as tmp:
        jpg = Path(tmp) / "frame.jpg"
        Image.fromarray(frame).save(jpg, quality=90)
        t_file, n = timed(lambda: an.analyze(jpg), args.seconds)
    results["jpeg_file_default"] = {"images_per_s": 1 / t_file, "ms_per_image": 1000 * t_file, "calls": n}
    print(f"from a 640x480 JPEG file, defaults: {1 / t_file:.1f} images/s ({1000 * t_file:.1f} ms, decoding included)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
