"""Write a merge recipe that rebuilds a merged classifier file from registered models (issue 14).

A model made by `openfer ensemble` from files the package already ships (or from members of them) can ship as a
recipe of a few kB instead of a second copy of its weights: the registry composes it once into the user cache
(`openfer.classify.merge.compose_merged`). This reads the merged file's temperature, weights and metadata, writes
the recipe, composes it, and refuses to write when the result differs from the file:

    python scripts/merge_recipe.py old_large.onnx src/openfer/models/large_v2.json \\
        --member default-int8-v1 --member large:m1_ --weights 3 1

A member is a registered model name, or NAME:TAG for the member TAG of that model's merged file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from openfer.classify.features import metadata_of
from openfer.classify.merge import compose_merged
from openfer.zoo.registry import get_spec, model_path


def probabilities(model: onnx.ModelProto, faces: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"faces": faces.astype(np.float32)[:, None]})[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("merged", type=Path, help="the merged .onnx file the recipe must rebuild")
    ap.add_argument("out", type=Path, help="the recipe (.json)")
    ap.add_argument("--member", action="append", required=True, help="NAME or NAME:TAG, in the file's order")
    ap.add_argument("--weights", type=float, nargs="+", required=True,
                    help="each member's weight in the merge (openfer ensemble: its number of networks)")
    ap.add_argument("--atol", type=float, default=1e-5, help="largest difference of probabilities allowed")
    args = ap.parse_args()

    target = onnx.load(str(args.merged))
    meta = metadata_of(target)
    if len(args.weights) != len(args.member):
        raise SystemExit(f"{len(args.member)} members but {len(args.weights)} weights")
    members, loaded = [], {}
    for item in args.member:
        name, _, tag = item.partition(":")
        spec = get_spec(name)
        loaded[name] = onnx.load(str(model_path(spec)))
        members.append({"model": name, "sha256": spec.sha256, **({"tag": tag} if tag else {})})
    recipe = {"members": members, "weights": args.weights, "temperature": float(meta["temperature"]),
              "half_weights": meta.get("weights") == "float16", "metadata": meta}
    composed = compose_merged(recipe, loaded.__getitem__)
    faces = np.random.default_rng(0).uniform(0, 255, (16, int(meta["input_size"]), int(meta["input_size"])))
    diff = float(np.abs(probabilities(composed, faces) - probabilities(target, faces)).max())
    if diff > args.atol:
        raise SystemExit(f"the recipe gives probabilities up to {diff:.2g} away from {args.merged}: not written")
    args.out.write_text(json.dumps(recipe, indent=1) + "\n")
    print(json.dumps({"out": str(args.out), "max_abs_diff": diff, "weights": recipe["weights"],
                      "bytes": args.out.stat().st_size}))


if __name__ == "__main__":
    main()
