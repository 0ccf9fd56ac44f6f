"""int8 post-training quantization of an exported classifier (`openfer quantize`, `openfer.train.quantize`)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
import skimage.data as skd
from typer.testing import CliRunner

from openfer.classify import OnnxClassifier
from openfer.cli import app
from openfer.train.quantize import quantize_classifier
from openfer.zoo.registry import get_spec, model_path


def lfw_faces(n: int) -> np.ndarray:
    """uint8 [n, 48, 48] grey faces (scikit-image's LFW crops), a stand-in for training images."""
    faces = (skd.lfw_subset()[:n] * 255).astype(np.uint8)
    return np.stack([cv2.resize(f, (48, 48), interpolation=cv2.INTER_LINEAR) for f in faces])


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    dst = tmp_path_factory.mktemp("q") / "fast_int8.onnx"
    faces = lfw_faces(100)
    report = quantize_classifier(model_path(get_spec("fast")), dst, faces[:64].astype(np.float32)[:, None],
                                 method="minmax")
    return dst, report, faces


def test_int8_model_keeps_the_float_models_answers_and_metadata(quantized):
    dst, report, faces = quantized
    spec = get_spec("fast")
    src = model_path(spec)
    assert report["calibration_images"] == 64 and report["method"] == "minmax"
    assert report["bytes"] < 0.6 * src.stat().st_size, "int8 weights should be well under the float32 file"
    meta = {p.key: p.value for p in onnx.load(str(dst)).metadata_props}
    src_meta = {p.key: p.value for p in onnx.load(str(src)).metadata_props}
    assert {k: meta[k] for k in src_meta} == src_meta, "classes, input size, tta... are carried over"
    assert json.loads(meta["quantization"])["format"] == "QDQ int8"
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    held_out = faces[64:]  # faces the calibration did not see
    p32 = OnnxClassifier(spec, threads=1).predict_proba(held_out)
    p8 = OnnxClassifier(spec, path=dst, threads=1).predict_proba(held_out)
    np.testing.assert_allclose(p8.sum(1), 1, atol=1e-5)
    assert (p32.argmax(1) == p8.argmax(1)).mean() >= 0.9
    assert np.abs(p32 - p8).max() < 0.2
    assert np.abs(p32 - p8).max() > 0, "the quantized graph must actually compute differently"


def test_quantize_rejects_bad_arguments(tmp_path):
    src = model_path(get_spec("fast"))
    with pytest.raises(ValueError, match="method"):
        quantize_classifier(src, tmp_path / "x.onnx", np.zeros((2, 1, 48, 48), np.float32), method="kmeans")
    with pytest.raises(ValueError, match="calibration"):
        quantize_classifier(src, tmp_path / "x.onnx", np.zeros((0, 1, 48, 48), np.float32))


def test_cli_quantize_reports_missing_inputs(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["quantize", str(tmp_path / "none.onnx"), str(tmp_path / "out.onnx")])
    assert r.exit_code == 2 and "file not found" in r.output
    src = model_path(get_spec("fast"))
    r = runner.invoke(app, ["quantize", str(src), str(tmp_path / "out.onnx"), "--data", str(tmp_path / "no.npz")])
    assert r.exit_code == 2 and not (tmp_path / "out.onnx").exists()
