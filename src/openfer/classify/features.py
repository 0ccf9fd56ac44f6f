"""Face features from an expression classifier: its pooled descriptor before the last linear layer, read from the
ONNX graph itself so every exported model (single network, flip TTA, ensemble, a fitted head) has one.

The descriptor of one network is the input of its classification ``Gemm``; test-time mirror passes of the same
network share that ``Gemm``'s weights and are averaged, and the members of an ensemble are concatenated in graph
order (``default``: 5 networks x 256 = 1,280 numbers per face). Nothing is retrained: the graph only gets an extra
output, ``features``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Name of the extra graph output that holds the features [N, D].
FEATURES = "features"


def _initializer_dims(graph: onnx.GraphProto, name: str) -> tuple[int, ...] | None:
    """Shape of the initializer behind ``name``, following Cast/DequantizeLinear/Identity nodes back to it."""
    inits = {i.name: tuple(i.dims) for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    for _ in range(4):
        if name in inits:
            return inits[name]
        node = producers.get(name)
        if node is None or node.op_type not in ("Cast", "DequantizeLinear", "Identity"):
            return None
        name = node.input[0]
    return None


def feature_groups(model: onnx.ModelProto, n_classes: int) -> list[tuple[list[str], int]]:
    """The pooled features of each network in the graph, in graph order: (tensor names of its passes, width D).

    A network's classification layer is a ``Gemm`` whose weight maps D inputs to ``n_classes`` outputs; the passes
    that share that weight (mirror test-time augmentation) belong to one network.

    Raises:
        ValueError: the graph has no such layer (not a classifier exported by openfer or a like architecture).
    """
    groups: dict[str, tuple[list[str], int]] = {}
    for node in model.graph.node:
        if node.op_type != "Gemm":
            continue
        dims = _initializer_dims(model.graph, node.input[1])
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        if dims is None or len(dims) != 2 or dims[0 if trans_b else 1] != n_classes:
            continue
        groups.setdefault(node.input[1], ([], dims[1 if trans_b else 0]))[0].append(node.input[0])
    if not groups:
        raise ValueError(f"no classification layer with {n_classes} outputs found in the graph: cannot read its "
                         "features (is it an openfer classifier?)")
    return list(groups.values())


def with_features(model: onnx.ModelProto, n_classes: int) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with a second output ``features`` [N, D] (float32); returns it and D.

    Mirror passes of one network are averaged (their pooled features differ only by the flip), networks of an
    ensemble concatenated.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    if any(o.name == FEATURES for o in g.output):
        raise ValueError(f"the graph already has an output named {FEATURES!r}")
    groups = feature_groups(out, n_classes)
    parts = []
    for i, (names, _) in enumerate(groups):
        if len(names) == 1:
            parts.append(names[0])
            continue
        total, scale, mean = f"feat{i}_sum", f"feat{i}_scale", f"feat{i}_mean"
        g.node.append(helper.make_node("Sum", names, [total], name=total))
        g.initializer.append(numpy_helper.from_array(np.array(1.0 / len(names), np.float32), scale))
        g.node.append(helper.make_node("Mul", [total, scale], [mean], name=mean))
        parts.append(mean)
    if len(parts) == 1:
        g.node.append(helper.make_node("Identity", parts, [FEATURES], name="features_out"))
    else:
        g.node.append(helper.make_node("Concat", parts, [FEATURES], name="features_out", axis=1))
    dim = sum(d for _, d in groups)
    g.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, ["N", dim]))
    return out, dim
