"""Label taxonomies, FER+ vote rules, metrics, and the npz dataset reader / evaluator on a tiny generated file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from openfer.datasets import FaceSet, default_npz_path, load_npz, stratified_split
from openfer.errors import UsageError
from openfer.evaluate import classification_metrics, evaluate_npz
from openfer.labels import (
    ALIASES,
    CANONICAL8,
    FER2013_CLASSES,
    FERPLUS_COLUMNS,
    canonical,
    ferplus_majority,
    ferplus_soft,
)

# ---------------------------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------------------------


def test_taxonomies():
    assert CANONICAL8 == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    assert FERPLUS_COLUMNS == CANONICAL8 + ("unknown", "NF")
    assert FER2013_CLASSES == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    assert set(FER2013_CLASSES) < set(CANONICAL8)
    assert set(ALIASES.values()) == set(CANONICAL8)


MAJORITY_CASES = [
    # votes in FERPLUS_COLUMNS order: neutral happy surprise sad anger disgust fear contempt unknown NF
    ("clear-majority", [0, 8, 2, 0, 0, 0, 0, 0, 0, 0], 1),
    ("unanimous-contempt", [0, 0, 0, 0, 0, 0, 0, 10, 0, 0], 7),
    ("tie", [5, 5, 0, 0, 0, 0, 0, 0, 0, 0], -1),
    ("exactly-half", [4, 0, 2, 2, 0, 0, 0, 0, 0, 0], -1),
    ("just-over-half", [5, 0, 2, 2, 0, 0, 0, 0, 0, 0], 0),
    ("ones-removed-first", [4, 1, 1, 1, 1, 1, 1, 0, 0, 0], 0),
    ("ones-removed-make-majority", [3, 2, 1, 1, 1, 1, 1, 0, 0, 0], 0),
    ("ones-in-unknown-removed", [3, 0, 2, 0, 0, 0, 0, 0, 1, 1], 0),
    ("no-majority", [3, 3, 2, 2, 0, 0, 0, 0, 0, 0], -1),
    ("majority-unknown", [2, 0, 0, 0, 0, 0, 0, 0, 8, 0], -1),
    ("majority-NF", [0, 0, 0, 2, 0, 0, 0, 0, 0, 8], -1),
    ("all-zero", [0] * 10, -1),
    ("all-ones", [1] * 10, -1),
    ("only-a-single-vote", [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], -1),
]


@pytest.mark.parametrize("name,votes,expected", MAJORITY_CASES, ids=[c[0] for c in MAJORITY_CASES])
def test_ferplus_majority_single(name, votes, expected):
    out = ferplus_majority(np.array([votes], np.uint8))
    assert out.shape == (1,) and out.dtype == np.int64
    assert int(out[0]) == expected


def test_ferplus_majority_batch_and_no_mutation():
    votes = np.array([c[1] for c in MAJORITY_CASES], np.uint8)
    before = votes.copy()
    assert ferplus_majority(votes).tolist() == [c[2] for c in MAJORITY_CASES]
    np.testing.assert_array_equal(votes, before)


def test_ferplus_soft():
    votes = np.array([[0, 8, 2, 0, 0, 0, 0, 0, 0, 0],
                      [2, 0, 0, 0, 0, 0, 0, 0, 8, 0],  # unknown votes are not part of the 8-class distribution
                      [0, 0, 0, 0, 0, 0, 0, 0, 5, 5],  # no emotion votes at all -> zero row
                      [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]], np.uint8)
    s = ferplus_soft(votes)
    assert s.shape == (4, 8) and s.dtype == np.float32
    np.testing.assert_allclose(s[0], [0, 0.8, 0.2, 0, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(s[1], [1, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(s[2], np.zeros(8))
    np.testing.assert_allclose(s[3], np.full(8, 1 / 8), atol=1e-6)
    np.testing.assert_allclose(s[[0, 1, 3]].sum(1), 1, atol=1e-6)


@pytest.mark.parametrize(
    "name,expected",
    [("angry", "anger"), ("Happy", "happiness"), (" sad ", "sadness"), ("SURPRISE", "surprise"),
     ("neutral", "neutral"), ("fear", "fear"), ("disgust", "disgust"), ("contempt", "contempt"),
     ("happiness", "happiness"), ("anger", "anger"), ("sadness", "sadness")],
)
def test_canonical(name, expected):
    assert canonical(name) == expected


@pytest.mark.parametrize("name", ["unknown", "NF", "", "joy"])
def test_canonical_unknown(name):
    with pytest.raises(KeyError, match="unknown expression label"):
        canonical(name)


# ---------------------------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------------------------


def test_classification_metrics_hand_computed():
    classes = ("a", "b", "c", "d")
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    m = classification_metrics(y_true, y_pred, classes)
    # confusion (rows true, cols predicted)
    assert m["confusion"] == {"classes": ["a", "b", "c", "d"],
                              "matrix": [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]}
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    # recall a=1/2, b=2/2, c=0/1; d has no support and is left out
    assert m["per_class_recall"] == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.0})
    # precision a=1/2, b=2/3, c=0 -> F1 a=0.5, b=0.8, c=0 -> macro over present classes (a, b, c)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["uar"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert m["support"] == {"a": 2, "b": 2, "c": 1, "d": 0}
    json.dumps(m)


# Confusions worked out by hand (rows true, columns predicted): expected accuracy, UAR and per-class support.
UAR_CASES = [
    # a majority-class guesser: high accuracy, UAR 1/3
    ("majority-guesser", [[90, 0, 0], [5, 0, 0], [5, 0, 0]], 0.90, (1.0 + 0.0 + 0.0) / 3),
    # the rare classes right, the common class half wrong: lower accuracy, higher UAR
    ("rare-right", [[45, 45, 0], [0, 5, 0], [0, 0, 5]], 0.55, (0.5 + 1.0 + 1.0) / 3),
    # a class absent from y_true is left out of the mean (not counted as recall 0)
    ("absent-class", [[3, 1, 0], [0, 0, 0], [2, 0, 2]], 5 / 8, (0.75 + 0.5) / 2),
    ("perfect", [[2, 0, 0], [0, 7, 0], [0, 0, 1]], 1.0, 1.0),
]


@pytest.mark.parametrize("name,cm,acc,uar", UAR_CASES, ids=[c[0] for c in UAR_CASES])
def test_uar_from_confusion(name, cm, acc, uar):
    cm = np.array(cm)
    y_true = np.repeat(np.repeat(np.arange(3), 3), cm.ravel())
    y_pred = np.repeat(np.tile(np.arange(3), 3), cm.ravel())
    m = classification_metrics(y_true, y_pred, ("x", "y", "z"))
    assert m["confusion"]["matrix"] == cm.tolist()
    assert m["accuracy"] == pytest.approx(acc)
    assert m["uar"] == pytest.approx(uar)
    assert m["support"] == dict(zip(("x", "y", "z"), cm.sum(1).tolist()))


def test_classification_metrics_perfect_and_empty():
    y = np.array([2, 0, 1, 2])
    m = classification_metrics(y, y, ("x", "y", "z"))
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert m["per_class_recall"] == {"x": 1.0, "y": 1.0, "z": 1.0}
    assert np.array(m["confusion"]["matrix"]).trace() == 4
    empty = classification_metrics(np.array([], int), np.array([], int), ("x", "y"))
    assert empty["n"] == 0 and np.isnan(empty["accuracy"]) and np.isnan(empty["macro_f1"]) and np.isnan(empty["uar"])
    assert empty["per_class_recall"] == {}


# ---------------------------------------------------------------------------------------------------------------
# npz reader and evaluator
# ---------------------------------------------------------------------------------------------------------------

# (usage, fer2013 emotion, FER+ votes) per row; FER+ label follows from the votes (see MAJORITY_CASES).
ROWS = [
    ("Training", 3, [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]),     # happiness
    ("Training", 6, [8, 0, 0, 2, 0, 0, 0, 0, 0, 0]),     # neutral
    ("Training", 0, [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]),     # tie -> dropped under ferplus
    ("PublicTest", 5, [0, 0, 10, 0, 0, 0, 0, 0, 0, 0]),  # surprise
    ("PublicTest", 4, [0, 0, 0, 7, 0, 0, 0, 3, 0, 0]),   # sadness
    ("PublicTest", 2, [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # NF -> dropped under ferplus
    ("PublicTest", 0, [0, 0, 0, 0, 2, 0, 0, 8, 0, 0]),   # contempt (not a FER2013 class)
    ("PrivateTest", 1, [0, 0, 0, 0, 0, 9, 0, 0, 0, 1]),  # disgust
]


def _write_npz(path, rows=ROWS):
    n = len(rows)
    rng = np.random.default_rng(0)
    np.savez(
        path,
        pixels=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        emotion=np.array([r[1] for r in rows], np.int8),
        usage=np.array([r[0] for r in rows]),
        row=np.arange(n, dtype=np.int64),
        ferplus_votes=np.array([r[2] for r in rows], np.uint8),
        ferplus_name=np.array([f"fer{i:07d}.png" for i in range(n)]),
        lossless=np.ones(n, bool),
    )
    return path


@pytest.fixture
def npz(tmp_path):
    return _write_npz(tmp_path / "fer2013_dev.npz")


def _pixels(path):
    with np.load(path) as d:
        return d["pixels"]


def test_load_npz_ferplus(npz):
    fs = load_npz(npz, "PublicTest", protocol="ferplus")
    assert isinstance(fs, FaceSet) and fs.classes == CANONICAL8
    # rows 3, 4, 6 of the file (row 5 is NF, dropped)
    assert [CANONICAL8[i] for i in fs.labels] == ["surprise", "sadness", "contempt"]
    assert len(fs) == 3 and fs.pixels.shape == (3, 48, 48) and fs.pixels.dtype == np.uint8
    np.testing.assert_array_equal(fs.pixels, _pixels(npz)[[3, 4, 6]])
    assert fs.targets.shape == (3, 8) and fs.targets.dtype == np.float32
    np.testing.assert_allclose(fs.targets.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(fs.targets[1], [0, 0, 0, 0.7, 0, 0, 0, 0.3], atol=1e-6)
    assert fs.labels.dtype == np.int64


def test_load_npz_fer2013(npz):
    fs = load_npz(npz, "Training", protocol="fer2013")
    assert fs.classes == FER2013_CLASSES
    assert fs.labels.tolist() == [3, 6, 0]  # nothing dropped, original labels
    np.testing.assert_array_equal(fs.targets, np.eye(7, dtype=np.float32)[[3, 6, 0]])
    np.testing.assert_array_equal(fs.pixels, _pixels(npz)[:3])


def test_load_npz_ferplus_training(npz):
    fs = load_npz(npz, "Training", protocol="ferplus")
    assert [CANONICAL8[i] for i in fs.labels] == ["happiness", "neutral"]  # the tie is dropped
    sub = fs.subset(np.array([1]))
    assert len(sub) == 1 and sub.labels.tolist() == [0] and sub.classes == CANONICAL8


@pytest.mark.parametrize("usage,protocol,exc,needle", [
    ("Validation", "ferplus", ValueError, "Validation"),
    ("PublicTest", "bogus", ValueError, "bogus"),
])
def test_load_npz_errors(npz, usage, protocol, exc, needle):
    with pytest.raises(exc, match=needle):
        load_npz(npz, usage, protocol=protocol)


def test_load_npz_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="OPENFER_DATA"):
        load_npz(tmp_path / "nope.npz", "Training")


def test_default_npz_path(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENFER_DATA", str(tmp_path / "x.npz"))
    assert default_npz_path() == tmp_path / "x.npz"
    monkeypatch.delenv("OPENFER_DATA")
    assert default_npz_path().name == "fer2013_dev.npz"


class OracleClassifier:
    """A fake classifier that 'knows' the label of each crop from a lookup table keyed by its pixels."""

    classes = CANONICAL8

    def __init__(self, npz_path, probs_for_row):
        with np.load(npz_path) as d:
            self._rows = {d["pixels"][i].tobytes(): i for i in range(len(d["pixels"]))}
        self._probs_for_row = probs_for_row

    def predict_proba(self, faces):
        return np.stack([self._probs_for_row(self._rows[f.tobytes()]) for f in faces]).astype(np.float32)


def _one_hot(name, also=None):
    p = np.full(8, 0.01, np.float32)
    p[CANONICAL8.index(name)] = 0.6
    if also:
        p[CANONICAL8.index(also)] = 0.3
    return p / p.sum()


def test_evaluate_npz_ferplus_protocol(npz):
    # PublicTest kept rows: 3 surprise, 4 sadness, 6 contempt; predict 3 and 6 right, 4 wrong (as anger)
    preds = {3: _one_hot("surprise"), 4: _one_hot("anger"), 6: _one_hot("contempt")}
    res = evaluate_npz(OracleClassifier(npz, preds.__getitem__), npz, protocol="ferplus", split="PublicTest")
    assert res["n"] == 3 and res["protocol"] == "ferplus" and res["split"] == "PublicTest"
    assert res["data"] == str(npz)
    assert res["accuracy"] == pytest.approx(2 / 3)
    assert res["per_class_recall"] == pytest.approx({"surprise": 1.0, "sadness": 0.0, "contempt": 1.0})
    assert res["confusion"]["classes"] == list(CANONICAL8)
    json.dumps(res)


def test_evaluate_npz_fer2013_protocol_restricts_argmax(npz):
    # FER2013 labels of PublicTest rows 3..6: surprise, sadness, fear, anger. Contempt is not a FER2013 class,
    # so a model whose top class is contempt is judged by its best FER2013 class.
    preds = {3: _one_hot("contempt", also="surprise"), 4: _one_hot("sadness"), 5: _one_hot("fear"),
             6: _one_hot("contempt", also="happiness")}
    res = evaluate_npz(OracleClassifier(npz, preds.__getitem__), npz, protocol="fer2013", split="PublicTest")
    assert res["n"] == 4
    assert res["confusion"]["classes"] == list(FER2013_CLASSES)
    assert res["accuracy"] == pytest.approx(3 / 4)
    cm = np.array(res["confusion"]["matrix"])
    assert cm[FER2013_CLASSES.index("anger"), FER2013_CLASSES.index("happiness")] == 1


def test_evaluate_npz_real_classifier(npz, classifier):
    res = evaluate_npz(classifier, npz, protocol="ferplus", split="PublicTest")
    assert res["n"] == 3
    assert 0 <= res["accuracy"] <= 1
    assert np.array(res["confusion"]["matrix"]).sum() == 3


def test_evaluate_npz_errors(npz, tmp_path, monkeypatch):
    class SevenClass:
        classes = FER2013_CLASSES

        def predict_proba(self, faces):  # pragma: no cover - never reached
            raise AssertionError

    with pytest.raises(ValueError, match="contempt"):
        evaluate_npz(SevenClass(), npz, protocol="ferplus")
    with pytest.raises(ValueError, match="bogus"):
        evaluate_npz(SevenClass(), npz, protocol="bogus")
    with pytest.raises(ValueError, match="Nope"):
        evaluate_npz(SevenClass(), npz, split="Nope")
    monkeypatch.setenv("OPENFER_DATA", str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match="OPENFER_DATA"):
        evaluate_npz(SevenClass())
    with pytest.raises(FileNotFoundError, match="OPENFER_DATA"):
        evaluate_npz(SevenClass(), tmp_path / "also_missing.npz")


def test_cli_evaluate(npz, tmp_path):
    from typer.testing import CliRunner

    from openfer.cli import app

    out = tmp_path / "metrics.json"
    res = CliRunner().invoke(app, ["evaluate", "--data", str(npz), "--split", "PublicTest", "--json", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 3 and metrics["protocol"] == "ferplus" and metrics["model"] == "default"
    # the default output is a table: headline metrics, per-class recall with n, confusion rows
    for word in ("accuracy", "macro-F1", "UAR", "NLL", "ECE", "per-class recall", "confusion"):
        assert word in res.output
    assert f"{metrics['uar']:.2%}" in res.output and f"{metrics['accuracy']:.2%}" in res.output
    assert len(res.output.splitlines()) < 60
    res = CliRunner().invoke(app, ["evaluate", "--data", str(npz), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["uar"] == pytest.approx(metrics["uar"])
    res = CliRunner().invoke(app, ["evaluate", "--data", str(tmp_path / "missing.npz")])
    assert res.exit_code == 2 and "OPENFER_DATA" in res.output


def test_cli_evaluate_reads_faces_through_a_corruption(npz, tmp_path):
    from typer.testing import CliRunner

    from openfer.cli import app

    runs = {}
    for corrupt in (None, "mask"):
        res = CliRunner().invoke(app, ["evaluate", "--data", str(npz), "--json", "-"]
                                 + (["--corrupt", corrupt] if corrupt else []))
        assert res.exit_code == 0, res.output
        runs[corrupt] = json.loads(res.output)
    assert runs["mask"]["corruption"] == "mask" and runs[None]["corruption"] is None
    assert runs["mask"]["nll"] != pytest.approx(runs[None]["nll"])  # the model saw other pixels
    res = CliRunner().invoke(app, ["evaluate", "--data", str(npz), "--corrupt", "scarf"])
    assert res.exit_code == 2 and "unknown corruption 'scarf'" in res.output and "sunglasses" in res.output


@pytest.mark.parametrize("seed", [0, 1])
def test_stratified_split(seed):
    labels = np.array([0] * 10 + [1] * 20 + [2] * 3)
    tr, va = stratified_split(labels, 0.2, seed)
    assert len(np.intersect1d(tr, va)) == 0
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[va]).tolist() == [2, 4, 1]
    tr2, va2 = stratified_split(labels, 0.2, seed)
    np.testing.assert_array_equal(va, va2)


def test_ferplus_heldout_split_keeps_out_every_row_a_ferplus_run_trained_on():
    """The fer2013 rows for validating a network that started from a FER+ run: FER+'s own validation split (same
    fraction and seed, in the ferplus protocol's row order) plus a stratified share of the rows FER+ drops."""
    from openfer.datasets import ferplus_heldout_split, split_rows
    from openfer.labels import ferplus_majority

    rng = np.random.default_rng(0)
    votes = np.zeros((200, 10), np.int64)
    top = rng.integers(0, 8, 200)
    votes[np.arange(200), top] = 8
    votes[:40, 8] = 9  # "unknown" wins: FER+ drops these 40 rows
    emotion = rng.integers(0, 7, 200)
    tr, va = ferplus_heldout_split(emotion, votes, 0.1, 0)
    assert len(np.intersect1d(tr, va)) == 0 and sorted(np.concatenate([tr, va]).tolist()) == list(range(200))
    majority = ferplus_majority(votes)
    kept = np.flatnonzero(majority >= 0)
    ferplus_val = kept[stratified_split(majority[kept], 0.1, 0)[1]]  # what a ferplus run held out
    assert np.isin(ferplus_val, va).all()
    ferplus_train = np.setdiff1d(kept, ferplus_val)
    assert not np.isin(ferplus_train, va).any(), "no row a FER+ run trained on may validate"
    assert 2 <= np.isin(va, np.arange(40)).sum() <= 8  # about 10 % of the dropped rows
    with pytest.raises(UsageError, match="ferplus_heldout"):
        split_rows(emotion, "ferplus", 0.1, 0, "ferplus_heldout")


