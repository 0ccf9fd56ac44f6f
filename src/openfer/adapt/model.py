"""Write an adapted classifier as one ONNX file: the source network, its probabilities moved to the target's class
shares, optionally blended with a head trained on cluster pseudo-labels of the target's faces."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper, numpy_helper

from openfer.classify.features import (BASE_FEATURES, classifier_metadata, fresh_name, metadata_of, prune,
                                       rename_output, with_features, write_metadata)
from openfer.heads.export import head_layers, head_nodes

#: Output name of an adapted classifier.
OUTPUT = "adapted_probabilities"


def full_head_layers(pipe, n_classes: int):
    """``head_layers`` of a head fitted on a subset of the classes, its last layer widened to all ``n_classes``.

    A class the head never saw gets the mean of the seen classes' weights and biases, so its logit is the mean of
    theirs: the head neither favours nor rules out an expression it knows nothing about, and the blend leaves
    that class to the source model."""
    mean, scale, layers = head_layers(pipe)
    seen = np.asarray(pipe.classes_, np.int64)
    w, b = layers[-1]
    full_w = np.tile(w.mean(0), (n_classes, 1)).astype(np.float32)
    full_b = np.full(n_classes, float(b.mean()), np.float32)
    full_w[seen], full_b[seen] = w, b
    return mean, scale, [*layers[:-1], (full_w, full_b)]


def head_probabilities(pipe, features: np.ndarray, n_classes: int) -> np.ndarray:
    """What the adapted graph's head computes: ``full_head_layers`` applied to ``features`` [N, D], softmax."""
    mean, scale, layers = full_head_layers(pipe, n_classes)
    x = (np.asarray(features, np.float64) - mean) / scale
    for i, (w, b) in enumerate(layers):
        x = x @ w.T.astype(np.float64) + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    x = np.exp(x - x.max(1, keepdims=True))
    return x / x.sum(1, keepdims=True)


def adapted_model(base: onnx.ModelProto, classes: tuple[str, ...], train_prior: np.ndarray,
                  target_prior: np.ndarray, head=None, alpha: float = 0.0,
                  metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """``base`` with its probabilities re-weighted to ``target_prior`` and, with a ``head`` (fitted on the base's
    features, ``openfer.heads.make_head``) and ``alpha`` > 0, blended with it in log space:
    ``softmax((1 - alpha) log p_prior + alpha log p_head)``."""
    k = len(classes)
    if head is not None and alpha > 0:
        model, _ = with_features(base, k, name=fresh_name(base, BASE_FEATURES))
    else:
        model = onnx.ModelProto()
        model.CopyFrom(base)
    p = fresh_name(base, "adapt_")
    source = f"{p}source_probabilities"
    model = rename_output(model, source)  # its own output feeds the adaptation; the result takes the name
    g = model.graph

    def const(name: str, value) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    w = np.asarray(target_prior, np.float64) / np.asarray(train_prior, np.float64)
    g.node.append(helper.make_node("Mul", [source, const(f"{p}w", w / w.max())], [f"{p}pw"]))
    g.node.append(helper.make_node("ReduceSum", [f"{p}pw", const_i64(g, f"{p}axes", [1])], [f"{p}sum"],
                                   keepdims=1))
    if head is None or alpha <= 0:
        g.node.append(helper.make_node("Div", [f"{p}pw", f"{p}sum"], [OUTPUT]))
    else:
        g.node.append(helper.make_node("Div", [f"{p}pw", f"{p}sum"], [f"{p}prior_p"]))
        g.node.append(helper.make_node("Max", [f"{p}prior_p", const(f"{p}eps", 1e-12)], [f"{p}pclip"]))
        g.node.append(helper.make_node("Log", [f"{p}pclip"], [f"{p}logp"]))
        nodes, inits, x = head_nodes(model.graph.output[1].name, *full_head_layers(head, k),
                                     prefix=f"{p}h_")
        g.node.extend(nodes)
        g.initializer.extend(inits)
        g.node.append(helper.make_node("LogSoftmax", [x], [f"{p}logh"], axis=1))
        g.node.append(helper.make_node("Mul", [f"{p}logp", const(f"{p}a0", 1.0 - alpha)], [f"{p}l0"]))
        g.node.append(helper.make_node("Mul", [f"{p}logh", const(f"{p}a1", alpha)], [f"{p}l1"]))
        g.node.append(helper.make_node("Add", [f"{p}l0", f"{p}l1"], [f"{p}logits"]))
        g.node.append(helper.make_node("Softmax", [f"{p}logits"], [OUTPUT], axis=1))
    model = rename_output(prune(model, [OUTPUT]))
    arch = f"adapted:{metadata_of(base).get('arch', '')}"
    write_metadata(model, {**classifier_metadata(base, classes), "arch": arch,
                           "train_prior": json.dumps([float(v) for v in target_prior]), **(metadata or {})})
    onnx.checker.check_model(model)
    return model


def const_i64(g: onnx.GraphProto, name: str, value) -> str:
    g.initializer.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
    return name
