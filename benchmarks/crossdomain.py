"""Balanced and cross-domain evaluation of every registered model: FER2013 PublicTest (accuracy, UAR, macro-F1,
rare-class recall), the muxspace photos (person-disjoint test split and all) and the London portraits.

Usage: python benchmarks/crossdomain.py [--models default fast] [--onnx new=runs/x/model.onnx --like default]
       [--prior both] [--threads 1]

The photo sets are scored as a user meets them (``openfer.crossdomain``): CenterFace, the best face per image,
aligned at each model's input size; a miss counts as wrong. Detections are cached under
``benchmarks/results/cache/`` (git-ignored), so a second run only pays for the classifiers. Every cell can be
reproduced with one ``openfer evaluate`` command (docs/models.md). ``--prior both`` scores each model with its
training and its balanced decision prior (``openfer.classify.prior``; under the training prior the label is the
model's ``decision``, the argmax after its ``decision_tau`` adjustment); the network runs once per input and the
balanced probabilities are the training ones re-weighted by ``OnnxClassifier.apply_prior``, exactly what
``load_classifier(name, prior="balanced")`` returns. An ``--onnx`` file uses the prior and exponent of ``--like``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

from openfer.classify import OnnxClassifier
from openfer.classify.prior import ARGMAX, PRIORS
from openfer.crossdomain import detect_photos, evaluate_photos, load_photo_set, photo_crops, shared_data_path
from openfer.datasets import default_npz_path, load_dataset
from openfer.detect import load_detector
from openfer.evaluate import evaluate_set
from openfer.zoo.registry import MODELS, get_spec

RARE = ("disgust", "fear", "contempt")
CACHE = Path("benchmarks/results/cache")


def classifiers(names: list[str], extra: list[str], like: str, threads: int) -> dict[str, OnnxClassifier]:
    """The registered models ``names``, plus ``name=path.onnx`` files run with the spec of ``like``."""
    out = {name: OnnxClassifier(get_spec(name), threads=threads) for name in names}
    for item in extra:
        name, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"--onnx wants name=path.onnx, got {item!r}")
        out[name] = OnnxClassifier(replace(get_spec(like), name=name), path=path, threads=threads)
    return out


class PriorView:
    """``clf`` (training prior) read with ``prior``; its network runs once per distinct input, shared via ``memo``."""

    def __init__(self, clf: OnnxClassifier, prior: str, memo: dict) -> None:
        self.clf, self.prior, self.memo = clf, prior, memo
        self.spec, self.classes, self.input_size = clf.spec, clf.classes, clf.input_size
        self.decision = clf.decision if prior == "training" else ARGMAX  # as load_classifier(name, prior=prior)

    def predict_proba(self, x):
        key = (x.shape, hashlib.sha1(x.tobytes()).hexdigest())
        if key not in self.memo:
            self.memo[key] = self.clf.predict_proba(x)
        return self.clf.apply_prior(self.memo[key], self.prior)


def brief(r: dict) -> dict:
    """The numbers the table shows, from an evaluation result (the full result stays in the JSON too)."""
    keys = ("n", "accuracy", "uar", "macro_f1", "per_class_recall", "support", "detected", "missed", "nll", "ece",
            "confusion")
    return {k: r[k] for k in keys if k in r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", action="append", default=[], help="extra model: name=path.onnx (repeatable)")
    ap.add_argument("--like", default="default", help="registered model whose spec the --onnx files share")
    ap.add_argument("--data", default=None, help="fer2013_dev.npz (default: $OPENFER_DATA or ../shared/data)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prior", choices=(*PRIORS, "both"), default="both")
    ap.add_argument("--out", default="benchmarks/results/crossdomain.json")
    ap.add_argument("--models", nargs="*", default=list(MODELS),
                    help="registered models to score (default: all); rows of others already in --out are kept")
    args = ap.parse_args()

    npz = Path(args.data) if args.data else default_npz_path()
    photo_roots = {name: shared_data_path(name) for name in ("muxspace", "london")}
    missing = [str(p) for p in [npz, *photo_roots.values()] if not p.exists()]
    if missing:
        raise SystemExit(f"not found: {', '.join(missing)} (set OPENFER_DATA / OPENFER_SHARED)")
    detector = load_detector("centerface", threads=args.threads)
    photos, dets = {}, {}
    for name, root in photo_roots.items():
        photos[name] = load_photo_set(root)
        t0 = time.perf_counter()
        dets[name] = detect_photos(photos[name], detector, CACHE / f"detections-{name}.npz")
        print(f"{name}: {len(photos[name])} images, {int(dets[name].found.sum())} with a face "
              f"({time.perf_counter() - t0:.0f} s, cached in {CACHE})", flush=True)
    test_mask = photos["muxspace"].split_mask("test")
    sets = {"muxspace_test": (photos["muxspace"].subset("test"), dets["muxspace"].take(test_mask), test_mask),
            "muxspace_all": (photos["muxspace"], dets["muxspace"], None),
            "london": (photos["london"], dets["london"], None)}
    publictest = {p: load_dataset(npz, "PublicTest", p) for p in ("ferplus", "fer2013")}
    crops: dict[tuple, dict] = {}
    priors = PRIORS if args.prior == "both" else (args.prior,)
    results = {}
    for name, base in classifiers(args.models, args.onnx, args.like, args.threads).items():
        t0 = time.perf_counter()
        memo: dict = {}
        protocol = "ferplus" if "contempt" in base.classes else "fer2013"
        key = (base.input_size, base.spec.channels)
        if key not in crops:
            crops[key] = {n: photo_crops(photos[n], dets[n], *key) for n in photo_roots}
        for prior in priors:
            clf = PriorView(base, prior, memo)
            row = {"model": name, "prior": prior, "balance_tau": base.spec.balance_tau,
                   "decision_tau": base.spec.decision_tau if prior == "training" else 0.0,
                   "publictest": {"protocol": protocol, **brief(evaluate_set(clf, publictest[protocol]))}}
            for set_name, (ps, ds, mask) in sets.items():
                c = crops[key]["london" if set_name == "london" else "muxspace"]
                if mask is not None:
                    c = c[mask[dets["muxspace"].found]]
                r = evaluate_photos(clf, ps, ds, c)
                row[set_name] = {**brief(r), "detected_only": brief(r["detected_only"])}
            results[f"{name}/{prior}"] = row
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    out = Path(args.out)
    if out.is_file():  # keep the rows of models not scored this time
        results = {**json.loads(out.read_text())["models"], **results}
    print_tables(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"models": results, "left_out": photos["muxspace"].left_out,
                               "extra_onnx": args.onnx, "like": args.like}, indent=2))
    print(f"\nJSON: {out}")


def print_tables(results: dict) -> None:
    """The markdown tables of docs/models.md."""
    print("\n| model | prior (tau) | PublicTest protocol | accuracy | UAR | macro-F1 | "
          + " | ".join(f"{c} (n)" for c in RARE) + " | muxspace test UAR / acc | muxspace all UAR / acc | London acc |")
    print("|---|---|---|---|---|---|" + "---|" * len(RARE) + "---|---|---|")
    for row in results.values():
        pt = row["publictest"]
        rare = " | ".join(f"{pt['per_class_recall'][c]:.2f} ({pt['support'][c]})" if c in pt["support"] else "—"
                          for c in RARE)
        mt, ma, lo = row["muxspace_test"], row["muxspace_all"], row["london"]
        tau = (f" ({row['balance_tau']:g})" if row["prior"] == "balanced"
               else f", label τ {row['decision_tau']:g}" if row.get("decision_tau") else "")
        print(f"| `{row['model']}` | {row['prior']}{tau} | {pt['protocol']} | {pt['accuracy']:.2%} | {pt['uar']:.2%} | {pt['macro_f1']:.3f} | "
              f"{rare} | {mt['uar']:.2%} / {mt['accuracy']:.2%} | {ma['uar']:.2%} / {ma['accuracy']:.2%} | "
              f"{lo['accuracy']:.2%} |")
    first = next(iter(results.values()))
    classes = list(first["muxspace_test"]["per_class_recall"])
    print("\nmuxspace test split, recall per class (all images; a miss counts as wrong), n: "
          + ", ".join(f"{c} {first['muxspace_test']['support'][c]}" for c in classes))
    print("\n| model | prior | " + " | ".join(classes) + " | detected-only UAR / acc | London recall neutral / happiness |")
    print("|---|---|" + "---|" * len(classes) + "---|---|")
    for row in results.values():
        mt, lo = row["muxspace_test"], row["london"]["per_class_recall"]
        print(f"| `{row['model']}` | {row['prior']} | " + " | ".join(f"{mt['per_class_recall'][c]:.2f}" for c in classes)
              + f" | {mt['detected_only']['uar']:.2%} / {mt['detected_only']['accuracy']:.2%} | "
              f"{lo['neutral']:.2f} / {lo['happiness']:.2f} |")
    for set_name in ("muxspace_test", "muxspace_all", "london"):
        r = first[set_name]
        print(f"{set_name}: {r['n']} images, {r['detected']} with a face, {r['missed']} missed")


if __name__ == "__main__":
    main()