def test_calibration_metrics_hand_computed():
    from openfer.evaluate import calibration_metrics

    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([0, 1, 0, 1])
    r = calibration_metrics(probs, labels)
    # bins: 0.9 (2 samples, acc 0.5), 0.6 (1, acc 1), 0.8 (1, acc 1)
    assert r["ece"] == pytest.approx(0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.2)
    assert r["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.1, 0.6, 0.8])))
    perfect = calibration_metrics(np.eye(2)[[0, 1]], np.array([0, 1]))
    assert perfect["ece"] == pytest.approx(0) and perfect["nll"] == pytest.approx(0, abs=1e-9)


def test_retemper_scales_logits_per_row_and_keeps_the_argmax():
    from openfer.evaluate import retemper

    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])
    np.testing.assert_allclose(retemper(probs, 1.0), probs)
    hot = retemper(probs, 0.5)  # logits doubled: probabilities squared and renormalised
    np.testing.assert_allclose(hot[0], probs[0] ** 2 / (probs[0] ** 2).sum())
    rows = retemper(probs, np.array([1.0, 1e6]))  # second row so soft it is uniform
    np.testing.assert_allclose(rows[0], probs[0])
    np.testing.assert_allclose(rows[1], 1 / 3, atol=1e-5)
    assert (retemper(probs, 3.0).argmax(1) == probs.argmax(1)).all()


