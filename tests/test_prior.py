"""Decision prior: the balanced re-weighting math, its wiring (classifier, Analyzer, CLI) and registry values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from openfer.classify import OnnxClassifier, load_classifier
from openfer.classify.prior import PRIORS, check_prior, rebalance
from openfer.cli import app
from openfer.evaluate import classification_metrics
from openfer.zoo.registry import FER2013_TRAIN_COUNTS, FERPLUS_TRAIN_COUNTS, MODELS, get_spec


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


def two_class_spec(pi, tau):
    return replace(get_spec("default"), name="toy", classes=("neutral", "disgust"), train_prior=tuple(pi),
                   balance_tau=tau)


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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_declares_prior_and_tau(name):
    spec = MODELS[name]
    assert len(spec.train_prior) == len(spec.classes)
    assert sum(spec.train_prior) == pytest.approx(1.0) and min(spec.train_prior) > 0
    assert 0.0 <= spec.balance_tau <= 1.5
    counts = FER2013_TRAIN_COUNTS if len(spec.classes) == 7 else FERPLUS_TRAIN_COUNTS
    assert spec.train_prior == pytest.approx(np.array(counts) / sum(counts))


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
