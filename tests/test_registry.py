"""One registry shape: every table of named things (detectors, expression models, model files, explanation
methods) is an ``openfer.registry.Registry`` whose look-ups fail the same way, with a suggestion."""

from __future__ import annotations

import importlib.util

import pytest

from openfer.detect import DETECTORS, load_detector
from openfer.errors import UnknownNameError
from openfer.explain import METHODS
from openfer.geometry.model_file import FACERES, MODEL_FILES
from openfer.registry import Registry, registries
from openfer.zoo import MODELS, get_spec

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs the [train] extra (PyTorch)")


def test_registry_basics():
    r = Registry("colour")
    assert r.add("red", 1, "warm\n   and   bright") == 1

    @r.register("blue", "cold")
    def blue():
        return 2

    assert r.get("blue") is blue and r["red"] == 1
    assert r.names() == ("red", "blue") and list(r) == ["red", "blue"] and len(r) == 2
    assert r.values() == [1, blue] and r.items() == [("red", 1), ("blue", blue)]
    assert r.rows() == [("red", "warm and bright"), ("blue", "cold")]  # one line each, however written
    assert r.describe("red") == "warm and bright" and r.check("red") == "red"
    assert "red" in r and "green" not in r and ["red"] not in r  # an unhashable name is simply not there
    with pytest.raises(ValueError, match="registered already"):
        r.add("red", 3, "again")


@pytest.mark.parametrize("call", [lambda r: r.get("bleu"), lambda r: r["bleu"], lambda r: r.check("bleu"),
                                  lambda r: r.describe("bleu")])
def test_unknown_name_one_error_shape(call):
    r = Registry("colour")
    r.add("red", 1, "")
    r.add("blue", 2, "")
    with pytest.raises(UnknownNameError) as e:
        call(r)
    assert str(e.value) == "unknown colour 'bleu'; registered colours: blue, red; did you mean 'blue'?"
    assert e.value.name == "bleu" and e.value.known == ("blue", "red")
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)  # what older callers catch


def test_unknown_name_without_a_near_match_and_unhashable():
    r = Registry("model file")
    r.add("faceres", 1, "")
    assert str(r.unknown("zzz")) == "unknown model file 'zzz'; registered model files: faceres"
    with pytest.raises(UnknownNameError, match=r"unknown model file \['x'\]"):
        r.get(["x"])


# Every registry of the package: its kind, a real name and its entry check, and a typo with the name it suggests.
REGISTRIES = [
    (DETECTORS, "detector", "haar", callable, "hair", "haar"),
    (MODELS, "model", "default", lambda spec: spec.name == "default", "defualt", "default"),
    (MODEL_FILES, "model file", "faceres", lambda f: f is FACERES, "faceres.json", "faceres"),
    (METHODS, "explanation method", "gradcam++", callable, "gradcam+", "gradcam++"),
]


def test_registries_lists_all_four():
    assert registries() == {"detectors": DETECTORS, "models": MODELS, "model files": MODEL_FILES,
                            "explanation methods": METHODS}


@needs_torch
def test_architectures_registry():
    from openfer.nn.archs import ARCHS, build

    assert {"fer_resnet", "se_swin", "faceres_mobilenet"} <= set(ARCHS)
    with pytest.raises(UnknownNameError, match="unknown architecture 'fer_resnt'.*did you mean 'fer_resnet'"):
        build("fer_resnt", 8)


@pytest.mark.parametrize("registry, kind, name, check, typo, suggestion", REGISTRIES,
                         ids=[r[1] for r in REGISTRIES])
def test_every_registry(registry, kind, name, check, typo, suggestion):
    assert isinstance(registry, Registry) and registry.kind == kind
    assert name in registry and check(registry.get(name)) and check(registry[name])
    for n, description in registry.rows():  # every entry says in one line what it is
        assert description and "\n" not in description, n
    with pytest.raises(UnknownNameError) as e:
        registry.get(typo)
    assert str(e.value).startswith(f"unknown {kind} {typo!r}; registered {kind}s: ")
    assert str(e.value).endswith(f"; did you mean {suggestion!r}?") and set(e.value.known) == set(registry)


def test_public_look_ups_use_the_registries():
    assert get_spec("fast") is MODELS["fast"]
    assert type(load_detector("haar")).__name__ == "HaarDetector"
    with pytest.raises(UnknownNameError, match="registered detectors: centerface, haar; did you mean 'haar'"):
        load_detector("hair")
    with pytest.raises(UnknownNameError, match="registered models: .*did you mean 'default'"):
        get_spec("defualt")
    assert list(MODELS)[0] == "default"  # declaration order, as `openfer models` lists them
    assert set(METHODS) == {"occlusion", "rise", "gradcam", "gradcam++"}
