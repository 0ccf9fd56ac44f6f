"""The mirror pass of an exported classifier's ``flip`` test-time augmentation, as a graph: dropped, or run in one
batch with the face.

Every exported network averages what it sees on the face and on its mirror image. The exporter writes the mirror
image as a ``Slice`` with a negative step along the width and runs the network's nodes twice, once per image; the two
passes meet in an ``Add`` of their logits or a ``Sum`` of their pooled features (a composed head). ``drop_mirror``
prunes the second pass (half the cost, a different model); ``batch_mirror`` keeps the model and stacks the face and its
mirror image into one batch, so each network runs once on 2N crops instead of twice on N (faster at batch 1).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from openfer.errors import UsageError

if TYPE_CHECKING:  # onnx is imported where a graph is built: a classifier's cached file loads without it (~1 s)
    import onnx


def _mirror_passes(g: onnx.GraphProto) -> tuple[list, list, dict[str, tuple[bool, bool]]]:
    """The mirroring ``Slice`` nodes, the nodes where the two passes meet (an ``Add`` or ``Sum`` of one tensor that
    descends from a mirror image and one that does not), and per tensor (descends from the input, descends from a
    mirror image)."""
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    constants.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    origin = {i.name: (True, False) for i in g.input}
    slices, joins = [], []
    for n in g.node:  # ONNX nodes are in topological order
        flags = [origin.get(i, (False, False)) for i in n.input if i]
        mirrored = n.op_type == "Slice" and len(n.input) > 4 and n.input[3] in constants \
            and n.input[4] in constants and set(constants[n.input[3]].tolist()) <= {3, -1} \
            and bool((constants[n.input[4]] < 0).all())  # reversed along the width of an NCHW image
        slices += [n] if mirrored else []
        out = (any(f[0] for f in flags), mirrored or any(f[1] for f in flags))
        if n.op_type in ("Add", "Sum") and len(flags) == 2 and flags[0][0] and flags[1][0] \
                and flags[0][1] != flags[1][1]:
            joins.append(n)
            out = (True, False)
        for o in n.output:
            origin[o] = out
    return slices, joins, origin


def _copy_with_passes(model: onnx.ModelProto, verb: str) -> tuple[onnx.ModelProto, list, list, dict]:
    """A copy of ``model`` and its ``_mirror_passes``; UsageError when it has none (nothing to ``verb``)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    slices, joins, origin = _mirror_passes(copy.graph)
    if not slices or not joins:
        raise UsageError(f"the model has no mirror pass (flip test-time augmentation) to {verb}")
    return copy, slices, joins, origin


