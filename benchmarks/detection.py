"""Detector recall by face size, false positives, and ms per 640x480 frame.

Test set (deterministic, built here): 640x480 frames cut from face-free photos that ship in scikit-image, with
1-4 faces pasted at random positions and sizes 24-192 px: FER2013 PublicTest crops (grey, from ../shared),
scikit-image's LFW face crops and the astronaut's head. A pasted face counts as found when a detection's IoU
with its pasted square is >= 0.3 (greedy, one detection per face). False positives are detections matching no
face, counted on the composite frames and on the face-free frames alone.

Usage: python benchmarks/detection.py [--frames 300] [--out benchmarks/results/detection.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data as skd

from openfer.datasets import default_npz_path
from openfer.detect import CenterFaceDetector, HaarDetector

SIZES = (24, 32, 48, 64, 96, 128, 192)
BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel", "chelsea", "cat", "hubble_deep_field",
               "immunohistochemistry", "moon", "retina", "colorwheel", "cell")


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    return a[..., :3].copy()


def backgrounds() -> list[np.ndarray]:
    """Face-free photos from scikit-image, RGB."""
    return [_rgb(getattr(skd, n)()) for n in BACKGROUNDS] + [_rgb(skd.stereo_motorcycle()[0])]


def face_pool(rng: np.random.Generator, n_fer: int = 600) -> list[tuple[str, np.ndarray]]:
    """(source, face crop) pairs: FER PublicTest crops, LFW crops, the astronaut's head."""
    pool = []
    path = default_npz_path()
    if path.is_file():
        with np.load(path) as d:
            idx = np.flatnonzero(d["usage"] == "PublicTest")
            votes = d["ferplus_votes"][idx]
            idx = idx[votes[:, 9] < 5]  # drop images FER+ annotators call "not a face"
            pixels = d["pixels"]  # each d[...] access decompresses the whole array: read it once
            for i in rng.choice(idx, size=min(n_fer, len(idx)), replace=False):
                pool.append(("fer2013", _rgb(pixels[i])))
    else:
        print(f"note: {path} not found; FER2013 faces left out of the test set")
    for f in skd.lfw_subset()[:100]:
        pool.append(("lfw", _rgb((f * 255).astype(np.uint8))))
    pool.append(("astronaut", skd.astronaut()[40:200, 160:292]))
    return pool


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes (x1, y1, x2, y2)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def make_frames(n: int, seed: int = 0):
    """Yield (frame, gt boxes [K, 4], sources, sizes) for ``n`` composite frames, deterministically."""
    rng = np.random.default_rng(seed)
    bgs, pool = backgrounds(), face_pool(rng)
    for _ in range(n):
        bg = bgs[rng.integers(len(bgs))]
        scale = max(480 / bg.shape[0], 640 / bg.shape[1]) * rng.uniform(1.0, 1.5)
        big = cv2.resize(bg, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        y0 = rng.integers(0, big.shape[0] - 480 + 1)
        x0 = rng.integers(0, big.shape[1] - 640 + 1)
        frame = big[y0 : y0 + 480, x0 : x0 + 640].copy()
        boxes, sources, sizes = [], [], []
        for _ in range(rng.integers(1, 5)):
            side = int(rng.choice(SIZES))
            src, face = pool[rng.integers(len(pool))]
            for _try in range(20):
                x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
                box = np.array([x, y, x + side, y + side], float)
                if all(iou(box, b) == 0 and not _near(box, b) for b in boxes):
                    h = int(round(side * face.shape[0] / face.shape[1]))
                    patch = cv2.resize(face, (side, h), interpolation=cv2.INTER_AREA if side < face.shape[1] else cv2.INTER_CUBIC)
                    h = min(h, 480 - y)
                    frame[y : y + h, x : x + side] = patch[:h]
                    box[3] = y + h
                    boxes.append(box)
                    sources.append(src)
                    sizes.append(side)
                    break
        yield frame, np.array(boxes).reshape(-1, 4), sources, sizes


def _near(a: np.ndarray, b: np.ndarray, gap: float = 8) -> bool:
    return not (a[2] + gap < b[0] or b[2] + gap < a[0] or a[3] + gap < b[1] or b[3] + gap < a[1])


def match(dets: list, gts: np.ndarray, thr: float = 0.3) -> tuple[np.ndarray, int]:
    """Greedy matching by IoU: found flags per ground-truth box, and the number of unmatched detections."""
    found = np.zeros(len(gts), bool)
    fp = 0
    for d in dets:
        box = np.array(d.box)
        scores = [iou(box, g) if not found[j] else 0 for j, g in enumerate(gts)]
        j = int(np.argmax(scores)) if scores else -1
        if j >= 0 and scores[j] >= thr:
            found[j] = True
        else:
            fp += 1
    return found, fp


def evaluate(detector, frames, negatives) -> dict:
    """Recall by size and source, FPs per frame, ms per frame."""
    by_size = {s: [0, 0] for s in SIZES}
    by_src: dict[str, list[int]] = {}
    fp_total, times = 0, []
    for frame, gts, sources, sizes in frames:
        t0 = time.perf_counter()
        dets = detector.detect(frame)
        times.append(time.perf_counter() - t0)
        found, fp = match(dets, gts)
        fp_total += fp
        for f, src, s in zip(found, sources, sizes):
            by_size[s][0] += f
            by_size[s][1] += 1
            by_src.setdefault(src, [0, 0])
            by_src[src][0] += f
            by_src[src][1] += 1
    neg_fp = sum(len(detector.detect(f)) for f in negatives)
    hits = sum(v[0] for v in by_size.values())
    total = sum(v[1] for v in by_size.values())
    return {
        "recall": hits / total, "faces": total,
        "recall_by_size": {s: v[0] / v[1] for s, v in by_size.items() if v[1]},
        "recall_by_source": {k: v[0] / v[1] for k, v in by_src.items()},
        "fp_per_frame": fp_total / len(frames), "fp_per_faceless_frame": neg_fp / len(negatives),
        "ms_per_frame_median": 1000 * float(np.median(times)), "ms_per_frame_mean": 1000 * float(np.mean(times)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/results/detection.json")
    args = ap.parse_args()
    frames = list(make_frames(args.frames))
    rng = np.random.default_rng(1)
    negatives = []
    for bg in backgrounds():
        scale = max(480 / bg.shape[0], 640 / bg.shape[1])
        big = cv2.resize(bg, None, fx=scale, fy=scale)
        negatives.append(big[:480, :640].copy())
        negatives.append(cv2.flip(big[-480:, -640:], 1).copy())
    detectors = {f"centerface max_side={m}": CenterFaceDetector(max_side=m) for m in (640, 480, 416, 384, 320)}
    detectors["centerface 2x upscale (max_side=1280, upscale)"] = CenterFaceDetector(max_side=1280, upscale=True)
    detectors["centerface max_side=640 threshold=0.5"] = CenterFaceDetector(max_side=640, threshold=0.5)
    detectors["haar (OpenCV cascade)"] = HaarDetector()
    for det in detectors.values():  # warm-up
        det.detect(frames[0][0])
    results = {name: evaluate(det, frames, negatives) for name, det in detectors.items()}
    results["_setup"] = {"frames": len(frames), "faceless_frames": len(negatives), "size": "640x480",
                         "iou_threshold": 0.3, "sizes_px": SIZES}
    print(f"{'detector':42s} {'recall':>7s} " + " ".join(f"{s:>5d}px" for s in SIZES) + "  FP/frame  FP/faceless  ms/frame")
    for name, r in results.items():
        if name.startswith("_"):
            continue
        sizes = " ".join(f"{r['recall_by_size'].get(s, float('nan')):7.2f}" for s in SIZES)
        print(f"{name:42s} {r['recall']:7.3f} {sizes}  {r['fp_per_frame']:8.3f}  {r['fp_per_faceless_frame']:11.3f}  "
              f"{r['ms_per_frame_median']:8.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