def test_vote_recall_weighs_each_answer_by_its_votes():
    from openfer.evaluate import vote_recall

    votes = np.array([[1.0, 0, 0], [0.6, 0.4, 0], [0.2, 0.8, 0]])
    r = vote_recall(votes, np.array([0, 1, 1]), ("a", "b", "c"))
    assert r["a"] == pytest.approx(1.0 / 1.8) and r["b"] == pytest.approx(1.0) and r["c"] is None
    onehot = np.eye(3)[[0, 0, 1]]  # one-hot targets: plain recall
    assert vote_recall(onehot, np.array([0, 1, 1]), ("a", "b", "c"))["a"] == pytest.approx(0.5)


def test_paired_bootstrap_uar_resamples_people():
    """openfer.evaluate.paired_bootstrap_uar: no difference gives a zero interval; a model right on every photo of
    the rare class beats one right on none, by the class's share of the UAR, in every resample."""
    from openfer.evaluate import paired_bootstrap_uar

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], [80, 20])
    people = rng.integers(0, 30, 100)
    same = paired_bootstrap_uar(labels, labels.copy(), labels.copy(), people, [0, 1], rounds=200)
    assert same["diff"] == same["low"] == same["high"] == 0.0 and same["p_ge"] == 0.0
    blind = np.zeros(100, np.int64)  # never says class 1
    better = paired_bootstrap_uar(labels, blind, labels.copy(), people, [0, 1], rounds=200)
    assert better["diff"] == pytest.approx(0.5) and better["low"] > 0.45 and better["p_ge"] == 1.0
    worse = paired_bootstrap_uar(labels, labels.copy(), blind, people, [0, 1], rounds=200)
    assert worse["high"] < -0.45
