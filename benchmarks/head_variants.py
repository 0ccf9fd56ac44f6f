"""Issue 14: what a new last layer on frozen networks can still give (validation data only, never PublicTest).

The shipped `default` is `default-int8-v1`'s three networks with a refitted logistic layer (scripts/rehead.py:
majority labels). Three questions, each scored on FER+ validation (split seed 0, 10 %; training-prior argmax and
the shipped label rule tau_d 0.25), muxspace's val people (detected faces, the 5 classes with >= 20 val photos) and
the London portraits:

- ``soft``: does the layer gain from FER+ vote distributions as targets (or half votes, half majority)?
- ``fusion``: does a second, face-pretrained network (a faceres fine-tune, its own probabilities) averaged in
  log space with weight w help?
- ``photos``: does the layer gain from muxspace's train people added to its data (disgust left out), weighted
  not at all, one each, or drawn to FER+'s class shares (``match_prior``, what made the new `large`)?
- ``probe``: London's faint smiles: a neutral-vs-happiness linear probe trained on muxspace's train people, on the
  features of `default`'s networks, of the faceres fine-tune, and of faceres's raw identity descriptors (112 px
  colour): do better features for smiles exist among them?
- ``disgust``: can the layer learn muxspace's disgust (one annotator's film-still picks, 154 train photos of 14 people,
  52 test photos, 50 of one actress) across people? Its train disgust photos weighted 0-256 times their match_prior
  weight, scored out-of-fold over groups of train people (all 6 classes) beside the usual rows.

    python benchmarks/head_variants.py --cache default-int8-v1 runs/faceres_la_long/faceres_long48.onnx --identity \\
        --second faceres_long48     # caches: ~10 min on 1 thread
    python benchmarks/head_variants.py --second faceres_long48
    python benchmarks/head_variants.py --experiments photos     # reruns one experiment, keeps the others' rows
    python benchmarks/head_variants.py --experiments disgust    # 6 weights x 4 fits: ~15 min on 2 threads
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from openfer.classify.prior import Decision
from openfer.datasets import photo_draws
from openfer.evaluate import classification_metrics, restrict
from openfer.labels import CANONICAL8
from openfer.train.combine import log_softmax

CACHE = Path(__file__).parent / "results" / "cache"
RESULTS = Path(__file__).parent / "results" / "head_variants.json"
PHOTO_SETS = ("muxspace", "london")
MUX_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger")
TAUS = (0.0, 0.25)


def key_of(model: str) -> str:
    """Cache key of a registry name or an .onnx path (its file stem)."""
    return Path(model).stem if model.endswith(".onnx") else model


def cache(models: list[str], threads: int) -> None:
    """Features and probabilities of each model on FER+ Training, muxspace (detected faces) and London."""
    from openfer.classify import load_classifier
    from openfer.crossdomain import detect_photos, load_photo_set, person_split, photo_crops, shared_data_path
    from openfer.datasets import load_dataset, stratified_split
    from openfer.detect import load_detector

    fer = load_dataset(None, "Training", "ferplus")
    train, val = stratified_split(fer.labels, 0.1, 0)
    for model in models:
        clf = load_classifier(model, threads=threads)
        p, f = clf.predict_features(fer.pixels)
        np.savez(CACHE / f"heads-fer-{key_of(model)}.npz", probabilities=p, features=f.astype(np.float32),
                 labels=fer.labels, targets=fer.targets, train_idx=train, val_idx=val)
        for name in PHOTO_SETS:
            photos = load_photo_set(shared_data_path(name), "all")
            det = detect_photos(photos, load_detector("centerface"), CACHE / f"detections-{name}.npz")
            p, f = clf.predict_features(photo_crops(photos, det, clf.input_size, clf.spec.channels))
            np.savez(CACHE / f"heads-{name}-{key_of(model)}.npz", probabilities=p, features=f.astype(np.float32),
                     labels=photos.labels[det.found], classes=np.array(photos.classes),
                     split=np.array([person_split(q) for q in photos.persons])[det.found])
        print(f"cached {model}", flush=True)


def identity_descriptors(model_dir: str, size: int = 112) -> None:
    """faceres's raw 1,024-d identity descriptors of the photo sets' faces (colour, expression template)."""
    from openfer.crossdomain import detect_photos, load_photo_set, photo_crops, shared_data_path
    from openfer.detect import load_detector
    from openfer.track.identity import load_describer

    session = load_describer(model_dir, size, threads=2).session
    for name in PHOTO_SETS:
        photos = load_photo_set(shared_data_path(name), "all")
        det = detect_photos(photos, load_detector("centerface"), CACHE / f"detections-{name}.npz")
        x = photo_crops(photos, det, size, 3).transpose(0, 3, 1, 2).astype(np.float32)
        d = np.concatenate([session.run(None, {"faces": x[i:i + 128]})[0] for i in range(0, len(x), 128)])
        np.save(CACHE / f"heads-{name}-identity{size}.npy", d)


def load(kind: str, key: str) -> dict:
    with np.load(CACHE / f"heads-{kind}-{key}.npz") as z:
        return {k: z[k] for k in z.files}


def scores(p_fer: np.ndarray, p_mux: np.ndarray, p_lon: np.ndarray, sets: dict, prior: np.ndarray) -> list[dict]:
    """FER+ val, muxspace val (5 classes) and London figures of one layer's probabilities, per label rule."""
    fer, mux, lon = sets["fer"], sets["muxspace"], sets["london"]
    y = fer["labels"][fer["val_idx"]]
    out = []
    for tau in TAUS:
        rule = Decision(tuple(prior), tau)
        m = classification_metrics(y, rule.index(p_fer), CANONICAL8)
        row = {"tau_d": tau, "fer_val_acc": m["accuracy"], "fer_val_uar": m["uar"],
               "rare_recall": {c: m["per_class_recall"][c] for c in ("disgust", "fear", "contempt")}}
        for name, z, p, keep, rows in (("muxspace_val", mux, p_mux, MUX_CLASSES, mux["split"] == "val"),
                                       ("london", lon, p_lon, None, True)):
            classes = tuple(str(c) for c in z["classes"])
            keep = keep or classes
            sel = np.isin(np.array(classes)[z["labels"]], keep) & rows
            pred = restrict(rule.weigh(p[sel]), CANONICAL8, classes).argmax(1)
            mm = classification_metrics(z["labels"][sel], pred, classes)
            recall = {c: mm["per_class_recall"][c] for c in keep}
            row[name] = {"accuracy": mm["accuracy"], "uar": float(np.mean(list(recall.values()))), "recall": recall}
        out.append(row)
    return out


