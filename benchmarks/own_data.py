"""Issue-15 benchmarks on shared data: source-free adaptation (FER+ -> muxspace, -> London) and few-shot heads.

Needs the feature caches of benchmarks/own_data_features.py. Adaptation treats the target's faces as unlabelled
and scores them with their labels (argmax among the classes the set scores, as benchmarks/crossdomain.py does):
  transductive: adapt on the very faces that are scored (a user adapting to the footage they analyse);
  inductive:    adapt on muxspace's train+val people, score its test people (never seen by the adaptation).
Heads: a linear head (balanced) on n labelled faces per class of muxspace's train people, scored on its test
people; on London, people split in two halves by person_split. Repeated over seeds; mean (min-max).

    python benchmarks/own_data.py --model default-v1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from openfer.adapt import adapt
from openfer.evaluate import classification_metrics, restrict
from openfer.heads.fit import TrainingSet, make_head
from openfer.zoo.registry import get_spec

CACHE = Path(__file__).parent / "results" / "cache"
RESULTS = Path(__file__).parent / "results" / "own_data.json"


def load(name: str, model: str) -> dict:
    with np.load(CACHE / f"features-{name}-{model}.npz", allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    d["features"] = d["features"].astype(np.float32)
    d["classes"] = tuple(str(c) for c in d["classes"])
    d["model_classes"] = tuple(str(c) for c in d["model_classes"])
    return d


def score(probs: np.ndarray, d: dict, mask: np.ndarray) -> dict:
    """Accuracy / UAR / per-class recall of ``probs`` on the rows in ``mask``, argmax among the set's classes."""
    p = restrict(probs[mask], d["model_classes"], d["classes"])
    m = classification_metrics(d["labels"][mask], p.argmax(1), d["classes"])
    return {"n": m["n"], "accuracy": m["accuracy"], "uar": m["uar"], "macro_f1": m["macro_f1"],
            "recall": m["per_class_recall"]}


def source_validation(model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs, features, labels) of the FER+ validation split the model was chosen on (cached)."""
    path = CACHE / f"features-fervalidation-{model}.npz"
    if not path.is_file():
        import onnx

        from openfer.classify import load_classifier
        from openfer.train.combine import split_of, validation_faces
        from openfer.zoo.registry import model_path

        clf = load_classifier(model, threads=1)
        meta = {p.key: p.value for p in onnx.load(str(model_path(clf.spec))).metadata_props}
        val = validation_faces(split_of(meta))
        probs, feats = clf.predict_features(val.pixels)
        np.savez_compressed(path, probabilities=probs, features=feats.astype(np.float16), labels=val.labels)
    with np.load(path) as z:
        return z["probabilities"], z["features"].astype(np.float32), z["labels"]


def quantification(probs: np.ndarray, d: dict, mask: np.ndarray, est: np.ndarray, prior: np.ndarray) -> dict:
    """Half the L1 distance between the true class shares of the scored faces and estimates of them (among the
    set's classes, renormalised): the training shares, the mean probability, the share of top answers, EM."""
    idx = [d["model_classes"].index(c) for c in d["classes"]]
    truth = np.bincount(d["labels"][mask], minlength=len(idx)) / mask.sum()

    def tv(v):
        v = np.asarray(v, np.float64)[idx]
        return round(float(0.5 * np.abs(v / v.sum() - truth).sum()), 4)

    p = probs[mask]
    return {"training_shares": tv(prior), "mean_probability": tv(p.mean(0)),
            "top_answer_shares": tv(np.bincount(p.argmax(1), minlength=p.shape[1]) / len(p)), "em": tv(est)}


def adaptation(model: str, source, name: str) -> list[dict]:
    from openfer.classify.prior import rebalance

    d = load(name, model)
    prior = np.array(get_spec(model).train_prior)
    rows = []
    settings = [("transductive", "all", "all")] if name == "london" else [
        ("transductive", "test", "test"), ("inductive", "train+val", "test")]
    for protocol, adapt_on, score_on in settings:
        a_mask = np.isin(d["split"], ["train", "val"]) if adapt_on == "train+val" else (
            d["split"] == adapt_on if adapt_on != "all" else np.ones(len(d["labels"]), bool))
        s_mask = d["split"] == score_on if score_on != "all" else np.ones(len(d["labels"]), bool)
        rows.append({"set": name, "protocol": protocol, "method": "none", **score(d["probabilities"], d, s_mask)})
        rows.append({"set": name, "protocol": protocol, "method": "none, balanced prior",
                     **score(rebalance(d["probabilities"], prior, 1.0), d, s_mask)})
        for method in ("em", "clusters", "both"):
            t0 = time.perf_counter()
            r = adapt(d["probabilities"][a_mask], d["features"][a_mask], prior, method,
                      source=source if method != "em" else None)
            seconds = time.perf_counter() - t0
            if protocol == "transductive":
                probs = np.zeros_like(d["probabilities"])
                probs[a_mask] = r.probabilities
            else:  # apply what was learnt on other people to the test faces, as the adapted ONNX would
                from openfer.adapt import blend, reweight
                from openfer.adapt.model import head_probabilities

                probs = reweight(d["probabilities"], r.train_prior, r.target_prior)
                if r.head is not None and r.alpha > 0:
                    probs = blend(probs, head_probabilities(r.head, d["features"], probs.shape[1]), r.alpha)
            info = {"alpha": r.alpha, "pseudo_coverage": r.pseudo.coverage if r.pseudo else None,
                    "pseudo_accuracy": pseudo_accuracy(r, d, a_mask),
                    "source_checks": r.source_checks, "seconds": round(seconds, 2),
                    "target_prior": dict(zip(d["model_classes"], np.round(r.target_prior, 4).tolist()))}
            if method == "em":
                info["share_error"] = quantification(d["probabilities"], d, s_mask, r.target_prior, prior)
            rows.append({"set": name, "protocol": protocol, "method": method, **info, **score(probs, d, s_mask)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("recall", "target_prior",
                                                                              "source_checks")}))
            rows.append({"set": name, "protocol": protocol, "method": f"{method}, balanced prior", **info,
                         **score(rebalance(probs, r.target_prior, 1.0), d, s_mask)})
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("recall", "target_prior",
                                                                              "source_checks")}))
    return rows


