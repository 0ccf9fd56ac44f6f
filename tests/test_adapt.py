"""Source-free adaptation: EM prior re-estimation, cluster pseudo-labels, the adapted ONNX model, openfer adapt."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import cv2
from conftest import ASTRONAUT_FACE, astronaut, save
from typer.testing import CliRunner

import openfer
from openfer.adapt import adapt, adapted_model, blend, cluster_pseudo_labels, em_prior, reweight
from openfer.cli import app
from openfer.io.features import FeatureTable
from openfer.zoo.registry import model_path

runner = CliRunner()
MEANS = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])


def gaussian_task(prior, n, seed):
    """Points of three unit Gaussians drawn with class shares ``prior``; their exact posteriors under a source
    prior of (0.6, 0.3, 0.1) (what a calibrated source model reports)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=prior)
    x = MEANS[y] + rng.normal(size=(n, 2))
    source = np.array([0.6, 0.3, 0.1])
    lik = np.exp(-0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(-1))
    post = lik * source
    return x, y, (post / post.sum(1, keepdims=True)).astype(np.float32), source


def test_em_recovers_a_shifted_target_prior_and_improves_accuracy():
    target = np.array([0.1, 0.2, 0.7])
    _, y, post, source = gaussian_task(target, 4000, seed=0)
    est, iters = em_prior(post, source)
    assert np.abs(est - target).max() < 0.03 and 1 < iters < 200
    before = (post.argmax(1) == y).mean()
    after = (reweight(post, source, est).argmax(1) == y).mean()
    assert after > before + 0.05
    # Unshifted target: EM stays at the source prior.
    _, _, post_same, _ = gaussian_task(source, 4000, seed=1)
    assert np.abs(em_prior(post_same, source)[0] - source).max() < 0.03


def test_cluster_pseudo_labels_are_more_often_right_than_the_answers_they_come_from():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    feats = np.eye(3)[y] * 6 + rng.normal(size=(900, 3))          # three tight clusters in feature space
    feats = np.hstack([feats, rng.normal(size=(900, 13))])
    wrong = rng.random(900) < 0.35                                  # a noisy source model: 35 % wrong answers
    answer = np.where(wrong, (y + rng.integers(1, 3, 900)) % 3, y)
    probs = np.eye(3)[answer] * 0.8 + 0.2 / 3
    pl = cluster_pseudo_labels(feats, probs, n_clusters=9, keep=0.5)
    kept = pl.labels >= 0
    assert 0.45 <= pl.coverage <= 0.8 and pl.kept.sum() >= 1
    assert (pl.labels[kept] == y[kept]).mean() > 0.95 > (answer[kept] == y[kept]).mean() + 0.25


@pytest.fixture(scope="module")
def fast():
    return openfer.load_classifier("fast-v1", threads=1)  # balanced prior at tau 1: the identity below holds


