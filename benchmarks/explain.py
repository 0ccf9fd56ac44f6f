"""Explanations: ms per face of every method, and the deletion test on FER2013 PublicTest faces.

For each model and method, on ``--n`` PublicTest faces (FER+ majority protocol, drawn at random with seed 0): the
heatmap of the model's top class, then the deletion test (``openfer.explain.sanity.deletion_test``): the drop in
that class's probability when the 12 x 12 window (1/16 of the 48 px face) with the most attribution is covered
with the face's mean grey, against the mean drop over 16 random windows of the same size. Effect size: the mean
paired difference, its standard deviation, d_z = mean / sd, and the share of faces where the top window hurt more.
Also the mean region shares per predicted class (FER crops get the alignment template's regions). Grad-CAM runs
the ONNX model in PyTorch (``TorchClassifier.from_onnx``).

Usage: python benchmarks/explain.py [--models default fast] [--n 120] [--data PATH] [--out benchmarks/results/explain.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from openfer.align import FER_TEMPLATE
from openfer.classify import load_classifier
from openfer.datasets import load_dataset
from openfer.explain import METHODS, TorchClassifier, heatmaps
from openfer.explain.regions import region_masks, region_shares
from openfer.explain.sanity import deletion_test

SETTINGS = {"occlusion": {"patch": 8, "stride": 4}, "rise": {"n_masks": 400, "grid": 6}, "gradcam": {},
            "gradcam++": {}}


def timed_maps(clf, crops: np.ndarray, targets: list[int], method: str) -> tuple[np.ndarray, float]:
    """Heatmaps of all crops (one call per face, as ``explain_faces`` does for these methods) and ms per face."""
    maps, t0 = [], time.perf_counter()
    for c, t in tqdm(list(zip(crops, targets)), desc=method, leave=False):
        maps.append(heatmaps(clf, c[None], [t], method, **SETTINGS[method])[0])
    return np.stack(maps), 1000 * (time.perf_counter() - t0) / len(crops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["default", "fast"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--n", type=int, default=120, help="PublicTest faces per model")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="benchmarks/results/explain.json")
    args = ap.parse_args()
    try:
        data = load_dataset(args.data, "PublicTest", "ferplus")
    except FileNotFoundError as e:
        raise SystemExit(f"{e}\nThis benchmark needs FER2013 PublicTest (fer2013_dev.npz).")
    idx = np.sort(np.random.default_rng(0).choice(len(data.labels), args.n, replace=False))
    crops = data.pixels[idx]
    masks = region_masks(FER_TEMPLATE * 48, 48)
    res = {"setup": {"n_faces": args.n, "split": "PublicTest, FER+ majority protocol, random sample (seed 0)",
                     "deletion": "12x12 window (1/16 of the face) with the largest heatmap sum vs. mean of 16 "
                                 "random 12x12 windows; covered with the face's mean grey; drop in the top "
                                 "class's probability",
                     "settings": SETTINGS, "machine": platform.processor() or platform.machine(),
                     "note": "timed one face at a time on a 2-core CPU shared with two training jobs"},
           "models": {}}
    for name in args.models:
        onnx_clf = load_classifier(name)
        twin = None
        probs = onnx_clf.predict_proba(crops)
        targets = [int(i) for i in probs.argmax(1)]
        res["models"][name] = {}
        for method in args.methods:
            clf = onnx_clf
            if method.startswith("gradcam"):
                twin = twin or TorchClassifier.from_onnx(onnx_clf)
                clf = twin
            maps, ms = timed_maps(clf, crops, targets, method)
            drops = np.array([deletion_test(onnx_clf, c, h, t) for c, h, t in zip(crops, maps, targets)])
            diff = drops[:, 0] - drops[:, 1]
            boot = np.random.default_rng(1).choice(diff, (2000, len(diff))).mean(1)
            by_class = {}
            for k in sorted(set(targets)):
                sel = [i for i, t in enumerate(targets) if t == k]
                shares = [region_shares(maps[i], masks) for i in sel]
                by_class[onnx_clf.classes[k]] = {"n": len(sel), **{r: float(np.mean([s[r] for s in shares]))
                                                                    for r in shares[0]}}
            r = {"ms_per_face": ms, "drop_top_mean": float(drops[:, 0].mean()),
                 "drop_random_mean": float(drops[:, 1].mean()), "diff_mean": float(diff.mean()),
                 "diff_sd": float(diff.std(ddof=1)), "d_z": float(diff.mean() / diff.std(ddof=1)),
                 "diff_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
                 "share_top_worse": float((diff > 0).mean()), "region_shares_by_predicted_class": by_class}
            res["models"][name][method] = r
            print(f"{name:8s} {method:10s} {ms:8.1f} ms/face  drop top {r['drop_top_mean']:.3f}  random "
                  f"{r['drop_random_mean']:.3f}  diff {r['diff_mean']:.3f} [{r['diff_ci95'][0]:.3f}, "
                  f"{r['diff_ci95'][1]:.3f}]  d_z {r['d_z']:.2f}  top worse {r['share_top_worse']:.0%}", flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
