"""Merged classifiers as ONNX graphs: several classifiers averaged into one file, one member cut back out of a
merged file, and a registered model composed from other shipped files by a small recipe (no PyTorch needed); a file
without its mirror passes is ``openfer.classify.mirror.drop_mirror``.

``openfer ensemble`` (``openfer.train.combine``) fits the merge's temperature on validation data; this module only
builds graphs, so a shipped recipe can rebuild a merged model from files the package already has instead of
shipping its weights twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from openfer.classify.features import metadata_of, write_metadata
from openfer.errors import UnreadableInputError


def merge_graph(models: Sequence[onnx.ModelProto], weights: Sequence[float], temperature: float,
                priors: Sequence[Sequence[float]] = (), extra_meta: dict[str, str] | None = None) -> onnx.ModelProto:
    """One ONNX model: input ``faces`` fed to every member, output ``probabilities`` = softmax(weighted mean of the
    members' log p / T), members tagged ``m0_``, ``m1_``, ... When every member has a training prior (``priors``),
    the file declares their weighted mean, so ``--prior balanced`` and label rules work on it."""
    metas = [metadata_of(m) for m in models]
    nodes, inits, opsets = [], [], {}
    outs = []
    for i, m in enumerate(models):
        m = compose.add_prefix(m, f"m{i}_")
        nodes.append(helper.make_node("Identity", ["faces"], [f"m{i}_faces"], name=f"m{i}_in"))
        nodes.extend(m.graph.node)
        inits.extend(m.graph.initializer)
        for o in m.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
        eps, w, logp = f"m{i}_eps", f"m{i}_weight", f"m{i}_wlogp"
        inits += [numpy_helper.from_array(np.array(1e-12, np.float32), eps),
                  numpy_helper.from_array(np.array(weights[i], np.float32), w)]
        nodes += [helper.make_node("Max", [f"m{i}_probabilities", eps], [f"m{i}_pclip"]),
                  helper.make_node("Log", [f"m{i}_pclip"], [f"m{i}_logp"]),
                  helper.make_node("Mul", [f"m{i}_logp", w], [logp])]
        outs.append(logp)
    inits.append(numpy_helper.from_array(np.array(1.0 / (sum(weights) * temperature), np.float32), "ens_scale"))
    nodes += [helper.make_node("Sum", outs, ["ens_sum"]),
              helper.make_node("Mul", ["ens_sum", "ens_scale"], ["ens_logits"]),
              helper.make_node("Softmax", ["ens_logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "openfer_ensemble", [models[0].graph.input[0]], [models[0].graph.output[0]],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="openfer")
    model.ir_version = max(m.ir_version for m in models)
    meta = {k: v for k, v in metas[0].items() if k in ("classes", "input_size", "channels")}
    members = [n for m in metas for n in networks(m)]  # flattened: a merged file merges again with the right weight
    meta.update({"arch": "ensemble", "tta": "none", "producer": "openfer", "temperature": str(temperature),
                 "members": json.dumps(members), **(extra_meta or {})})
    if len(priors) == len(models) and all(len(q) == len(json.loads(meta["classes"])) for q in priors):
        mean = np.average(np.array(priors), axis=0, weights=weights)
        meta["train_prior"] = json.dumps([round(float(v), 6) for v in mean / mean.sum()])
    sources = [json.loads(m["pretrained"]) for m in metas if m.get("pretrained")]
    if sources:  # where pretrained members' weights came from (e.g. faceres's files and their SHA-256)
        meta["pretrained"] = json.dumps([x for s in sources for x in (s if isinstance(s, list) else [s])])
    model = write_metadata(model, meta)
    onnx.checker.check_model(model)
    return model


def networks(meta: dict[str, str]) -> list[str]:
    """The networks (``arch:tta``) an exported classifier averages, from its metadata: an ensemble's members, else
    the model itself. Their count is the model's weight in a merge."""
    if "members" in meta:  # an ensemble, or a head on an ensemble's features
        return json.loads(meta["members"])
    return [f"{meta.get('arch', '?')}:{meta.get('tta', 'flip' if meta.get('tta_flip') == 'True' else 'none')}"]


def half_weights(model: onnx.ModelProto, min_size: int = 1024) -> onnx.ModelProto:
    """Store float32 weight tensors of at least ``min_size`` values as float16, each followed by a Cast back to
    float32: half the file, the same float32 arithmetic (ONNX Runtime folds the casts when the session loads).

    The rounding (about 3 significant digits) changes the probabilities by ~1e-3; check accuracy on validation.
    """
    casts, kept = [], []
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= min_size:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                          name=f"{init.name}_cast"))
        else:
            kept.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def float_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Undo ``half_weights``: each float16 weight read through a Cast becomes a float32 weight again (the same
    values), so tools that look for float32 initializers (int8 quantisation) see every weight."""
    g = model.graph
    halves = {i.name: i for i in g.initializer if i.data_type == TensorProto.FLOAT16}
    casts = [n for n in g.node if n.op_type == "Cast" and n.input[0] in halves]
    for n in casts:
        g.initializer.remove(halves[n.input[0]])
        g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(halves[n.input[0]]).astype(np.float32),
                                                     n.output[0]))
        g.node.remove(n)
    return model


def member_graph(model: onnx.ModelProto, tag: str) -> onnx.ModelProto:
    """The member tagged ``tag`` (``m1_``) of a ``merge_graph`` file as a classifier graph of its own: input
    ``faces``, output its calibrated ``probabilities`` (its temperature and mirror pass are inside its part), no
    metadata."""
    from onnx.utils import Extractor

    probs = f"{tag}probabilities"
    if not any(probs in node.output for node in model.graph.node):
        tags = sorted({o[: -len("probabilities")] for n in model.graph.node for o in n.output
                       if o.endswith("probabilities") and o != "probabilities"})
        raise UnreadableInputError(f"the merged file has no member {tag!r}; its members: {', '.join(tags) or 'none'}")
    proto = onnx.ModelProto()
    proto.CopyFrom(model)
    n_classes = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value or None
    proto.graph.value_info.append(helper.make_tensor_value_info(probs, TensorProto.FLOAT, ["N", n_classes]))
    part = Extractor(proto).extract_model([model.graph.input[0].name], [probs])
    part.graph.node.append(helper.make_node("Identity", [probs], ["probabilities"], name=f"{tag}out"))
    part.graph.output.pop()
    part.graph.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_classes]))
    del part.metadata_props[:]
    return part


def compose_merged(recipe: dict, load: Callable[[str], onnx.ModelProto]) -> onnx.ModelProto:
    """The merged classifier a recipe describes (a registered model shipped as ``<name>.json``):

    ``{"members": [{"model": "default-int8-v1", "sha256": ...}, {"model": "large", "tag": "m1_", "sha256": ...}],
    "weights": [3, 1], "temperature": 1.02, "half_weights": true, "metadata": {...}}``

    Each member is a registered model's file (``load(name)``; the registry checks it is the file with that SHA-256),
    or the member ``tag`` cut out of it (``member_graph``). They are merged with ``merge_graph`` and the recipe's
    weights and temperature, and the file gets the recipe's metadata: that of the merged file it replaces."""
    parts = []
    for member in recipe["members"]:
        model = load(member["model"])
        parts.append(member_graph(model, member["tag"]) if member.get("tag") else model)
    model = merge_graph(parts, recipe["weights"], float(recipe["temperature"]))
    if recipe.get("half_weights"):
        model = half_weights(model)
    return write_metadata(model, recipe["metadata"])
