"""Decision prior: the balanced re-weighting math, its wiring (classifier, Analyzer, CLI) and registry values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from openfer.classify import OnnxClassifier, load_classifier
from openfer.classify.prior import ARGMAX, PRIORS, Decision, check_prior, decision_of, model_decision, rebalance
from openfer.cli import app
from openfer.evaluate import classification_metrics
from openfer.train.combine import metadata
from openfer.zoo.registry import (FER2013_TRAIN_COUNTS, FERPLUS_TRAIN_COUNTS, MODELS, declared_prior, get_spec,
                                  model_path)


class TableSession:
    """Stands in for an InferenceSession: returns the given probability rows, one per input crop, in order."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, np.float32)
        self.done = 0

    def get_inputs(self):
        class _Input:
            name = "x"

        return [_Input()]

    def run(self, output_names, feeds):
        n = len(feeds["x"])
        out = self.probs[self.done : self.done + n]
        self.done += n
        return [out]


def two_class_spec(pi, tau, decision_tau=0.0):
    return replace(get_spec("default"), name="toy", classes=("neutral", "disgust"), train_prior=tuple(pi),
                   balance_tau=tau, decision_tau=decision_tau)


def test_rebalance_math():
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]], np.float32)
    pi = (0.6, 0.3, 0.1)
    np.testing.assert_allclose(rebalance(p, pi, 0.0), p, rtol=1e-6)  # tau 0: identity
    expected = p / np.array(pi)
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(rebalance(p, pi, 1.0), expected, rtol=1e-5)  # tau 1: p / pi, renormalised
    # worked by hand for row 0: 0.7/0.6, 0.2/0.3, 0.1/0.1 = 1.1667, 0.6667, 1.0 -> / 2.8333
    np.testing.assert_allclose(rebalance(p, pi, 1.0)[0], [0.41176, 0.23529, 0.35294], atol=1e-4)
    half = rebalance(p, pi, 0.5)
    np.testing.assert_allclose(half.sum(1), 1, atol=1e-6)
    assert half[0, 2] > p[0, 2] and half[0, 0] < p[0, 0]  # the rarest class gains, the commonest loses
    np.testing.assert_allclose(rebalance(p, np.array(pi) * 7, 1.0), expected, rtol=1e-5)  # counts work as well


@pytest.mark.parametrize("pi,match", [((0.5, 0.5), "3 positive"), ((0.5, 0.0, 0.5), "positive")])
def test_rebalance_rejects_bad_prior(pi, match):
    with pytest.raises(ValueError, match=match):
        rebalance(np.full((1, 3), 1 / 3), pi, 1.0)


@pytest.mark.parametrize("prior,ok", [("training", True), ("balanced", True), ("uniform", False), ("", False)])
def test_check_prior(prior, ok):
    if ok:
        assert check_prior(prior) == prior
    else:
        with pytest.raises(ValueError, match="training, balanced"):
            check_prior(prior)