def fit_layer(x: np.ndarray, targets: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic layer on standardised ``x`` with soft ``targets`` [N, K] (rows sum to 1) and an L2
    penalty on the weights: full-batch L-BFGS. Returns (W [K, D], b [K]) for standardised inputs."""
    import torch

    torch.manual_seed(0)
    xt, tt = torch.tensor(x, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)
    layer = torch.nn.Linear(x.shape[1], targets.shape[1])
    opt = torch.optim.LBFGS(layer.parameters(), lr=1, max_iter=500, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -(tt * torch.log_softmax(layer(xt), 1)).sum(1).mean() + l2 * (layer.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer.weight.detach().numpy(), layer.bias.detach().numpy()


def soft_targets(base: str, second: str | None) -> list[dict]:
    sets = {k: load(k, base) for k in ("fer", *PHOTO_SETS)}
    fer = sets["fer"]
    tr, va, y = fer["train_idx"], fer["val_idx"], fer["labels"]
    mu, sd = fer["features"][tr].mean(0), fer["features"][tr].std(0) + 1e-6
    votes = fer["targets"] / fer["targets"].sum(1, keepdims=True)
    onehot = np.eye(len(CANONICAL8))[y]
    prior = np.bincount(y[tr], minlength=len(CANONICAL8)) / len(tr)
    rows = []
    for l2 in (1e-4, 1e-3):
        for mix in (0.0, 0.5, 1.0):
            w, b = fit_layer((fer["features"][tr] - mu) / sd, (mix * votes + (1 - mix) * onehot)[tr], l2)
            feats = {k: sets[k]["features"][va] if k == "fer" else sets[k]["features"] for k in sets}
            probs = {k: np.exp(log_softmax((f - mu) / sd @ w.T + b)) for k, f in feats.items()}
            rows.append({"experiment": "soft", "l2": l2, "vote_share": mix,
                         "scores": scores(probs["fer"], probs["muxspace"], probs["london"], sets, prior)})
            print(json.dumps(rows[-1]), flush=True)
            if second and l2 == 1e-3 and mix == 0.0:
                two = {k: load(k, second) for k in ("fer", *PHOTO_SETS)}
                other = {"fer": two["fer"]["probabilities"][va], **{k: two[k]["probabilities"] for k in PHOTO_SETS}}
                for wt in (0.2, 0.3, 0.4, 0.5):
                    mixed = {k: np.exp(log_softmax((1 - wt) * np.log(probs[k] + 1e-9) + wt * np.log(other[k] + 1e-9)))
                             for k in probs}
                    rows.append({"experiment": "fusion", "second": second, "weight": wt,
                                 "scores": scores(mixed["fer"], mixed["muxspace"], mixed["london"], sets, prior)})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def probes(keys: list[str]) -> list[dict]:
    """Neutral-vs-happiness probes trained on muxspace's train people, scored on its val people and London."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    mux, lon = load("muxspace", keys[0]), load("london", keys[0])
    feats = {k: (load("muxspace", k)["features"], load("london", k)["features"]) for k in keys}
    if (CACHE / "heads-muxspace-identity112.npy").exists():
        feats["faceres identity 112 px"] = tuple(np.load(CACHE / f"heads-{s}-identity112.npy") for s in PHOTO_SETS)
    ym = np.array([str(c) for c in mux["classes"]])[mux["labels"]]
    yl = np.array([str(c) for c in lon["classes"]])[lon["labels"]] == "happiness"
    two = np.isin(ym, ["neutral", "happiness"])
    tr, va = two & (mux["split"] == "train"), two & (mux["split"] == "val")
    rows = []
    for name, (fm, fl) in feats.items():
        for c in (0.01, 0.1):
            sc = StandardScaler().fit(fm[tr])
            lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
            lr.fit(sc.transform(fm[tr]), ym[tr] == "happiness")
            sv, sl = lr.decision_function(sc.transform(fm[va])), lr.decision_function(sc.transform(fl))
            rows.append({"experiment": "probe", "features": name, "C": c,
                         "muxspace_val": {"accuracy": float(((sv > 0) == (ym[va] == "happiness")).mean()),
                                          "auc": float(roc_auc_score(ym[va] == "happiness", sv))},
                         "london": {"accuracy": float(((sl > 0) == yl).mean()), "auc": float(roc_auc_score(yl, sl))}})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def weighted_layer(x: np.ndarray, labels: np.ndarray, weights: np.ndarray):
    """The shipped layer's recipe (majority labels, L2 1e-3) on standardised ``x`` with per-row ``weights``:
    returns features -> probabilities, and the weighted class shares (the layer's training prior)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    targets = np.eye(len(CANONICAL8))[labels] * weights[:, None] * len(weights) / weights.sum()
    w, b = fit_layer((x - mu) / sd, targets, 1e-3)
    prior = np.bincount(labels, weights=weights, minlength=len(CANONICAL8)) / weights.sum()
    return (lambda f: np.exp(log_softmax((f - mu) / sd @ w.T + b))), prior


def photo_layers(base: str) -> list[dict]:
    """The shipped layer's recipe (majority labels, L2 1e-3) refitted on FER+ Training plus muxspace's train people
    (detected faces; disgust left out), the photos weighted 0, 1 each, or to FER+'s class shares
    (``openfer.datasets.photo_draws``: the weights an epoch of draws averages to)."""
    sets = {k: load(k, base) for k in ("fer", *PHOTO_SETS)}
    fer, mux = sets["fer"], sets["muxspace"]
    tr, va, y = fer["train_idx"], fer["val_idx"], fer["labels"]
    names = np.array([str(c) for c in mux["classes"]])[mux["labels"]]
    keep = (mux["split"] == "train") & (names != "disgust")
    my = np.array([CANONICAL8.index(n) for n in names[keep]])
    x = np.concatenate([fer["features"][tr], mux["features"][keep]])
    fer_shares = np.bincount(y[tr], minlength=len(CANONICAL8)) / len(tr)
    rows = []
    for mode in ("none", "uniform", "match_prior"):
        if mode == "none":
            photo_w = np.zeros(len(my))
        elif mode == "uniform":
            photo_w = np.ones(len(my))
        else:
            photo_w = photo_draws(my, fer_shares, "match_prior") * len(my)
        layer, prior = weighted_layer(x, np.concatenate([y[tr], my]), np.concatenate([np.ones(len(tr)), photo_w]))
        feats = {k: sets[k]["features"][va] if k == "fer" else sets[k]["features"] for k in sets}
        probs = {k: layer(f) for k, f in feats.items()}
        rows.append({"experiment": "photos", "photos": mode, "n_photos": int(len(my)),
                     "scores": scores(probs["fer"], probs["muxspace"], probs["london"], sets, prior)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def photo_people(name: str) -> np.ndarray:
    """The person of each cached row of a photo set (detected faces, in ``cache``'s order)."""
    from openfer.crossdomain import detect_photos, load_photo_set, shared_data_path
    from openfer.detect import load_detector

    photos = load_photo_set(shared_data_path(name), "all")
    det = detect_photos(photos, load_detector("centerface"), CACHE / f"detections-{name}.npz")
    return np.array(photos.persons)[det.found]


def disgust_layers(base: str, folds: int = 3,
                   boosts: tuple[float, ...] = (0.0, 1.0, 4.0, 16.0, 64.0, 256.0)) -> list[dict]:
    """Can the layer learn muxspace's disgust (one annotator's film-still picks) across people? The photo-layer
    recipe (match_prior, photo weight 0.25) with the train people's disgust photos weighted ``boost`` times their
    match_prior weight (0: left out, as shipped), scored person-disjointly: out-of-fold over the train people
    (``folds`` groups of people; muxspace's val people hold 2 disgust photos), all 6 classes."""
    from sklearn.model_selection import GroupKFold

    sets = {k: load(k, base) for k in ("fer", *PHOTO_SETS)}
    fer, mux = sets["fer"], sets["muxspace"]
    tr, va, y = fer["train_idx"], fer["val_idx"], fer["labels"]
    names = np.array([str(c) for c in mux["classes"]])[mux["labels"]]
    train = np.flatnonzero(mux["split"] == "train")
    people = photo_people("muxspace")[train]
    my = np.array([CANONICAL8.index(n) for n in names[train]])
    fer_shares = np.bincount(y[tr], minlength=len(CANONICAL8)) / len(tr)
    mux6 = tuple(str(c) for c in mux["classes"])
    rows = []
    for boost in boosts:
        base_w = photo_draws(my, fer_shares, "match_prior") * len(my) * 0.25
        photo_w = np.where(names[train] == "disgust", base_w * boost, base_w)
        oof = np.zeros((len(train), len(CANONICAL8)))
        splits = list(GroupKFold(folds).split(train, groups=people)) + [(np.arange(len(train)), None)]
        for fit_rows, held in splits:
            layer, prior = weighted_layer(np.concatenate([fer["features"][tr], mux["features"][train[fit_rows]]]),
                                          np.concatenate([y[tr], my[fit_rows]]),
                                          np.concatenate([np.ones(len(tr)), photo_w[fit_rows]]))
            if held is not None:
                oof[held] = layer(mux["features"][train[held]])
        feats = {k: sets[k]["features"][va] if k == "fer" else sets[k]["features"] for k in sets}
        probs = {k: layer(f) for k, f in feats.items()}
        row = {"experiment": "disgust", "disgust_boost": boost, "folds": folds,
               "scores": scores(probs["fer"], probs["muxspace"], probs["london"], sets, prior)}
        for tau, sc in zip(TAUS, row["scores"]):
            pred = restrict(Decision(tuple(prior), tau).weigh(oof), CANONICAL8, mux6).argmax(1)
            mm = classification_metrics(mux["labels"][train], pred, mux6)
            sc["muxspace_train_oof"] = {"accuracy": mm["accuracy"], "uar6": mm["uar"], "recall": mm["per_class_recall"]}
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", nargs="*", help="models (registry names or .onnx) whose features to cache first")
    ap.add_argument("--identity", action="store_true", help="also cache faceres's raw identity descriptors")
    ap.add_argument("--faceres", default="../shared/models/faceres", help="folder of the faceres files (--identity)")
    ap.add_argument("--base", default="default-int8-v1")
    ap.add_argument("--second", default=None, help="cache key of a second model for the fusion rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--experiments", nargs="+", choices=("soft", "photos", "probe", "disgust"),
                    default=["soft", "photos", "probe"])
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.cache:
        cache(args.cache, args.threads)
    if args.identity:
        identity_descriptors(args.faceres)
    runs = {"soft": lambda: soft_targets(args.base, args.second), "photos": lambda: photo_layers(args.base),
            "disgust": lambda: disgust_layers(args.base),
            "probe": lambda: probes([args.base] + ([args.second] if args.second else []))}
    produces = {"soft": ("soft", "fusion"), "photos": ("photos",), "probe": ("probe",), "disgust": ("disgust",)}
    rerun = {e for name in args.experiments for e in produces[name]}
    rows = [r for r in json.loads(RESULTS.read_text()) if r["experiment"] not in rerun] if RESULTS.exists() else []
    for name in args.experiments:
        rows += runs[name]()
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
