"""Issue 14, calibration on damaged faces: a per-region temperature (what is covered: eyes, mouth, or detail).

Usage: python benchmarks/region_temperature.py --detections CACHE [--model default] [--write PROBE.onnx]  # ~5 min

``benchmarks/occlusion_temperature.py`` softened a face by one temperature when a probe on the pooled features
said "covered" (fitted on FER+ faces and flat bands alone): masks gained, but on muxspace's photos headset-covered,
blurred and small faces became underconfident. This asks whether it should depend on *what* is damaged, fitted on
both domains, with no test set and no ``openfer.corrupt`` occluder in any fit:

1. a 4-way **damage probe** (clean / eyes covered / mouth covered / detail lost) on the model's pooled features, fitted
   on 6,000 FER+ Training faces and 2,000 photos of muxspace's train people, each clean and under one synthetic
   damage of each kind: the training augmentation's flat bands over the eyes or brows (``BANDS[0:2]``), over the
   mouth and jaw (``BANDS[2]``), and low resolution, blur or noise of random strength;
2. **per-face temperature** ``1 + sum_k (T_k - 1) p_k`` over the three damage kinds, the ``T_k`` fitted (NLL, the
   two domains weighted equally) on half of the FER+ validation split and on the val people of muxspace in even
   sha1 buckets, clean and under each synthetic damage; and, fitted the same way, one ``T`` for all three kinds
   (``any``: the probe's 1 - p(clean) as the weight);
3. scored on the other halves (FER+ validation's odd rows; muxspace's val people in odd buckets) clean and under
   ``openfer.corrupt``'s nine corruptions, against no temperature and against the one-temperature remedy refitted
   on the same faces (its probe on bands alone, its T on the FER+ half alone, as the earlier benchmark did).
   Eyes and mouth are scored on drawn occluders (glasses, sunglasses, headset, mask) the fits never saw; blur,
   noise and 12 px are of the kinds the detail damage draws, a weaker test. Writes
   ``benchmarks/results/region_temperature.json``, and with ``--write`` the probe and its per-kind temperatures as
   the head file ``openfer.classify.damage.attach_damage`` reads (`default`'s ``default_damage.onnx``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from openfer.classify import load_classifier
from openfer.classify.damage import KINDS, bands, fit_probe, fit_temperatures, soften
from openfer.corrupt import CORRUPTIONS
from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
from openfer.datasets import load_dataset, stratified_split
from openfer.detect import load_detector
from openfer.evaluate import calibration_metrics, retemper
from openfer.train.combine import metadata, split_of, validation_faces
from openfer.zoo.registry import resolve_model

RESULTS = Path(__file__).parent / "results" / "region_temperature.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="a classifier without a damage probe")
    ap.add_argument("--data", default=None, help="FER2013 npz (default: ../shared/data/fer2013_dev.npz)")
    ap.add_argument("--detections", default=None, help="muxspace detection cache (openfer evaluate's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--write", type=Path, help="also write the 4-way probe and its per-kind temperatures as a "
                    "head file for openfer.classify.damage.attach_damage (the shipped default_damage.onnx)")
    args = ap.parse_args()
    clf = load_classifier(args.model, threads=2)
    spec, path = resolve_model(args.model)
    if "damage" in metadata(path):
        raise SystemExit(f"{args.model} already softens damaged faces: give the classifier without its probe")
    split = split_of(metadata(path))
    detector = load_detector("centerface")

    def photos_of(people: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        photos = load_photo_set(shared_data_path("muxspace"), people)
        found = detect_photos(photos, detector, args.detections)
        names = np.array(photos.classes)[photos.labels[found.found]]
        keep = np.isin(names, clf.classes)
        bucket = np.array([int(hashlib.sha1(p.encode()).hexdigest(), 16) % 100 for p in photos.persons])[found.found]
        crops = photo_crops(photos, found, clf.input_size, spec.channels)
        return crops[keep], np.array([clf.classes.index(n) for n in names[keep]]), bucket[keep]

    # 1. the probes: 4-way on both domains; the one-temperature baseline's binary one on FER faces and bands
    full = load_dataset(args.data, "Training", split["protocol"])
    train, _ = stratified_split(full.labels, split["val_fraction"], split["split_seed"])
    fer = full.pixels[np.random.default_rng(1).choice(train, 6000, replace=False)]
    mux_train = photos_of("train")[0]
    mux_train = mux_train[np.random.default_rng(1).choice(len(mux_train), 2000, replace=False)]
    probe = fit_probe(clf, [fer, mux_train], [10, 13])
    one = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    clean_f, banded_f = clf.predict_features(fer)[1], clf.predict_features(bands(fer, 2))[1]
    one.fit(np.concatenate([clean_f, banded_f]), np.r_[np.zeros(len(fer)), np.ones(len(fer))])

    # 2. the temperatures, on the fit halves
    val = validation_faces(split, args.data)
    half = np.arange(len(val)) % 2 == 0
    mux_pix, mux_y, mux_bucket = photos_of("val")
    mux_fit = mux_bucket % 2 == 0
    fit_sets = [(val.pixels[half], val.labels[half]), (mux_pix[mux_fit], mux_y[mux_fit])]
    temps = fit_temperatures(clf, probe, fit_sets, 20)
    t_any = fit_temperatures(clf, probe, fit_sets, 20, shared=True)
    clean_p, clean_f = clf.predict_features(val.pixels[half])  # the baseline's T: FER's fit half, clean and banded
    banded_p, banded_f = clf.predict_features(bands(val.pixels[half], 4))
    q = one.predict_proba(np.concatenate([clean_f, banded_f]))[:, 1]
    base_p, base_y = np.concatenate([clean_p, banded_p]), np.tile(val.labels[half], 2)
    grid = np.round(np.arange(1.0, 3.001, 0.05), 2)
    t_one = float(grid[int(np.argmin([calibration_metrics(retemper(base_p, 1 + (t - 1) * q), base_y)["nll"]
                                      for t in grid]))])
    print(f"{args.model}: T per kind {temps}, any damage {t_any['eyes']} (both domains); one T = {t_one}",
          flush=True)

    if args.write:
        from openfer.heads.export import head_only, save_model

        meta = {"temperatures": json.dumps(temps), "base_model": args.model, "base_sha256": spec.sha256,
                "probe": json.dumps({"fer_training_faces": len(fer), "photos": len(mux_train), "C": 0.1,
                                     "temperatures_fitted_on": "half of the FER validation split and the muxspace "
                                                               "val people in even sha1 buckets"})}
        save_model(head_only(probe, KINDS, meta, input_name="features"), args.write)

    # 3. scored on the held-out halves
    out = {"model": args.model, "temperatures": temps, "one_t": t_one, "any_t": t_any["eyes"]}
    for name, (pix, y) in {"fer_val": (val.pixels[~half], val.labels[~half]),
                           "muxspace_val": (mux_pix[~mux_fit], mux_y[~mux_fit])}.items():
        print(f"{name}: {len(y)} faces")
        table = {}
        for cond in ["clean", *CORRUPTIONS]:
            probs, f = clf.predict_features(pix if cond == "clean" else CORRUPTIONS[cond](pix))
            pk = probe.predict_proba(f)
            versions = {"none": probs, "one": retemper(probs, 1 + (t_one - 1) * one.predict_proba(f)[:, 1]),
                        "regions": soften(probs, pk, temps), "any": soften(probs, pk, t_any)}
            m = {v: calibration_metrics(p, y) for v, p in versions.items()}
            table[cond] = r = {"accuracy": float((probs.argmax(1) == y).mean()),
                               "kind": dict(zip(KINDS, np.round(pk.mean(0), 3).tolist())),
                               **{v: {"ece": m[v]["ece"], "nll": m[v]["nll"],
                                      "confidence": float(p.max(1).mean())} for v, p in versions.items()}}
            print(f"{cond:>10}: acc {r['accuracy']:.3f}  kind {r['kind']}  ECE none/one/regions/any "
                  + " / ".join(f"{r[v]['ece']:.3f}" for v in versions) + "  NLL "
                  + " / ".join(f"{r[v]['nll']:.3f}" for v in versions), flush=True)
        out[name] = {"n": int(len(y)), "rows": table}
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
