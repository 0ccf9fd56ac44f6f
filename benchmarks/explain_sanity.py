"""The numbers behind the sanity tests (Adebayo et al. 2018) of tests/test_explain.py, as a table.

A tiny CNN is trained (seconds) on 32 x 32 noise images whose class is decided by one 8 x 8 square only (bright or
dark), with a distractor bar that carries no label. For each method, on 12 held-out images: the mean Spearman rank
correlation of the trained model's maps with those of the same model trained from another seed (reference), of an
untrained copy (weights randomised) and of a model trained on shuffled labels; the share of positive evidence near
the square (the square dilated by 4 px, 25 % of the image); and the deletion test (top 12 x 12 window vs random).

Usage: python benchmarks/explain_sanity.py [--out benchmarks/results/explain-sanity.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import explain_helpers as eh  # noqa: E402

from openfer.explain import METHODS, heatmaps, rank_correlation  # noqa: E402
from openfer.explain.sanity import deletion_test  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/explain-sanity.json")
    args = ap.parse_args()
    models = {"trained": eh.train_tiny(seed=0), "other_seed": eh.train_tiny(seed=5),
              "shuffled_labels": eh.train_tiny(labels_shuffled=True)}
    models["random_weights"] = eh.randomized_copy(models["trained"])
    x, y = eh.make_data(12, seed=99)
    near = cv2.dilate(eh.evidence_mask().astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    res = {}
    print("| method | rank corr. other seed | random weights | shuffled labels | evidence near square | "
          "deletion: top / random |")
    print("|---|---|---|---|---|---|")
    for m in METHODS:
        maps = {k: heatmaps(c, x, list(y), m) for k, c in models.items()}
        corr = {k: float(np.mean([rank_correlation(p, q) for p, q in zip(maps["trained"], maps[k])]))
                for k in ("other_seed", "random_weights", "shuffled_labels")}
        pos = np.clip(maps["trained"], 0, None)
        share = float((pos[:, near].sum(1) / pos.reshape(len(pos), -1).sum(1)).mean())
        d = np.array([deletion_test(models["trained"], c, h, int(t)) for c, h, t in zip(x, maps["trained"], y)])
        res[m] = {"rank_corr": corr, "evidence_share_near_square": share, "area_near_square": float(near.mean()),
                  "deletion_top": float(d[:, 0].mean()), "deletion_random": float(d[:, 1].mean())}
        print(f"| {m} | {corr['other_seed']:.2f} | {corr['random_weights']:.2f} | {corr['shuffled_labels']:.2f} | "
              f"{share:.2f} | {d[:, 0].mean():.3f} / {d[:, 1].mean():.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
