"""A fitted head composed with its expression network into one ONNX classifier: face crops in, the user's classes
out, usable wherever a model name is (``--model head.onnx``, ``load_classifier("head.onnx")``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from openfer.classify.features import (BASE_FEATURES, classifier_metadata, fresh_name, prune, rename_output,
                                       with_features, write_metadata)
from openfer.errors import UsageError

#: Output name of a head's softmax inside a graph (renamed ``probabilities`` in a whole classifier).
OUTPUT = "head_probabilities"


def head_layers(pipe) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """(mean [D], scale [D], layers): the standardisation and the (W [out, in], b [out]) of each layer of a
    ``make_head`` pipeline, ReLU between layers, softmax after the last. A two-class logistic output (one
    logit z) becomes two logits [0, z], whose softmax is the same probability."""
    scaler, clf = pipe.steps[0][1], pipe.steps[-1][1]
    if hasattr(clf, "coefs_"):  # MLPClassifier
        layers = [(w.T, b) for w, b in zip(clf.coefs_, clf.intercepts_)]
    else:
        layers = [(clf.coef_, clf.intercept_)]
    w, b = layers[-1]
    if w.shape[0] == 1:  # binary: sigmoid(z) == softmax([0, z])
        layers[-1] = (np.vstack([np.zeros_like(w), w]), np.concatenate([[0.0], b]))
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return scaler.mean_.astype(np.float32), scale.astype(np.float32), [
        (np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]


def head_nodes(x: str, mean: np.ndarray, scale: np.ndarray, layers, prefix: str = "head_"):
    """The graph pieces of a head on tensor ``x`` [N, D]: standardise, then each (W, b) layer with ReLU between.
    Returns (nodes, initializers, name of the last logits) for the caller to add to its graph."""
    inits = [numpy_helper.from_array(np.asarray(mean, np.float32), f"{prefix}mean"),
             numpy_helper.from_array(np.asarray(scale, np.float32), f"{prefix}scale")]
    nodes = [helper.make_node("Sub", [x, f"{prefix}mean"], [f"{prefix}centred"]),
             helper.make_node("Div", [f"{prefix}centred", f"{prefix}scale"], [f"{prefix}z"])]
    x = f"{prefix}z"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"{prefix}w{i}"),
                  numpy_helper.from_array(np.asarray(b, np.float32), f"{prefix}b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"{prefix}w{i}", f"{prefix}b{i}"], [f"{prefix}logits{i}"],
                                      transB=1))
        x = f"{prefix}logits{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [x], [f"{prefix}relu{i}"]))
            x = f"{prefix}relu{i}"
    return nodes, inits, x


def compose(base: onnx.ModelProto, base_classes: int, pipe, classes: tuple[str, ...],
            metadata: dict[str, str]) -> onnx.ModelProto:
    """``base``'s features -> standardise -> head layers -> softmax, as one graph whose only output is
    ``OUTPUT`` [N, len(classes)]; ``metadata`` (plus classes) is written into the file."""
    name = fresh_name(base, BASE_FEATURES)
    model, dim = with_features(base, base_classes, name=name)
    mean, scale, layers = head_layers(pipe)
    if mean.shape != (dim,):
        raise UsageError(f"the head was fitted on {mean.shape[0]} features, the model gives {dim}: fit it on "
                         "features of the same model")
    if layers[-1][0].shape[0] != len(classes):
        raise UsageError(f"the head has {layers[-1][0].shape[0]} outputs for {len(classes)} classes")
    nodes, inits, logits = head_nodes(name, mean, scale, layers, prefix=fresh_name(base, "head_"))
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(inits)
    out = fresh_name(base, OUTPUT)
    model.graph.node.append(helper.make_node("Softmax", [logits], [out], axis=1))
    model = rename_output(prune(model, [out]))
    write_metadata(model, {**classifier_metadata(base, classes), **metadata})
    onnx.checker.check_model(model)
    return model


def head_only(pipe, classes: tuple[str, ...], metadata: dict[str, str], input_name: str = "clip_features"
              ) -> onnx.ModelProto:
    """The head alone as an ONNX graph, features [N, D] in, probabilities [N, K] out (clip-level heads, whose
    input is ``clip_statistics`` of a clip's frame features rather than one face crop)."""
    mean, scale, layers = head_layers(pipe)
    nodes, inits, logits = head_nodes(input_name, mean, scale, layers)
    nodes.append(helper.make_node("Softmax", [logits], [OUTPUT], axis=1))
    graph = helper.make_graph(nodes, "openfer_head",
                              [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, len(mean)])],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None, len(classes)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="openfer")
    model.ir_version = 8
    write_metadata(model, {"producer": "openfer", "classes": json.dumps(list(classes)), **metadata})
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` via a temporary file and a rename (an interrupted write leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(path)
    return path
