"""Check the faceres conversion: same- vs different-person LFW pairs from muxspace, ROC AUC of the converted
network's 1024-d descriptors (and of random weights, for scale).

Run: python scripts/faceres_check.py [--pairs 300] [--size 112] [--faceres ../shared/models/faceres]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


from openfer.train import faceres


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faceres", type=Path, default=faceres.default_dir())
    ap.add_argument("--muxspace", type=Path, default=Path("../shared/data/muxspace"))
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--size", type=int, default=112, help="network input side (the 144 px photo is resized)")
    args = ap.parse_args()
    x, files, same, diff = faceres.lfw_faces(args.muxspace, args.pairs, args.size)
    net = faceres.FaceresMobileNet(8, in_chans=1)
    record = faceres.load_faceres(net, args.faceres)
    result = {"pairs": len(same), "photos": len(files), "size": args.size,
              "auc_faceres": faceres.pair_auc(net, x, files, same, diff),
              "auc_random_weights": faceres.pair_auc(faceres.FaceresMobileNet(8, in_chans=1), x, files, same, diff),
              "weights": record}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