def toy_target(fast, n=60):
    """Three kinds of 48 px crops of the astronaut's face (upright, upside down, shifted down), with noise: the
    fast model reads them as happiness and neutral."""
    grey = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2GRAY)
    x1, y1, x2, y2 = map(int, ASTRONAUT_FACE)
    face = cv2.resize(grey[y1:y2, x1:x2], (48, 48)).astype(float)
    kinds = [face, face[::-1], np.roll(face, 12, axis=0)]
    rng = np.random.default_rng(0)
    crops = np.clip(np.stack([kinds[i // (n // 3)] for i in range(n)]) + rng.normal(0, 10, (n, 48, 48)), 0, 255)
    crops = crops.astype(np.uint8)
    probs, feats = fast.predict_features(crops)
    return crops, probs, feats


def test_adapted_onnx_computes_what_adapt_computed(fast, tmp_path):
    crops, probs, feats = toy_target(fast)
    result = adapt(probs, feats, fast.spec.train_prior, method="both", keep=0.6)
    assert result.alpha == 0.5 and result.head is not None  # no source data: the default weight
    model = adapted_model(onnx.load(str(model_path(fast.spec))), fast.classes, fast.spec.train_prior,
                          result.target_prior, result.head, result.alpha)
    path = tmp_path / "adapted.onnx"
    path.write_bytes(model.SerializeToString())
    adapted = openfer.load_classifier(str(path), threads=1)
    np.testing.assert_allclose(adapted.predict_proba(crops), result.probabilities, atol=2e-4)
    assert adapted.spec.train_prior == pytest.approx(tuple(result.target_prior))
    # Balanced prior of the adapted model = the source model's balanced prior when only EM ran.
    em_only = adapt(probs, feats, fast.spec.train_prior, method="em")
    path.write_bytes(adapted_model(onnx.load(str(model_path(fast.spec))), fast.classes, fast.spec.train_prior,
                                   em_only.target_prior).SerializeToString())
    np.testing.assert_allclose(openfer.load_classifier(str(path), prior="balanced").predict_proba(crops),
                               openfer.load_classifier("fast-v1", prior="balanced").predict_proba(crops), atol=2e-4)


@pytest.mark.parametrize("sure", [0.005, 0.2])
def test_stop_rule_keeps_the_largest_weight_within_the_margin(fast, sure):
    from openfer.adapt import ALPHAS

    _, probs, feats = toy_target(fast)
    rng = np.random.default_rng(0)
    # Source faces the source model gets right (by ``sure`` above the rest) and a head trained on the target
    # (neutral / happiness only) reads as one of those two: the more weight it gets, the more source faces it
    # gets wrong.
    source_feats = rng.normal(size=(50, feats.shape[1])).astype(np.float32) * feats.std(0) + feats.mean(0)
    source_probs = np.eye(8, dtype=np.float32)[rng.integers(2, 8, 50)] * sure + (1 - sure) / 8
    result = adapt(probs, feats, fast.spec.train_prior, method="clusters", keep=0.6,
                   source=(source_probs, source_feats, source_probs.argmax(1)), margin=0.0)
    checks = result.source_checks
    assert [c["alpha"] for c in checks] == list(ALPHAS[:len(checks)])
    assert all(c["accuracy"] < c["source_accuracy"] for c in checks[:-1])  # every larger weight was refused
    if result.alpha == 0:
        assert len(checks) == len(ALPHAS) and checks[-1]["accuracy"] < checks[-1]["source_accuracy"]
        np.testing.assert_allclose(result.probabilities, probs, atol=1e-6)  # nothing blended, no prior step
    else:
        assert checks[-1]["alpha"] == result.alpha and checks[-1]["accuracy"] == checks[-1]["source_accuracy"]
    assert (result.alpha == 0) == (sure == 0.005)  # a barely sure source model keeps no head at all


def test_blend_endpoints():
    p, h = np.array([[0.7, 0.3]]), np.array([[0.2, 0.8]])
    np.testing.assert_allclose(blend(p, h, 0.0), p, atol=1e-6)
    np.testing.assert_allclose(blend(p, h, 1.0), h, atol=1e-6)


def test_adapt_cli_writes_model_card_and_scores_before_after(fast, tmp_path):
    crops, probs, feats = toy_target(fast)
    n = len(crops)
    paths = [str(save(tmp_path / f"t{i}.png", np.zeros((4, 4, 3), np.uint8))) for i in range(n)]
    table = FeatureTable(paths, np.zeros(n, np.int64), np.full(n, np.nan), np.zeros(n, np.int64),
                         np.tile(np.array([0, 0, 48, 48], np.float32), (n, 1)), np.ones(n, np.float32), probs, feats,
                         fast.classes, "fast-v1")
    table.save(tmp_path / "target.npz")
    truth = ["neutral", "happiness", "sadness"]
    (tmp_path / "eval.csv").write_text("path,label\n" + "".join(f"t{i}.png,{truth[i // (n // 3)]}\n"
                                                                  for i in range(n)))
    out = tmp_path / "mine.onnx"
    r = runner.invoke(app, ["adapt", "--features", str(tmp_path / "target.npz"), "--model", "fast-v1", "--out",
                            str(out), "--method", "em", "--eval", str(tmp_path / "eval.csv")])
    assert r.exit_code == 0, r.output
    card = (tmp_path / "mine.md").read_text()
    assert "estimated target share" in card and "before" in card and "after" in card
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["base_model"] == "fast-v1" and meta["method"] == "em"
    assert abs(sum(json.loads(meta["train_prior"])) - 1) < 1e-6
    r = runner.invoke(app, ["adapt", "--model", "fast", "--out", str(out)])
    assert r.exit_code == 2 and "give target photos" in r.output


def test_mixup_head_fits_mixed_targets():
    """Two classes at -1 and +1 on one feature: mixup's mixed faces carry mixed targets, so between the clusters
    the head's probability follows the mixing share (near 0.5 at 0) and it still gets every face right."""
    from openfer.adapt import fit_pseudo_head

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    x = (np.where(y == 1, 1.0, -1.0) + rng.normal(0, 0.05, 400))[:, None].astype(np.float32)
    plain, mixed = fit_pseudo_head(x, y), fit_pseudo_head(x, y, mixup=1.0)
    assert (mixed.predict(x) == y).all() and (plain.predict(x) == y).all()
    assert not np.allclose(plain.steps[-1][1].coef_, mixed.steps[-1][1].coef_)
    p_mid = mixed.predict_proba(np.array([[0.0], [0.5]], np.float32))[:, 1]
    assert abs(p_mid[0] - 0.5) < 0.1 and 0.6 < p_mid[1] < 0.9  # Beta(1, 1) mixing: target 0.75 at x = 0.5
