"""Issue 14 experiment: a new last layer for `default-v1` trained on FER+ and a second domain (muxspace train people).

`default-v1`'s five networks stay frozen; only the linear layer on their 1,280 pooled features is refitted
(`openfer fit`'s recipe: standardisation + logistic regression), on FER+ Training (minus the validation split)
alone or with muxspace's train people (person-disjoint; its val people choose, its test people are not looked at
here). Scored on validation data only: FER+ validation (training and balanced prior) and muxspace val (detected
faces, the 6 classes it scores). Needs the caches of benchmarks/own_data_features.py and
benchmarks/results/cache/features-fertraining-default-v1.npz (this script's --cache step). The shipped
`default` is the C = 0.1, FER+-only row, refitted with a temperature by scripts/rehead.py.

    python benchmarks/rehead.py --cache      # FER+ Training features of default-v1 (about 5 min on 2 threads)
    python benchmarks/rehead.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from openfer.classify.prior import rebalance
from openfer.evaluate import classification_metrics, restrict
from openfer.labels import CANONICAL8

CACHE = Path(__file__).parent / "results" / "cache"
RESULTS = Path(__file__).parent / "results" / "rehead.json"


def cache_fer() -> None:
    from openfer.classify import load_classifier
    from openfer.datasets import load_dataset, stratified_split

    full = load_dataset(None, "Training", "ferplus")
    train, val = stratified_split(full.labels, 0.1, 0)
    probs, feats = load_classifier("default-v1", threads=2).predict_features(full.pixels)
    np.savez_compressed(CACHE / "features-fertraining-default-v1.npz", probabilities=probs,
                        features=feats.astype(np.float16), labels=full.labels, targets=full.targets,
                        train_idx=train, val_idx=val)


def fer_scores(p: np.ndarray, y: np.ndarray, prior: np.ndarray) -> dict:
    out = {}
    for name, q in (("training", p), ("balanced", rebalance(p, prior, 1.0))):
        m = classification_metrics(y, q.argmax(1), CANONICAL8)
        out[name] = {"accuracy": m["accuracy"], "uar": m["uar"],
                     "rare_recall": {c: m["per_class_recall"][c] for c in ("disgust", "fear", "contempt")}}
    return out


def mux_scores(p: np.ndarray, mux: dict, mask: np.ndarray, prior: np.ndarray) -> dict:
    classes = tuple(str(c) for c in mux["classes"])
    out = {}
    for name, q in (("training", p), ("balanced", rebalance(p, prior, 1.0))):
        r = restrict(q[mask], CANONICAL8, classes)
        m = classification_metrics(mux["labels"][mask], r.argmax(1), classes)
        out[name] = {"accuracy": m["accuracy"], "uar": m["uar"], "recall": m["per_class_recall"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", action="store_true", help="compute the FER+ Training features first")
    ap.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1])
    ap.add_argument("--mux-weight", type=float, nargs="+", default=[0.0, 1.0, 3.0])
    args = ap.parse_args()
    if args.cache:
        cache_fer()
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    with np.load(CACHE / "features-fertraining-default-v1.npz") as z:
        fer = {k: z[k] for k in z.files}
    with np.load(CACHE / "features-muxspace-default-v1.npz") as z:
        mux = {k: z[k] for k in z.files}
    fx = fer["features"].astype(np.float32)
    tr, va = fer["train_idx"], fer["val_idx"]
    y = fer["labels"]
    mx = mux["features"].astype(np.float32)
    mux_classes = [str(c) for c in mux["classes"]]
    my = np.array([CANONICAL8.index(mux_classes[i]) for i in mux["labels"]])
    m_tr, m_va = mux["split"] == "train", mux["split"] == "val"
    shares = np.bincount(y[tr], minlength=8) / len(tr)
    rows = [{"head": "default-v1 (its own last layers)", "fer_val": fer_scores(fer["probabilities"][va], y[va], shares),
             "mux_val": mux_scores(mux["probabilities"], mux, m_va, shares)}]
    print(json.dumps(rows[-1]))
    scaler = StandardScaler().fit(np.concatenate([fx[tr], mx[m_tr]]))
    for w in args.mux_weight:
        X = np.concatenate([fx[tr], mx[m_tr]]) if w > 0 else fx[tr]
        Y = np.concatenate([y[tr], my[m_tr]]) if w > 0 else y[tr]
        sw = np.concatenate([np.ones(len(tr)), np.full(int(m_tr.sum()), w)]) if w > 0 else np.ones(len(tr))
        prior = np.bincount(Y, weights=sw, minlength=8) / sw.sum()
        for C in args.C:
            t0 = time.perf_counter()
            lr = LogisticRegression(C=C, max_iter=1000).fit(scaler.transform(X), Y, sample_weight=sw)
            seconds = time.perf_counter() - t0
            pf = lr.predict_proba(scaler.transform(fx[va]))
            pm = lr.predict_proba(scaler.transform(mx))
            rows.append({"head": f"logistic C={C}, muxspace weight {w}", "seconds": round(seconds, 1),
                         "fer_val": fer_scores(pf, y[va], prior), "mux_val": mux_scores(pm, mux, m_va, prior)})
            print(json.dumps(rows[-1]))
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