def pseudo_accuracy(r, d: dict, mask: np.ndarray) -> float | None:
    """Share of the pseudo-labelled faces whose pseudo-label is their true label."""
    if r.pseudo is None:
        return None
    truth = np.array([d["model_classes"].index(d["classes"][y]) for y in d["labels"][mask]])
    kept = r.pseudo.labels >= 0
    return round(float((r.pseudo.labels[kept] == truth[kept]).mean()), 4)


def few_shot(model: str, name: str, shots=(10, 50, 200), seeds=(0, 1, 2)) -> list[dict]:
    d = load(name, model)
    if name == "london":
        from openfer.crossdomain import person_split

        half = np.array([person_split(p) == "train" for p in d["persons"]])
        train_mask, test_mask = half, ~half
    else:
        train_mask, test_mask = d["split"] == "train", d["split"] == "test"
    base = score(d["probabilities"], d, test_mask)
    rows = [{"set": name, "shots": 0, "head": "none (zero-shot)", **base}]
    y = d["labels"]
    for n in shots:
        runs = []
        for seed in seeds:
            rng = np.random.default_rng(seed)
            idx = np.concatenate([rng.permutation(np.flatnonzero(train_mask & (y == c)))[:n]
                                  for c in range(len(d["classes"]))])
            data = TrainingSet(d["features"][idx], y[idx], np.arange(len(idx)), d["classes"], "frame")
            pipe = make_head("linear", C=0.1 if n < 50 else 1.0, balanced=True).fit(data.X, data.y)
            pred = pipe.predict(d["features"][test_mask])
            m = classification_metrics(y[test_mask], pred, d["classes"])
            runs.append((m["accuracy"], m["uar"], m["macro_f1"], len(idx)))
        a = np.array(runs)
        rows.append({"set": name, "shots": n, "head": "linear", "train_faces": int(a[:, 3].mean()),
                     "accuracy": float(a[:, 0].mean()), "accuracy_range": [float(a[:, 0].min()), float(a[:, 0].max())],
                     "uar": float(a[:, 1].mean()), "uar_range": [float(a[:, 1].min()), float(a[:, 1].max())],
                     "macro_f1": float(a[:, 2].mean()), "n": int(test_mask.sum())})
        print(json.dumps(rows[-1]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default-v1")
    args = ap.parse_args()
    source = source_validation(args.model)
    out = {"model": args.model, "adaptation": [], "few_shot": []}
    for name in ("muxspace", "london"):
        out["adaptation"] += adaptation(args.model, source, name)
        out["few_shot"] += few_shot(args.model, name, shots=(10, 50, 200) if name == "muxspace" else (5, 10, 40))
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    old[args.model] = out
    RESULTS.write_text(json.dumps(old, indent=1))
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
