"""Milliseconds per face of every registered model at batch 1 and 64 (2 threads), in interleaved rounds so that
a machine's slow minutes hit every model alike: the numbers behind the registry's ``ms_per_face`` and the
``openfer models`` table.

Usage: python benchmarks/model_speed.py [--rounds 3] [--seconds 3] [--out benchmarks/results/model_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from openfer.classify import load_classifier
from openfer.zoo.registry import MODELS
from openfer.zoo.speed import ms_per_face


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", default="benchmarks/results/model_speed.json")
    args = ap.parse_args()
    clfs = {name: load_classifier(name, threads=2) for name in MODELS}
    runs: dict[str, dict[str, list[float]]] = {name: {"batch1": [], "batch64": []} for name in MODELS}
    for r in range(args.rounds):
        for name, clf in clfs.items():
            runs[name]["batch1"].append(ms_per_face(clf, 1, args.seconds))
            runs[name]["batch64"].append(ms_per_face(clf, 64, args.seconds))
            print(f"round {r + 1}: {name:16s} batch 1 {runs[name]['batch1'][-1]:6.2f} ms  "
                  f"batch 64 {runs[name]['batch64'][-1]:6.2f} ms", flush=True)
    result = {"when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "threads": 2,
              "load_average_at_end": os.getloadavg(),
              "models": {n: {k: {"median": float(np.median(v)), "runs": v} for k, v in d.items()}
                         for n, d in runs.items()}}
    Path(args.out).write_text(json.dumps(result, indent=2))
    for name, d in result["models"].items():
        print(f"{name:16s} {d['batch1']['median']:6.2f} / {d['batch64']['median']:6.2f} ms per face")


if __name__ == "__main__":
    main()
