"""Every registered model: file present, hash pinned, declared geometry matches the ONNX graph, sane outputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from openfer.classify import load_classifier
from openfer.zoo.registry import MODELS, model_path, sha256_file, shipped_file


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_matches_its_declaration(name):
    spec = MODELS[name]
    assert sha256_file(shipped_file(spec)) == spec.sha256
    assert shipped_file(spec).stat().st_size < 20e6, "shipped weights must stay small"
    path = model_path(spec)  # a model with a base: composed from the base's networks and its head file
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert tuple(json.loads(meta["classes"])) == spec.classes
    assert int(meta["input_size"]) == spec.input_size and int(meta["channels"]) == spec.channels
    assert meta["arch"] == spec.arch
    if spec.arch == "ensemble":
        assert len(json.loads(meta["members"])) >= 2
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [spec.channels, spec.input_size, spec.input_size]
    assert (shipped_file(spec).parent / spec.card).is_file(), "every shipped model needs a model card"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_outputs(name):
    clf = load_classifier(name, threads=1)
    x = np.random.default_rng(0).integers(0, 256, (7, 64, 64), dtype=np.uint8)
    p = clf.predict_proba(x)
    assert p.shape == (7, len(clf.classes)) and p.dtype == np.float32
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("name", ["default-v1", "default"])
def test_tampered_model_is_refused(tmp_path, monkeypatch, name):
    """A damaged shipped file is refused, for a whole classifier and for the head of a model with a base."""
    spec = MODELS[name]
    if spec.base:
        base = MODELS[spec.base]
        (tmp_path / base.file).write_bytes(shipped_file(base).read_bytes())
    bad = tmp_path / spec.file
    bad.write_bytes(shipped_file(spec).read_bytes()[:-10] + b"0123456789")
    import openfer.zoo.registry as reg

    class FakeFiles:
        def joinpath(self, name):
            return tmp_path / name

    monkeypatch.setattr(reg.resources, "files", lambda pkg: FakeFiles())
    with pytest.raises(ValueError, match="SHA-256"):
        reg.model_path(spec)


def _data_path():
    from openfer.datasets import default_npz_path

    path = default_npz_path()
    if not path.is_file():
        pytest.skip(f"{path} not found (set OPENFER_DATA): the shipped numbers cannot be re-measured")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_publictest_numbers_reproduce(name):
    """`openfer evaluate` reproduces every PublicTest number the registry (and model card) states."""
    from openfer.evaluate import evaluate_dataset

    spec, path = MODELS[name], _data_path()
    clf = load_classifier(name)
    checked = 0
    for protocol in ("ferplus", "fer2013"):
        key = f"publictest_{protocol}_acc"
        if key in spec.metrics:
            r = evaluate_dataset(clf, path, protocol=protocol, split="PublicTest")
            assert r["accuracy"] == pytest.approx(spec.metrics[key], abs=6e-5)
            for metric in ("macro_f1", "uar"):
                if f"publictest_{protocol}_{metric}" in spec.metrics:
                    assert r[metric] == pytest.approx(spec.metrics[f"publictest_{protocol}_{metric}"], abs=6e-5)
            checked += 1
    assert checked, f"{name} states no PublicTest accuracy"