def test_classifier_balanced_is_p_over_pi_renormalised():
    pi, p = (0.8, 0.2), [[0.6, 0.4], [0.9, 0.1], [0.3, 0.7]]
    spec = two_class_spec(pi, 1.0)
    train = OnnxClassifier(spec, session=TableSession(p)).predict_proba(np.zeros((3, 48, 48), np.uint8))
    bal_clf = OnnxClassifier(spec, session=TableSession(p), prior="balanced")
    bal = bal_clf.predict_proba(np.zeros((3, 48, 48), np.uint8))
    np.testing.assert_allclose(train, p, rtol=1e-6)
    expected = np.array(p) / np.array(pi)
    np.testing.assert_allclose(bal, expected / expected.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(bal.sum(1), 1, atol=1e-6)
    assert bal[0].argmax() == 1 and train[0].argmax() == 0  # 0.6/0.8 < 0.4/0.2: the decision flips
    np.testing.assert_allclose(bal_clf.apply_prior(train), bal, rtol=1e-6)
    np.testing.assert_allclose(bal_clf.apply_prior(train, "training"), train)


def test_balanced_raises_rare_class_recall_on_synthetic_data():
    """Faces drawn 90/10 from two overlapping classes, scored with their exact (calibrated) posteriors: the
    training prior rarely picks the rare class; the balanced prior finds it far more often."""
    rng = np.random.default_rng(0)
    pi = np.array([0.9, 0.1])
    y = (rng.random(20_000) < pi[1]).astype(np.int64)
    x = rng.normal(np.where(y == 1, 1.0, -1.0), 1.0)
    lik = np.stack([np.exp(-0.5 * (x + 1) ** 2), np.exp(-0.5 * (x - 1) ** 2)], 1)
    posterior = lik * pi / (lik * pi).sum(1, keepdims=True)
    spec = two_class_spec(pi, 1.0)
    scores = {}
    for prior in PRIORS:
        clf = OnnxClassifier(spec, session=TableSession(posterior), prior=prior, batch_size=4096)
        m = classification_metrics(y, clf.predict_proba(np.zeros((len(y), 2, 2), np.uint8)).argmax(1), spec.classes)
        scores[prior] = m
    assert scores["balanced"]["per_class_recall"]["disgust"] > scores["training"]["per_class_recall"]["disgust"] + 0.3
    assert scores["balanced"]["uar"] > scores["training"]["uar"]
    assert scores["balanced"]["accuracy"] < scores["training"]["accuracy"]  # the price, on data this unbalanced


def test_classifier_without_declared_prior_cannot_balance():
    spec = replace(get_spec("default"), train_prior=())
    with pytest.raises(ValueError, match="no training class prior"):
        OnnxClassifier(spec, session=TableSession(np.ones((1, 8)) / 8), prior="balanced")
    with pytest.raises(ValueError, match="unknown prior"):
        OnnxClassifier(get_spec("default"), session=TableSession(np.ones((1, 8)) / 8), prior="flat")


def test_decision_flips_close_calls_only():
    """The label is the argmax of p / pi ** tau; the probabilities are untouched."""
    pi = (0.9, 0.1)
    rule = Decision(pi, 0.25)  # weights 0.9 ** -0.25 = 1.027 and 0.1 ** -0.25 = 1.778
    p = np.array([[0.6, 0.4], [0.7, 0.3], [0.5, 0.5], [0.2, 0.8]])
    # 0.6*1.027=0.616 < 0.4*1.778=0.711 (flips); 0.7*1.027=0.719 > 0.3*1.778=0.533 (stays)
    assert rule.index(p).tolist() == [1, 0, 1, 1]
    assert int(rule.index(p[1])) == 0  # one face
    assert ARGMAX.index(p).tolist() == [0, 0, 0, 1]
    assert Decision((), 0.25).index(p).tolist() == ARGMAX.index(p).tolist()  # no prior: plain argmax
    assert Decision(pi, 0.0).weigh(p) is not None and np.array_equal(Decision(pi, 0.0).index(p), p.argmax(1))


def test_classifier_labels_use_the_decision_but_report_calibrated_probabilities():
    pi, p = (0.8, 0.2), [[0.6, 0.4], [0.9, 0.1]]
    spec = two_class_spec(pi, 1.0, decision_tau=0.5)  # weights 1.118 and 2.236: 0.671 < 0.894 flips row 0
    clf = OnnxClassifier(spec, session=TableSession(p * 2))
    x = np.zeros((2, 48, 48), np.uint8)
    np.testing.assert_allclose(clf.predict_proba(x), p, rtol=1e-6)  # calibrated, unchanged
    assert clf.predict(x) == ["disgust", "neutral"]
    assert decision_of(clf) == Decision(pi, 0.5) and model_decision(spec) == Decision(pi, 0.5)
    bal = OnnxClassifier(spec, session=TableSession(p), prior="balanced")
    assert bal.decision == ARGMAX  # the balanced probabilities are already re-weighted
    assert model_decision(replace(spec, train_prior=())) == ARGMAX
    assert decision_of(object()) == ARGMAX  # a classifier of the user's without a decision rule


def test_analyzer_smoother_and_evaluation_follow_the_decision():
    """One rule everywhere a label is made: Analyzer faces, smoothed video faces, `openfer evaluate`."""
    import openfer
    from openfer.datasets import FaceSet
    from openfer.evaluate import evaluate_set
    from openfer.track import EmaSmoother
    from openfer.types import Face

    pi, p = (0.8, 0.2), np.array([[0.6, 0.4]] * 3)
    spec = two_class_spec(pi, 1.0, decision_tau=0.5)
    clf = OnnxClassifier(spec, session=TableSession(np.concatenate([p, p])))
    a = openfer.Analyzer(classifier=clf)
    faces = a._with_probs([Face(box=(0, 0, 10, 10), score=1.0)], [(p[0], None, None)])
    assert faces[0].expression == "disgust" and faces[0].probabilities["neutral"] == pytest.approx(0.6)
    smoother = EmaSmoother(alpha=0.5, decision=decision_of(clf))
    f = Face(box=(0, 0, 10, 10), score=1.0, track_id=3, expression="disgust",
             probabilities={"neutral": 0.6, "disgust": 0.4})
    assert smoother.smooth([f])[0].expression == "disgust"
    assert EmaSmoother(alpha=0.5).smooth([f])[0].expression == "neutral"  # plain argmax without the rule
    data = FaceSet(pixels=np.zeros((3, 48, 48), np.uint8), labels=np.array([1, 1, 0]), targets=np.eye(2)[[1, 1, 0]],
                   classes=spec.classes)
    m = evaluate_set(clf, data)
    assert m["per_class_recall"] == {"neutral": 0.0, "disgust": 1.0}  # labels by the rule
    assert m["nll"] == pytest.approx(-(2 * np.log(0.4) + np.log(0.6)) / 3, rel=1e-5)  # NLL of the probabilities


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_declares_prior_and_tau(name):
    spec = MODELS[name]
    assert len(spec.train_prior) == len(spec.classes)
    assert sum(spec.train_prior) == pytest.approx(1.0) and min(spec.train_prior) > 0
    assert 0.0 <= spec.balance_tau <= 1.5
    assert 0.0 <= spec.decision_tau <= spec.balance_tau  # a milder adjustment than the balanced prior
    declared = declared_prior(metadata(model_path(spec)))  # a recipe's or a head's composed file
    counts = FER2013_TRAIN_COUNTS if len(spec.classes) == 7 else FERPLUS_TRAIN_COUNTS
    shares = np.array(counts) / sum(counts)
    photos_or_votes = ("default", "default-int8", "default-soft", "default-v3", "large", "large-v2", "fer2013")
    if spec.name in photos_or_votes:
        assert spec.train_prior == pytest.approx(declared, abs=1e-6) and declared != pytest.approx(shares, abs=1e-4)
    else:  # the hard-label shares of FER2013 Training (a head file declares its training part's: the same to 1e-4)
        assert spec.train_prior == pytest.approx(shares)
        assert not declared or declared == pytest.approx(spec.train_prior, abs=1e-4)


def test_registry_prior_counts_match_the_data():
    from openfer.datasets import default_npz_path, load_dataset

    path = default_npz_path()
    if not path.is_file():
        pytest.skip(f"{path} not found (set OPENFER_DATA): the training counts cannot be re-counted")
    for protocol, counts in (("ferplus", FERPLUS_TRAIN_COUNTS), ("fer2013", FER2013_TRAIN_COUNTS)):
        labels = load_dataset(path, "Training", protocol).labels
        assert np.bincount(labels, minlength=len(counts)).tolist() == list(counts)


def test_shipped_model_balanced(astronaut_crop):
    train = load_classifier("fast", threads=1)
    bal = load_classifier("fast", threads=1, prior="balanced")
    assert bal.prior == "balanced" and train.prior == "training"
    pt, pb = train.predict_proba(astronaut_crop), bal.predict_proba(astronaut_crop)
    np.testing.assert_allclose(pb.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(pb, rebalance(pt, bal.spec.train_prior, bal.spec.balance_tau), atol=1e-6)


def test_analyzer_prior():
    import openfer

    a = openfer.Analyzer(classifier="fast", prior="balanced")
    assert a.classifier.prior == "balanced"
    with pytest.raises(ValueError, match="prior"):
        openfer.Analyzer(classifier=load_classifier("fast"), prior="balanced")
    with pytest.raises(ValueError, match="unknown prior"):
        openfer.Analyzer(classifier="fast", prior="nope")


@pytest.mark.parametrize("command", [["evaluate", "--prior", "uniform"], ["analyze", "--prior", "uniform", "x.png"]])
def test_cli_rejects_bad_prior(command):
    res = CliRunner().invoke(app, command)
    assert res.exit_code == 2
    assert "uniform" in res.output and "training" in res.output and "balanced" in res.output


def test_service_config_prior():
    from openfer.service.config import ServiceConfig

    assert ServiceConfig().prior == "training"
    assert ServiceConfig.from_env({"OPENFER_PRIOR": "balanced"}).prior == "balanced"
    with pytest.raises(ValueError, match="unknown prior"):
        ServiceConfig(prior="uniform")


@pytest.fixture(scope="module")
def astronaut_crop():
    from conftest import ASTRONAUT_FACE, astronaut
    import cv2

    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE)
    grey = cv2.cvtColor(astronaut()[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (48, 48))[None]
