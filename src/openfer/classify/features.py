"""Face features from an expression classifier: its pooled descriptor before the last linear layer, read from the
ONNX graph itself so every exported model (single network, flip TTA, ensemble, a fitted head) has one.

The descriptor of one network is the input of its classification ``Gemm``; test-time mirror passes of the same
network share that ``Gemm``'s weights and are averaged, and the members of an ensemble are concatenated in graph
order (``default``: 5 networks x 256 = 1,280 numbers per face). Nothing is retrained: the graph only gets an extra
output, ``features``.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.compose
from onnx import TensorProto, helper, numpy_helper

#: Name of the extra graph output that holds the features [N, D].
FEATURES = "features"
#: Name of the base network's features inside a graph that composes a head on them.
BASE_FEATURES = "base_features"


def fresh_name(model: onnx.ModelProto, name: str) -> str:
    """``name``, or ``name`` with a number added, such that no tensor, node or initializer of ``model`` starts
    with it: graphs built on graphs (a head on a composed model) never collide."""
    g = model.graph
    taken = {n.name for n in g.node} | {o for n in g.node for o in n.output} | {i.name for i in g.initializer}
    candidate, k = name, 1
    while any(t.startswith(candidate) for t in taken):
        candidate, k = f"{name}{k}", k + 1
    return candidate


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


def with_features(model: onnx.ModelProto, n_classes: int, name: str = FEATURES) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with a second output ``name`` (default ``features``) [N, D] (float32); returns it and D.

    Mirror passes of one network are averaged (their pooled features differ only by the flip), networks of an
    ensemble concatenated. Graphs that build on the features internally (a composed head) use another ``name``,
    so the result can itself be given a ``features`` output later.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    if any(name in n.output for n in g.node):
        raise ValueError(f"the graph already has a tensor named {name!r}")
    groups = feature_groups(out, n_classes)
    parts = []
    for i, (names, _) in enumerate(groups):
        if len(names) == 1:
            parts.append(names[0])
            continue
        total, scale, mean = f"{name}{i}_sum", f"{name}{i}_scale", f"{name}{i}_mean"
        g.node.append(helper.make_node("Sum", names, [total], name=total))
        g.initializer.append(numpy_helper.from_array(np.array(1.0 / len(names), np.float32), scale))
        g.node.append(helper.make_node("Mul", [total, scale], [mean], name=mean))
        parts.append(mean)
    if len(parts) == 1:
        g.node.append(helper.make_node("Identity", parts, [name], name=f"{name}_out"))
    else:
        g.node.append(helper.make_node("Concat", parts, [name], name=f"{name}_out", axis=1))
    dim = sum(d for _, d in groups)
    g.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", dim]))
    return out, dim


def prune(model: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """Keep only the nodes and initializers ``outputs`` depend on, and make them the graph's outputs."""
    g = model.graph
    needed, keep = set(outputs), []
    for node in reversed(list(g.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    inits = [i for i in g.initializer if i.name in needed]
    del g.node[:]
    g.node.extend(keep)
    del g.initializer[:]
    g.initializer.extend(inits)
    del g.output[:]
    g.output.extend(helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", f"K{i}"])
                    for i, o in enumerate(outputs))
    del g.value_info[:]
    return model


#: The output name of every openfer classifier graph.
PROBABILITIES = "probabilities"


def rename_output(model: onnx.ModelProto, name: str = PROBABILITIES) -> onnx.ModelProto:
    """The graph's single output renamed to ``name`` (call after ``prune``, once no other tensor has that name), so
    composed, fitted and adapted classifiers look like every other openfer classifier to tools that merge them."""
    g = model.graph
    old = g.output[0].name
    if any(name in n.output for n in g.node if old not in n.output):
        raise ValueError(f"the graph already has a tensor named {name!r}")
    for node in g.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]
    g.output[0].name = name
    return model


def metadata_of(model: onnx.ModelProto) -> dict[str, str]:
    """The model's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def write_metadata(model: onnx.ModelProto, values: dict) -> onnx.ModelProto:
    """``model`` with its metadata replaced by ``values`` (in their order; values as strings)."""
    del model.metadata_props[:]
    for key, value in values.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=str(value)))
    return model


def classifier_metadata(base: onnx.ModelProto, classes) -> dict[str, str]:
    """The metadata every classifier built on ``base`` starts with: producer, ``base``'s input size and channels,
    its own classes, and ``base``'s list of member networks when it has one (explanations find one map per
    network)."""
    meta = metadata_of(base)
    out = {"producer": "openfer", "input_size": meta.get("input_size", ""), "channels": meta.get("channels", ""),
           "classes": json.dumps(list(classes))}
    if "members" in meta:
        out["members"] = meta["members"]
    return out


def attach_head(base: onnx.ModelProto, head: onnx.ModelProto, n_base_classes: int) -> onnx.ModelProto:
    """One classifier from ``base``'s networks and a head-only graph whose input is their ``features`` (a
    registered model made of another model's networks and its own last layer, ``ModelSpec.base``): the base's
    own classification layers are pruned, the head's metadata (classes, prior, ...) is kept, and the base's input
    size, channels and list of member networks are added."""
    name = fresh_name(base, BASE_FEATURES)
    model, _ = with_features(base, n_base_classes, name=name)
    prefixed = onnx.compose.add_prefix(head, fresh_name(base, "head/"))
    g, h = model.graph, prefixed.graph
    g.node.append(helper.make_node("Identity", [name], [h.input[0].name], name=f"{name}_to_head"))
    g.node.extend(h.node)
    g.initializer.extend(h.initializer)
    model = rename_output(prune(model, [h.output[0].name]))
    meta = metadata_of(head)
    meta.update({k: v for k, v in classifier_metadata(base, ()).items() if k in ("input_size", "channels", "members")})
    return write_metadata(model, meta)
