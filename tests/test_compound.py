"""Compound expressions: the top-2 rule on hand-made probabilities, its vectorised form, and the pair names."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from openfer.classify import compound as compound_module
from openfer.classify.compound import (
    COMPOUND_NAMES, compound, compound_batch, compound_indices, compound_name,
)
from openfer.labels import CANONICAL8

C4 = ("neutral", "happiness", "surprise", "sadness")


def as_dict(values, classes=C4):
    return dict(zip(classes, values))


@pytest.mark.parametrize("values, min_second, min_ratio, expected", [
    ((0.02, 0.95, 0.02, 0.01), 0.1, 0.1, None),                              # one strong class
    ((0.05, 0.55, 0.38, 0.02), 0.1, 0.1, ("happiness", "surprise")),         # two strong, happiness first
    ((0.05, 0.38, 0.55, 0.02), 0.1, 0.1, ("surprise", "happiness")),         # order follows the probabilities
    ((0.25, 0.25, 0.25, 0.25), 0.1, 0.1, ("neutral", "happiness")),          # ties keep class order
    ((0.0, 0.4, 0.2, 0.4), 0.1, 0.1, ("happiness", "sadness")),              # tie for first: earlier class first
    ((0.5, 0.0, 0.25, 0.25), 0.1, 0.1, ("neutral", "surprise")),             # tie for second: earlier class
    ((0.5, 0.25, 0.25, 0.0), 0.25, 0.5, ("neutral", "happiness")),           # exactly at both thresholds: in
    ((0.5, 0.25, 0.25, 0.0), 0.26, 0.5, None),                               # just under min_second
    ((0.5, 0.25, 0.25, 0.0), 0.25, 0.51, None),                              # just under min_ratio
    ((0.9, 0.09, 0.01, 0.0), 0.05, 0.2, None),                               # p2 big enough, ratio too small
    ((0.6, 0.39, 0.01, 0.0), 0.4, 0.0, None),                                # ratio fine, p2 too small
])
def test_rule_on_hand_made_probabilities(values, min_second, min_ratio, expected):
    arr = compound(np.array(values), C4, min_second=min_second, min_ratio=min_ratio)
    dct = compound(as_dict(values), min_second=min_second, min_ratio=min_ratio)
    assert arr == dct == expected


def test_mapping_order_or_classes_decide_ties():
    p = {"surprise": 0.5, "happiness": 0.5}
    assert compound(p) == ("surprise", "happiness")
    assert compound(p, classes=("happiness", "surprise")) == ("happiness", "surprise")


def test_defaults_find_a_mixture_and_skip_a_confident_face():
    assert compound({"neutral": 0.04, "happiness": 0.55, "surprise": 0.38, "sadness": 0.03}) == ("happiness",
                                                                                                 "surprise")
    assert compound({"neutral": 0.005, "happiness": 0.99, "surprise": 0.005}) is None


def test_vectorised_equals_scalar_on_random_inputs():
    rng = np.random.default_rng(0)
    # Dirichlet draws from peaked to flat, so both outcomes occur; some rows with exact ties
    probs = np.concatenate([rng.dirichlet(np.full(8, alpha), 300) for alpha in (0.1, 0.5, 2.0)])
    probs[::50] = np.round(probs[::50], 1)
    for min_second, min_ratio in ((0.08, 0.1), (0.2, 0.5), (0.0, 0.0), (0.3, 0.9)):
        batch = compound_batch(probs, CANONICAL8, min_second=min_second, min_ratio=min_ratio)
        one = [compound(p, CANONICAL8, min_second=min_second, min_ratio=min_ratio) for p in probs]
        assert batch == one
        pairs, flags = compound_indices(probs, min_second=min_second, min_ratio=min_ratio)
        assert [None if not f else (CANONICAL8[a], CANONICAL8[b]) for (a, b), f in zip(pairs, flags)] == one
        if (min_second, min_ratio) == (0.08, 0.1):
            assert 0 < flags.sum() < len(probs)
    pairs, _ = compound_indices(probs)
    rows = np.arange(len(probs))
    assert (probs[rows, pairs[:, 0]] == probs.max(1)).all()
    assert (probs[rows, pairs[:, 1]] <= probs[rows, pairs[:, 0]]).all()
    assert (pairs[:, 0] != pairs[:, 1]).all()


def test_every_ordered_canonical_pair_has_its_own_name():
    pairs = [(a, b) for a in CANONICAL8 for b in CANONICAL8 if a != b]
    names = [compound_name(p) for p in pairs]
    assert len(COMPOUND_NAMES) == len(pairs) == 56
    assert all(isinstance(n, str) and n and n == n.strip() for n in names)
    assert len(set(names)) == len(names)  # the order of a pair is never lost in its name


@pytest.mark.parametrize("pair, name", [
    (("happiness", "surprise"), "happily surprised"),
    (("surprise", "happiness"), "surprisedly happy"),
    (("sadness", "anger"), "sadly angry"),
    (("fear", "surprise"), "fearfully surprised"),
    (("anger", "disgust"), "angrily disgusted"),
    (("contempt", "happiness"), "contemptuously happy"),
    (("neutral", "happiness"), "slightly happy"),
    (("happiness", "neutral"), "mildly happy"),
    (("neutral", "contempt"), "slightly contemptuous"),
])
def test_names(pair, name):
    assert compound_name(pair) == name


@pytest.mark.parametrize("pair", [("happiness", "happiness"), ("joy", "surprise"), ("neutral", "unknown")])
def test_name_of_a_pair_outside_the_table_says_why(pair):
    with pytest.raises(KeyError, match="ordered pairs of two different classes"):
        compound_name(pair)


@pytest.mark.parametrize("call, message", [
    (lambda: compound(np.array([0.5, 0.5])), "needs its class names"),
    (lambda: compound(np.array([0.5, 0.5]), C4), r"must be \[4\]"),
    (lambda: compound({"neutral": 0.5}, C4), "no value for"),
    (lambda: compound(np.array([0.5, np.nan, 0.5, 0.0]), C4), "finite and non-negative"),
    (lambda: compound(np.array([0.5, -0.1, 0.6, 0.0]), C4), "finite and non-negative"),
    (lambda: compound(np.array([0.5, 0.5, 0.0, 0.0]), C4, min_second=1.5), "min_second must lie in"),
    (lambda: compound(np.array([0.5, 0.5, 0.0, 0.0]), C4, min_ratio=-0.1), "min_ratio must lie in"),
    (lambda: compound({"neutral": 1.0}), r"K >= 2"),
    (lambda: compound_batch(np.ones((3, 4)) / 4, CANONICAL8), r"must be \[N, 8\]"),
    (lambda: compound_indices(np.ones(4) / 4), r"must be \[N, K\]"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_docstring_example_runs():
    result = doctest.testmod(compound_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
