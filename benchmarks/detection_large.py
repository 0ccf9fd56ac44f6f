"""Faces kept on big photos: one detection pass at ``max_side`` 640 vs the passes ``detection_sides`` chooses.

Test set (deterministic, built here): the astronaut's head (``tests/conftest.py``'s ``scattered_heads``), 150-220
px tall, pasted on a grid with jitter over scikit-image's rocket photo enlarged to 4000x3000 (24 heads) and
8000x6000 (48 heads), 3 seeds each; the whole astronaut enlarged to 5800, 3000 and 1500 px on an 8000x6000 grey
canvas, with her face and with her head painted out (a torso: any detection is a false positive); and a 1280x960
photo with 4 heads, where the result must not change. A pasted face counts
as found when a detection's IoU with its face box is >= 0.3; a detection matching no face is a false positive.

Usage: python benchmarks/detection_large.py [--threads 2] [--out benchmarks/results/detection_large.json]

Measured 2026-12-06 on a 2-core CPU shared with other work, --threads 2 (all in
benchmarks/results/detection_large.json; table in docs/benchmarks.md): 4000x3000, 24 faces: one pass at 640 found
6, 5, 5 (3 seeds), the chosen passes (640 + 1280) 24, 24, 24 in 0.5-0.7 s; 8000x6000, 48 faces: 0, 0, 0 vs 48, 48,
48 in 2.2-2.6 s; the torso with the head painted out: a false face at 1500 and 3000 px before, none now; 1280x960:
identical boxes, 64 vs 50 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data as skd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import ASTRONAUT_FACE, astronaut, iou, scattered_heads  # noqa: E402 - the tests' face pasting

from openfer.detect import CenterFaceDetector  # noqa: E402


def big_astronaut(side: int, face: bool = True, width: int = 8000, height: int = 6000):
    """The whole astronaut enlarged to ``side`` px on a grey ``width`` x ``height`` canvas, with her face (and its
    box as the truth) or with her head painted grey (a torso, no face: nothing should be found)."""
    canvas = np.full((height, width, 3), 128, np.uint8)
    x0, y0 = (width - side) // 2, (height - side) // 2
    canvas[y0:y0 + side, x0:x0 + side] = cv2.resize(astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    s = side / 512
    x1, y1, x2, y2 = (x0 + ASTRONAUT_FACE[0] * s, y0 + ASTRONAUT_FACE[1] * s, x0 + ASTRONAUT_FACE[2] * s,
                      y0 + ASTRONAUT_FACE[3] * s)
    if face:
        return canvas, [(x1, y1, x2, y2)]
    canvas[int(y1 - 0.3 * (y2 - y1)):int(y2), int(x1):int(x2)] = 128
    return canvas, []


def score(found: list, truth: list) -> tuple[int, int]:
    """(faces found, false positives): greedy matching at IoU >= 0.3."""
    left, hits = list(found), 0
    for t in truth:
        best = max(range(len(left)), key=lambda i: iou(t, left[i]), default=None)
        if best is not None and iou(t, left[best]) >= 0.3:
            hits += 1
            left.pop(best)
    return hits, len(left)


def run(detector: CenterFaceDetector, image: np.ndarray, truth: list, repeats: int = 1) -> dict:
    """Faces found, false positives and the best of ``repeats`` times (ms) of ``detector`` on ``image``."""
    times, faces = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        faces = detector.detect(image)
        times.append(1000 * (time.perf_counter() - t))
    found, fp = score([f.box for f in faces], truth)
    h, w = image.shape[:2]
    return {"faces": len(truth), "found": found, "false_positives": fp, "ms": round(min(times), 1),
            "sides": detector.sides(w, h), "boxes": [[round(float(v), 1) for v in f.box] for f in faces]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/detection_large.json")
    args = ap.parse_args()
    settings = {"one pass at 640 (before)": {"max_shrink": None},
                "one pass at 1280 (--max-side 1280, before)": {"max_side": 1280, "max_shrink": None},
                "chosen passes (now, default)": {}}
    detectors = {k: CenterFaceDetector(threads=args.threads, **kw) for k, kw in settings.items()}
    rocket = skd.rocket()
    cases = [(f"4000x3000, 24 heads, seed {s}", *scattered_heads(4000, 3000, 24, s, background=rocket))
             for s in range(3)]
    cases += [(f"8000x6000, 48 heads, seed {s}", *scattered_heads(8000, 6000, 48, s, background=rocket))
              for s in range(3)]
    cases += [(f"8000x6000, astronaut {side} px", *big_astronaut(side)) for side in (5800, 3000, 1500)]
    cases += [(f"8000x6000, astronaut {side} px, head painted out", *big_astronaut(side, face=False))
              for side in (5800, 3000, 1500)]
    cases += [("1280x960, 4 heads 100-160 px", *scattered_heads(1280, 960, 4, 0, 100, 160, background=rocket))]
    results = []
    for name, image, truth in cases:
        for setting, det in detectors.items():
            r = {"case": name, "setting": setting, **run(det, image, truth, repeats=3 if "1280x960" in name else 1)}
            results.append(r)
            print(f"{name:38s} {setting:44s} found {r['found']:2d}/{r['faces']:2d}  false pos {r['false_positives']}"
                  f"  {r['ms']:7.1f} ms  passes {r['sides']}", flush=True)
    small = [r for r in results if r["case"].startswith("1280x960")]
    same = small[0]["boxes"] == small[2]["boxes"]
    print(f"1280x960: default boxes identical to one pass at 640: {same}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"threads": args.threads, "identical_at_1280": same,
                                          "results": [{k: v for k, v in r.items() if k != "boxes"} for r in results]},
                                         indent=1) + "\n")


if __name__ == "__main__":
    main()
