"""Check the faceres conversion: same- vs different-person LFW pairs from muxspace, ROC AUC of the converted
network's 1024-d descriptors (and of random weights, for scale).

Run: python scripts/faceres_check.py [--pairs 300] [--size 112] [--faceres ../shared/models/faceres]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from openfer.train import faceres


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faceres", type=Path, default=faceres.default_dir())
    ap.add_argument("--muxspace", type=Path, default=Path("../shared/data/muxspace"))
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--size", type=int, default=112, help="network input side (the 144 px photo is resized)")
    args = ap.parse_args()
    rows = [r for r in csv.DictReader(open(args.muxspace / "labels.csv")) if r["source"] == "lfw"]
    by_person: dict[str, list[str]] = {}
    for r in rows:
        by_person.setdefault(r["person"], []).append(r["file"])
    same, diff = faceres.identity_pairs(by_person, args.pairs, seed=0)
    files = sorted({f for pair in same + diff for f in pair})
    img = np.stack([cv2.resize(cv2.imread(str(args.muxspace / f), cv2.IMREAD_GRAYSCALE), (args.size, args.size),
                               interpolation=cv2.INTER_AREA) for f in files])
    x = torch.from_numpy(img).float()[:, None] / 127.5 - 1
    net = faceres.FaceresMobileNet(8, in_chans=1)
    record = faceres.load_faceres(net, args.faceres)
    result = {"pairs": len(same), "people": len(by_person), "size": args.size,
              "auc_faceres": faceres.pair_auc(net, x, files, same, diff),
              "auc_random_weights": faceres.pair_auc(faceres.FaceresMobileNet(8, in_chans=1), x, files, same, diff),
              "weights": record}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