def drop_mirror(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the mirror pass of its ``flip`` test-time augmentation: each network's logits on the face
    alone instead of their mean with the logits on its mirror image, at half the cost.

    Both inputs of every join become the unmirrored one (the mean of a value with itself) and the mirror branch is
    pruned. Temperatures stay as they were fitted with the mirror pass. Measured on `large`
    (benchmarks/mirrorless.py): free on validation, 2.7 points of muxspace test UAR lost, so no shipped model drops it.

    Raises:
        openfer.UsageError: the graph has no mirror pass.
    """
    from openfer.classify.features import prune

    copy, _, joins, origin = _copy_with_passes(model, "drop")
    g = copy.graph
    for n in joins:
        plain = n.input[0] if not origin[n.input[0]][1] else n.input[1]
        n.input[:] = [plain, plain]
    return prune(copy, [o.name for o in g.output])


#: Nodes that pass one tensor on unchanged in meaning: (de)quantization, casts, identities.
_PASS_THROUGH = ("Cast", "DequantizeLinear", "QuantizeLinear", "Identity")


def _behind(producers: dict, name: str) -> str:
    """The tensor ``name`` was made from through ``_PASS_THROUGH`` nodes (itself when there are none): a layer's
    weight initializer, or the output of the layer a (de)quantized tensor came from."""
    while name in producers and producers[name].op_type in _PASS_THROUGH:
        name = producers[name].input[0]
    return name


def _toposort(g: onnx.GraphProto) -> None:
    """Reorder ``g``'s nodes so each comes after the producers of its inputs (stable: keeps the order otherwise)."""
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        left = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                left.append(n)
        if len(left) == len(pending):
            raise ValueError("the graph has a cycle or an input that nothing produces")
        pending = left
    del g.node[:]
    g.node.extend(ordered)


def batch_mirror(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each network run once on the face and its mirror image stacked into one batch of 2N, instead of
    twice on N: one pass per network, about 10 % faster at batch 1 (docs/models.md). A float graph gives the same
    outputs; in an int8 graph the mirror image then meets the face pass's activation scales, which moves the
    probabilities by up to a few hundredths (``one_pass`` uses it only where nothing changes).

    The mirror image is stacked under the face (``Concat`` on the batch axis) where it is made, every node that read
    the face reads the stack, and the stack is split again where the passes met: before the classification layer when
    both passes end in one (a ``Gemm`` on the same weights, whose inputs are the features ``with_features`` reads),
    else at the join. The mirror pass is then pruned.

    Raises:
        openfer.UsageError: the graph has no mirror pass.
    """
    from onnx import helper

    from openfer.classify.features import fresh_name, prune

    copy, slices, joins, origin = _copy_with_passes(model, "batch")
    g = copy.graph
    opset = max((o.version for o in copy.opset_import if o.domain in ("", "ai.onnx")), default=13)
    producers = {o: n for n in g.node for o in n.output}
    new: list[onnx.NodeProto] = []
    for s in slices:
        face, stack = s.input[0], fresh_name(copy, f"{s.output[0]}_stack")
        for n in g.node:
            if n is not s:
                n.input[:] = [stack if i == face else i for i in n.input]
        new.append(helper.make_node("Concat", [face, s.output[0]], [stack], name=stack, axis=0))

    halves_of: dict[str, tuple[str, str]] = {}

    def split(name: str) -> tuple[str, str]:
        """The face's and the mirror image's halves of a stacked tensor (split once, however many joins use it)."""
        if name not in halves_of:
            halves_of[name] = fresh_name(copy, f"{name}_half"), fresh_name(copy, f"{name}_mirror_half")
            kw = {"num_outputs": 2} if opset >= 18 else {}
            new.append(helper.make_node("Split", [name], list(halves_of[name]), name=halves_of[name][0], axis=0,
                                        **kw))
        return halves_of[name]

    for j in joins:
        plain, mirror = (j.input[0], j.input[1]) if not origin[j.input[0]][1] else (j.input[1], j.input[0])
        pa, pb = producers.get(_behind(producers, plain)), producers.get(_behind(producers, mirror))
        if pa is not None and pb is not None and pa.op_type == pb.op_type == "Gemm" \
                and [_behind(producers, i) for i in pa.input[1:]] == [_behind(producers, i) for i in pb.input[1:]]:
            pa.input[0], pb.input[0] = split(pa.input[0])  # both layers stay: their inputs are the features
        else:
            j.input[:] = split(plain)
    g.node.extend(new)
    _toposort(g)
    return prune(copy, [o.name for o in g.output])


#: Bumped when ``batch_mirror`` changes what it writes, so cached one-pass files are rebuilt.
ONE_PASS_VERSION = 1


def one_pass(path: str | Path) -> Path:
    """The file a classifier session should run for the classifier file ``path``: a copy with its mirror passes
    batched (``batch_mirror``) when that gives the same outputs, else ``path`` itself.

    The copy is made once per file content and kept in the user cache (``openfer.zoo.registry.cached_model``; an
    empty file there records "run the original"; without a writable cache the original runs). Same outputs means
    within 1e-5 on random crops: true of float graphs (`fast`, `fer2013`: 5-12 % faster at batch 1), not of int8
    ones, whose mirror pass has activation scales of its own, so `default` and `large` keep two passes
    (docs/models.md, "One pass per network").
    """
    from openfer.zoo.registry import cached_model, sha256_file

    path = Path(path)
    key = hashlib.sha256(f"{ONE_PASS_VERSION}:{sha256_file(path)}".encode()).hexdigest()[:16]
    try:
        cached = cached_model(f"one-pass-{key}.onnx", lambda: _batched_if_same(path))
    except OSError:  # no writable cache or temp folder: the file as it is still runs
        return path
    return cached if cached.stat().st_size else path


def _batched_if_same(path: Path) -> bytes:
    """``batch_mirror`` of the file at ``path``, serialized, if its outputs on random crops equal the file's to 1e-5;
    else b"" (no mirror pass, an input of unknown size, or outputs that differ)."""
    import onnx

    from openfer.runtime import make_session

    model = onnx.load(str(path))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not all(dims[1:]):
        return b""
    try:
        batched = batch_mirror(model).SerializeToString()
    except (UsageError, ValueError):
        return b""
    x = {model.graph.input[0].name: np.random.default_rng(0).uniform(0, 255, (3, *dims[1:])).astype(np.float32)}
    want = make_session(str(path), 1).run(None, x)
    try:
        got = make_session(batched, 1).run(None, x)
    except Exception:  # noqa: BLE001 - a graph this rewrite does not handle: run the original
        return b""
    same = len(want) == len(got) and all(a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-5)
                                         for a, b in zip(want, got))
    return batched if same else b""
