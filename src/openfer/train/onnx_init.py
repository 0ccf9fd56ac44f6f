"""Start training from an exported ONNX classifier: a shipped model, or one network of an ensemble file.

Checkpoints (``best.pt``) stay where they were trained; the ONNX files travel with the package. Our exports fold
each batch norm into the convolution before it, so a network is rebuilt with those folded weights and batch norms
that pass their input through plus the folded bias (running mean 0, variance 1); they are meant to stay frozen in
eval mode while training (``TrainConfig.freeze_bn``), as their statistics are gone.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from openfer.errors import UsageError

_MIRROR = re.compile(r"_\d+$")  # the mirrored pass of a flip-TTA export repeats every scope with a suffix


def onnx_values(graph) -> dict[str, np.ndarray]:
    """float32 value of every tensor that is constant in ``graph``: initializers, and those cast (float16 storage)
    or dequantized (int8 storage) from them."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Cast" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].astype(np.float32)
        elif node.op_type == "DequantizeLinear" and all(i in values for i in node.input if i):
            q, scale = values[node.input[0]].astype(np.float32), values[node.input[1]]
            zero = values[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else 0.0
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            if np.ndim(scale) == 1:  # per-channel: broadcast along ``axis``
                shape = [1] * q.ndim
                shape[axis] = -1
                scale, zero = scale.reshape(shape), np.reshape(zero, shape) if np.ndim(zero) else zero
            values[node.output[0]] = (q - zero) * scale
    return values


def module_path(node_name: str) -> str | None:
    """The module a traced node belongs to, prefixed by the tag ``openfer ensemble`` gives a merged file
    (``m0_/net/members.1/stem/stem.0/stem.0.0/Conv`` -> ``m0_.members.1.stem.0.0``); None for the mirrored pass."""
    tag, _, rest = node_name.partition("/")
    segments = rest.split("/")[:-1]
    if not segments or segments[0] != "net" or any(_MIRROR.search(s) for s in segments):
        return None
    path: list[str] = []
    for seg in segments[1:]:
        if path and seg.rsplit(".", 1)[0] == path[-1]:  # a Sequential's child: "body" then "body.0"
            path[-1] = seg
        else:
            path.append(seg)
    parts = ([tag] if tag else []) + path
    return ".".join(parts) if parts else None


def _follower(model: nn.Module, name: str) -> nn.Module | None:
    """The module right after ``name`` in its parent Sequential (the batch norm an export folded), if any."""
    parent, _, index = name.rpartition(".")
    container = model.get_submodule(parent) if parent else model
    if isinstance(container, nn.Sequential) and index.isdigit() and int(index) + 1 < len(container):
        return container[int(index) + 1]
    return None


def onnx_state(model: nn.Module, path: str | Path, member: str = "") -> dict[str, torch.Tensor]:
    """A state dict for ``model`` from the convolutions and linear layers of the network ``member`` of an ONNX
    export (``""`` for a single-network file; ``m0_.members.1`` for the second network of the first file merged
    into an ensemble). Raises ``UsageError`` when the file's layers do not fill every layer of ``model``."""
    import onnx

    graph = onnx.load(str(path)).graph
    values = onnx_values(graph)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modules = dict(model.named_modules())
    prefix = f"{member}." if member else ""
    filled: set[str] = set()
    scopes: set[str] = set()
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        full = module_path(node.name)
        if full is None:
            continue
        scopes.add(full)
        if not full.startswith(prefix):
            continue
        name = full[len(prefix):]
        layer = modules.get(name)
        weight = values.get(node.input[1])
        bias = values.get(node.input[2]) if len(node.input) > 2 else None
        if layer is None or weight is None:
            continue
        if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
            weight = weight.T
        if tuple(weight.shape) != tuple(layer.weight.shape):
            raise UsageError(f"{path}: layer {name} is {tuple(weight.shape)}, "
                             f"the network's {tuple(layer.weight.shape)}")
        state[f"{name}.weight"] = torch.from_numpy(np.array(weight, np.float32))
        filled.add(name)
        bias_t = torch.from_numpy(np.zeros(weight.shape[0], np.float32) if bias is None else bias.astype(np.float32))
        bn = _follower(model, name)
        if isinstance(bn, nn.BatchNorm2d) and getattr(layer, "bias", None) is None:
            bn_name = next(k for k, m in modules.items() if m is bn)
            state.update({f"{bn_name}.weight": torch.ones_like(bias_t), f"{bn_name}.bias": bias_t,
                          f"{bn_name}.running_mean": torch.zeros_like(bias_t),
                          f"{bn_name}.running_var": torch.full_like(bias_t, 1.0 - bn.eps)})
            filled.add(bn_name)
        elif getattr(layer, "bias", None) is not None:
            state[f"{name}.bias"] = bias_t
    wanted = {n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))}
    if missing := sorted(wanted - filled):  # name the networks the file holds: a layer's scope minus its own path
        members = {f[: -len(n)].rstrip(".") for f in scopes for n in modules if n and (f == n or f.endswith("." + n))}
        raise UsageError(f"{path}{f' member {member}' if member else ''} does not fill {len(missing)} layers of a "
                         f"{type(model).__name__} (first: {missing[0]}); networks in the file: {sorted(members)}")
    return state


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every batch norm of ``model`` in eval mode (its running statistics are used and not updated)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
