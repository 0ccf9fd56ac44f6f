"""Softer answers on damaged faces: a damage probe on the pooled features and a temperature per kind of damage.

A covered, blurred or tiny face is read less accurately but, left alone, just as confidently (docs/models.md,
"Robustness"). A 4-way logistic probe on the classifier's features says how likely the face is clean, covered over
the eyes, covered over the mouth, or low in detail; the probabilities are then re-tempered per face, by
``1 + sum_k (T_k - 1) p_k`` over the three kinds of damage. A temperature keeps the argmax. ``attach_damage`` puts
probe and temperature inside the classifier file, so every reader (the ``Analyzer``, ``openfer evaluate``, video
smoothing, feature tables) sees the same probabilities and derives the same labels from them. The probe's own
probabilities are the file's second output, ``damage``: each face of such a model carries them (``Face.damage``,
``damage_*`` table columns) and its label names the likeliest damage (``damage_note``: "mouth covered").

The probe is fitted on synthetic damage only (``damaged``): the training augmentation's flat bands over the eyes or
the mouth and jaw, and low resolution, blur or noise of random strength; never on ``openfer.corrupt``'s drawn
glasses, headset and mask, which score it (``benchmarks/region_temperature.py`` fits, scores and writes the probe).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import onnx

KINDS = ("clean", "eyes", "mouth", "detail")
#: Name of the second output of a classifier with a damage probe: the probe's probabilities [N, 4] over ``KINDS``.
DAMAGE = "damage"
#: The training augmentation's bands (``openfer.train.augment.BANDS``, top and bottom as fractions of the crop):
#: over the eyes, over the eyes and brows, over the mouth and jaw. Repeated here so inference needs no torch.
BANDS: tuple[tuple[float, float], ...] = ((0.31, 0.49), (0.18, 0.55), (0.58, 1.0))
#: How a face's damage reads in a label.
DAMAGE_WORDS = {"eyes": "eyes covered", "mouth": "mouth covered", "detail": "low detail"}
#: What summaries count a face as: ``clean``, or the words of its likeliest damage (``damage_note``).
DAMAGE_NOTES = ("clean", *DAMAGE_WORDS.values())


def damage_note(damage: dict[str, float], at_least: float = 0.5) -> str | None:
    """The words for a face's most likely kind of damage (``Face.damage``) when it has probability ``at_least``,
    e.g. ``"mouth covered"``; None for a clean face or one without a damage probe."""
    worst = max((k for k in damage if k in DAMAGE_WORDS), key=damage.get, default=None)
    return DAMAGE_WORDS[worst] if worst is not None and damage[worst] >= at_least else None


def damage_kinds(classifier) -> tuple[str, ...]:
    """The kinds a classifier's damage probe reports per face (``OnnxClassifier.damage_kinds``); () for a model
    without one and for classifiers that do not say (PyTorch twins, a user's own)."""
    return tuple(getattr(classifier, "damage_kinds", ()))


def bands(crops: np.ndarray, seed: int, choices: tuple[tuple[float, float], ...] = BANDS) -> np.ndarray:
    """A copy of uint8 crops [N, S, S(, C)], each under one flat band of ``choices`` at a random grey level, shifted
    up to 4 % and inset up to 12 % from the sides, as the training augmentation draws them."""
    rng = np.random.default_rng(seed)
    out, (n, h, w) = crops.copy(), crops.shape[:3]
    for i in range(n):
        top, bottom = choices[rng.integers(len(choices))]
        shift, margin = rng.uniform(-0.04, 0.04), int(rng.uniform(0, 0.12) * w)
        out[i, max(int((top + shift) * h), 0): int(min(bottom + shift, 1.0) * h), margin: w - margin] = \
            int(rng.uniform(0, 1) * 255)
    return out


def lose_detail(crops: np.ndarray, seed: int) -> np.ndarray:
    """A copy of uint8 crops [N, S, S], each downsampled (to 8-20 px at 48), blurred (sigma 0.8-2.5 px at 48) or
    noisy (standard deviation 5-25 of 255), one of the three at random."""
    rng = np.random.default_rng(seed)
    out, side = crops.copy(), crops.shape[1]
    for i in range(len(out)):
        kind = rng.integers(3)
        if kind == 0:
            small = max(2, int(rng.uniform(8, 20) * side / 48))
            out[i] = cv2.resize(cv2.resize(out[i], (small, small), interpolation=cv2.INTER_AREA), (side, side),
                                interpolation=cv2.INTER_LINEAR)
        elif kind == 1:
            out[i] = cv2.GaussianBlur(out[i], (0, 0), rng.uniform(0.8, 2.5) * side / 48)
        else:
            out[i] = np.clip(out[i] + rng.normal(0, rng.uniform(5, 25), out[i].shape), 0, 255).astype(np.uint8)
    return out


def damaged(crops: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The crops under each of ``KINDS`` (``clean``: as they are), in that order."""
    return {"clean": crops, "eyes": bands(crops, seed, BANDS[:2]), "mouth": bands(crops, seed + 1, BANDS[2:]),
            "detail": lose_detail(crops, seed + 2)}


def _excess(temperatures: dict[str, float]) -> np.ndarray:
    """Each kind's temperature minus 1, in ``KINDS`` order (0 for ``clean``)."""
    return np.array([0.0] + [temperatures[k] - 1.0 for k in KINDS[1:]])


def face_temperature(p_kind: np.ndarray, temperatures: dict[str, float]) -> np.ndarray:
    """Per-face temperature [N] from the probe's probabilities [N, 4] over ``KINDS``: 1 on a clean face."""
    return 1.0 + np.asarray(p_kind, np.float64) @ _excess(temperatures)


def soften(probs: np.ndarray, p_kind: np.ndarray, temperatures: dict[str, float]) -> np.ndarray:
    """``probs`` [N, K] re-tempered per face (``face_temperature``); what ``attach_damage``'s graph computes."""
    from openfer.evaluate import retemper

    return retemper(np.asarray(probs, np.float64), face_temperature(p_kind, temperatures))


def attach_damage(base: onnx.ModelProto, probe: onnx.ModelProto, n_classes: int) -> onnx.ModelProto:
    """``base``'s classifier with its probabilities re-tempered per face by a damage probe.

    ``probe`` is a head-only graph (``openfer.heads.export.head_only``: features in, probabilities over ``KINDS``
    out) whose metadata holds ``temperatures`` (JSON: eyes, mouth, detail). The result has two outputs,
    ``probabilities`` (softened) and ``damage`` (the probe's probabilities over ``KINDS``, so each face can say
    why its answer is softer), and ``base``'s metadata plus ``damage`` (the kinds and temperatures)."""
    import onnx  # only when composing: its import takes about 1 s
    import onnx.compose
    from onnx import helper, numpy_helper

    from openfer.classify.features import fresh_name, metadata_of, prune, rename_output, with_features, write_metadata

    if any(DAMAGE in (*n.input, *n.output) for n in base.graph.node):
        raise ValueError(f"the classifier already has a tensor named {DAMAGE!r}: is a damage probe attached?")
    meta = metadata_of(probe)
    temps = json.loads(meta["temperatures"])
    feats = fresh_name(base, "damage_features")
    model, _ = with_features(base, n_classes, name=feats)
    output = model.graph.output[0].name
    probs_in = fresh_name(base, "damage_base_probabilities")
    model = rename_output(model, probs_in)  # the base's answer, re-tempered below into the file's output
    g = model.graph
    prefixed = onnx.compose.add_prefix(probe, fresh_name(base, "damage/"))
    h = prefixed.graph
    g.node.append(helper.make_node("Identity", [feats], [h.input[0].name], name=f"{feats}_to_probe"))
    g.node.extend(h.node)
    g.initializer.extend(h.initializer)
    n = lambda s: fresh_name(base, f"damage_{s}")  # noqa: E731 - fresh tensor names
    g.initializer.extend([numpy_helper.from_array(_excess(temps).astype(np.float32)[:, None], n("excess")),
                          numpy_helper.from_array(np.array(1.0, np.float32), n("one")),
                          numpy_helper.from_array(np.array(1e-12, np.float32), n("eps"))])
    g.node.extend([
        helper.make_node("MatMul", [h.output[0].name, n("excess")], [n("extra")]),  # [N, 1]
        helper.make_node("Add", [n("extra"), n("one")], [n("t")]),
        helper.make_node("Max", [probs_in, n("eps")], [n("p")]),
        helper.make_node("Log", [n("p")], [n("logp")]),
        helper.make_node("Div", [n("logp"), n("t")], [n("z")]),
        helper.make_node("Softmax", [n("z")], [n("out")], axis=1),
        helper.make_node("Identity", [h.output[0].name], [DAMAGE], name=n("kinds")),
    ])
    model = rename_output(prune(model, [n("out"), DAMAGE]), output)
    base_meta = metadata_of(base)
    base_meta["damage"] = json.dumps({"kinds": list(KINDS), "temperatures": temps,
                                      **({"probe": json.loads(meta["probe"])} if "probe" in meta else {})})
    model = write_metadata(model, base_meta)
    onnx.checker.check_model(model)
    return model


def probe_rows(clf, crops: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``clf``'s probabilities [4N, K] and features [4N, D] of ``crops`` under each of ``KINDS`` (``damaged``), and
    each row's kind index [4N]."""
    parts = [clf.predict_features(v) for v in damaged(crops, seed).values()]
    return (np.concatenate([p for p, _ in parts]), np.concatenate([f for _, f in parts]),
            np.repeat(np.arange(len(KINDS)), len(crops)))


def fit_probe(clf, sets: list[np.ndarray], seeds: list[int]):
    """The 4-way damage probe (standardised features, L2 logistic regression, C 0.1) on ``clf``'s features of each
    crop set under each kind of damage (scikit-learn pipeline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = [probe_rows(clf, crops, seed) for crops, seed in zip(sets, seeds)]
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    probe.fit(np.concatenate([f for _, f, _ in rows]), np.concatenate([k for _, _, k in rows]))
    return probe


def fit_temperatures(clf, probe, sets: list[tuple[np.ndarray, np.ndarray]], seed: int, shared: bool = False
                     ) -> dict[str, float]:
    """Temperatures of the three kinds of damage minimising the mean over ``sets`` (crops, labels; each set one
    domain, weighted equally) of the NLL of the softened probabilities, clean and under each kind of damage;
    ``shared``: one temperature for all three (weighted by the probe's 1 - p(clean))."""
    from scipy.optimize import minimize

    from openfer.evaluate import calibration_metrics

    rows = []
    for crops, labels in sets:
        probs, feats, _ = probe_rows(clf, crops, seed)
        rows.append((probs, probe.predict_proba(feats), np.tile(labels, len(KINDS))))

    n = 1 if shared else len(KINDS) - 1

    def nll(t: np.ndarray) -> float:
        temps = dict(zip(KINDS[1:], np.resize(t, len(KINDS) - 1)))
        return float(np.mean([calibration_metrics(soften(p, k, temps), y)["nll"] for p, k, y in rows]))

    best = minimize(nll, np.ones(n), method="L-BFGS-B", bounds=[(0.5, 4.0)] * n).x
    return {k: round(float(v), 3) for k, v in zip(KINDS[1:], np.resize(best, len(KINDS) - 1))}
