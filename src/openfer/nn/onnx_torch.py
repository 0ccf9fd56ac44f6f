"""Run an openfer ONNX classifier as a differentiable PyTorch module, so Grad-CAM works on the shipped models.

A small interpreter for the operators our exported classifiers use (convolutions, pooling, ReLU, residual adds,
the mirror-image slice of test-time augmentation, ensemble averaging, including the log-probability averaging
and float16 weight storage of ``openfer ensemble x.onnx``, softmax); any other operator is refused with a clear
error. It returns the logits that go into the graph's final Softmax (temperature already applied) and
passes every ``GlobalAveragePool`` input through a named identity module (``tap0``, ``tap1``, ...): the last
convolutional maps of each network and each test-time view, where Grad-CAM looks. A tap fed by the mirrored view
is listed in ``mirrored`` so its map can be flipped back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openfer.errors import UsageError
from openfer.nn.lazy import import_torch


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _slice(torch, x, starts, ends, axes, steps):
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) % x.dim()
        n = x.shape[a]
        if st == -1 and s in (-1, n - 1) and e <= -n - 1:  # the whole axis, reversed: the mirror image
            x = torch.flip(x, dims=[a])
        elif st > 0:
            s, e = max(int(s) + n if s < 0 else int(s), 0), min(int(e) + n if e < 0 else int(e), n)
            x = x.narrow(a, s, max(e - s, 0))[(slice(None),) * a + (slice(None, None, int(st)),)]
        else:
            raise ValueError(f"unsupported ONNX Slice (start {s}, end {e}, step {st})")
    return x


def _per_axis(v, x, axis: int):
    """A scale or zero point shaped to broadcast over ``x`` along ``axis`` (a scalar stays a scalar)."""
    if v.dim() == 0 or v.numel() == 1:
        return v.reshape(())
    shape = [1] * x.dim()
    shape[axis % x.dim()] = -1
    return v.reshape(shape)


def _quantize(torch, x, scale, zero_point, axis: int):
    """ONNX QuantizeLinear as floats: round half to even, saturate to the zero point's integer type (which is
    what clips at 0 where the quantizer folded a ReLU away). Rounding passes gradients straight through;
    saturation stops them, as a ReLU does."""
    info = torch.iinfo(zero_point.dtype if zero_point is not None else torch.uint8)
    zp = _per_axis(zero_point.float(), x, axis) if zero_point is not None else 0.0
    v = torch.clamp(x / _per_axis(scale, x, axis) + zp, info.min, info.max)
    return v + (torch.round(v) - v).detach()


def _dequantize(q, scale, zero_point, axis: int):
    """ONNX DequantizeLinear: (q - zero point) * scale, per tensor or per ``axis``."""
    q = q.float()
    zp = _per_axis(zero_point.float(), q, axis) if zero_point is not None else 0.0
    return (q - zp) * _per_axis(scale, q, axis)


def onnx_to_torch(path: str | Path):
    """A PyTorch module (``OnnxNet``) equivalent to the ONNX classifier at ``path``.

    Raises:
        ValueError: the graph uses an operator the interpreter does not know.
    """
    torch = import_torch()
    import onnx
    import torch.nn.functional as F
    from onnx import numpy_helper
    from torch import nn

    proto = onnx.load(str(path))
    graph = proto.graph
    supported = {"Identity", "Constant", "Div", "Sub", "Add", "Mul", "Conv", "Relu", "MaxPool", "GlobalAveragePool",
                 "Flatten", "Gemm", "Slice", "Unsqueeze", "Concat", "ReduceMean", "Softmax", "Cast", "Log", "Max", "Sum", "Pad", "Clip", "ConstantOfShape", "Reshape", "Transpose", "Resize",
                 "QuantizeLinear", "DequantizeLinear"}
    unknown = sorted({n.op_type for n in graph.node} - supported)
    if unknown:
        raise UsageError(f"{path}: Grad-CAM cannot run ONNX operators {', '.join(unknown)}; export the checkpoint "
                         "and use --checkpoint, or use occlusion/rise")
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
    softmax = [n for n in graph.node if n.op_type == "Softmax" and n.output[0] == graph.output[0].name]
    if len(softmax) != 1:
        raise UsageError(f"{path}: expected one final Softmax producing the probabilities")
    logits_name = softmax[0].input[0]  # members' own Softmaxes (a merged ensemble) are computed like any operator
    # which tensors descend from the mirror-image Slice
    producer = {o: n for n in graph.node for o in n.output}
    mirrored_memo: dict[str, bool] = {}

    def is_mirrored(name: str) -> bool:
        if name not in mirrored_memo:
            n = producer.get(name)
            mirrored_memo[name] = n is not None and (n.op_type == "Slice" or any(is_mirrored(i) for i in n.input))
        return mirrored_memo[name]

    class OnnxNet(nn.Module):
        """Normalised crops [N, C, S, S] in (as ``TorchClassifier`` feeds them), calibrated logits out."""

        def __init__(self) -> None:
            super().__init__()
            self.params = nn.ParameterDict()
            self.names: dict[str, str] = {}
            for i, (k, v) in enumerate(consts.items()):
                if v.dtype in (np.float32, np.float16) and v.size > 1 and k in {x.name for x in graph.initializer}:
                    key = f"w{i}"  # float16-stored weights become float32 parameters (their Cast is then a no-op)
                    self.params[key] = nn.Parameter(torch.from_numpy(v.astype(np.float32)))
                    self.names[k] = key
            gaps = [n for n in graph.node if n.op_type == "GlobalAveragePool"]
            self.tap_of = {n.input[0]: f"tap{i}" for i, n in enumerate(gaps)}
            for t in self.tap_of.values():
                self.add_module(t, nn.Identity())
            self.mirrored = {self.tap_of[n.input[0]] for n in gaps if is_mirrored(n.input[0])}

        def value(self, env: dict, name: str):
            if name in env:
                return env[name]
            if name in self.names:
                return self.params[self.names[name]]
            return torch.from_numpy(np.array(consts[name]))

        def forward(self, x):
            env = {graph.input[0].name: (x * 0.5 + 0.5) * 255.0}  # the graph normalises raw 0..255 itself
            for n in graph.node:
                if n.op_type == "Constant":
                    continue
                ins = [self.value(env, i) if i else None for i in n.input]
                a = _attrs(n)
                op = n.op_type
                if op == "Identity":
                    y = ins[0]
                elif op in ("Div", "Sub", "Add", "Mul"):
                    y = {"Div": torch.div, "Sub": torch.sub, "Add": torch.add, "Mul": torch.mul}[op](ins[0], ins[1])
                elif op == "Conv":
                    p = a.get("pads", [0, 0, 0, 0])
                    if p[:2] != p[2:]:
                        raise ValueError("asymmetric Conv padding is not supported")
                    y = F.conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a.get("strides", 1), p[:2],
                                 a.get("dilations", 1), a.get("group", 1))
                elif op == "Relu":
                    y = F.relu(ins[0])
                elif op == "Clip":  # ReLU6 (MobileNet); min/max are inputs from opset 11, attributes before
                    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
                    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
                    y = torch.clamp(ins[0], lo, hi)
                elif op == "QuantizeLinear":  # int8 models (openfer quantize): the integer value, kept as a float
                    y = _quantize(torch, ins[0], ins[1], ins[2], a.get("axis", 1))
                elif op == "DequantizeLinear":
                    y = _dequantize(ins[0], ins[1], ins[2], a.get("axis", 1))
                elif op == "ConstantOfShape":  # with Reshape/Transpose: how the exporter spells a Pad's pads
                    fill = onnx.numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
                    y = torch.full([int(v) for v in ins[0].tolist()], fill.item(), dtype=torch.from_numpy(fill).dtype)
                elif op == "Reshape":
                    shape = [int(v) if int(v) != 0 else ins[0].shape[i] for i, v in enumerate(ins[1].tolist())]
                    y = ins[0].reshape(shape)
                elif op == "Transpose":
                    y = ins[0].permute(*a.get("perm", list(reversed(range(ins[0].dim())))))
                elif op == "Resize":  # faces taken at another size than the network's (openfer export --input-size)
                    mode = a.get("mode", b"nearest")
                    how = a.get("coordinate_transformation_mode", b"half_pixel")
                    if mode != b"linear" or how not in (b"half_pixel", b"pytorch_half_pixel"):
                        raise ValueError(f"unsupported ONNX Resize ({mode!r}, {how!r})")
                    if len(ins) > 3 and ins[3] is not None and ins[3].numel():
                        size = [int(v) for v in ins[3].tolist()[2:]]
                    else:
                        size = [int(d * float(s)) for d, s in zip(ins[0].shape[2:], ins[2].tolist()[2:])]
                    y = F.interpolate(ins[0], size=size, mode="bilinear", align_corners=False)
                elif op == "Pad":  # TensorFlow-style SAME padding of the faceres network: constant zeros
                    if a.get("mode", b"constant") not in (b"constant", "constant"):
                        raise ValueError(f"unsupported ONNX Pad mode {a['mode']!r}")
                    p = [int(v) for v in ins[1].tolist()]
                    half = len(p) // 2
                    torch_pads = [v for d in reversed(range(half)) for v in (p[d], p[d + half])]
                    fill = float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
                    y = F.pad(ins[0], torch_pads, value=fill)
                elif op == "MaxPool":
                    p = a.get("pads", [0, 0, 0, 0])
                    y = F.max_pool2d(ins[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]), p[:2],
                                     a.get("dilations", 1), bool(a.get("ceil_mode", 0)))
                elif op == "GlobalAveragePool":
                    y = getattr(self, self.tap_of[n.input[0]])(ins[0]).mean((2, 3), keepdim=True)
                elif op == "Flatten":
                    y = torch.flatten(ins[0], a.get("axis", 1))
                elif op == "Gemm":
                    w = ins[1].T if a.get("transB", 0) else ins[1]
                    xa = ins[0].T if a.get("transA", 0) else ins[0]
                    y = a.get("alpha", 1.0) * xa @ w + (a.get("beta", 1.0) * ins[2] if len(ins) > 2 else 0)
                elif op == "Slice":
                    steps = ins[4].tolist() if len(ins) > 4 else [1] * len(ins[1])
                    axes = ins[3].tolist() if len(ins) > 3 else list(range(len(ins[1])))
                    y = _slice(torch, ins[0], ins[1].tolist(), ins[2].tolist(), axes, steps)
                elif op == "Unsqueeze":
                    y = ins[0]
                    for ax in sorted(int(v) for v in ins[1].tolist()):
                        y = y.unsqueeze(ax)
                elif op == "Concat":
                    y = torch.cat(ins, a["axis"])
                elif op == "ReduceMean":
                    axes = a.get("axes") or (ins[1].tolist() if len(ins) > 1 else None)
                    y = ins[0].mean(tuple(axes), keepdim=bool(a.get("keepdims", 1)))
                elif op == "Cast":
                    if a["to"] == onnx.TensorProto.INT64:  # pads computed in the graph (faceres's Pad)
                        y = ins[0].long()
                    elif a["to"] == onnx.TensorProto.FLOAT:
                        y = ins[0].float()
                    else:
                        raise ValueError(f"unsupported ONNX Cast to type {a['to']}")
                elif op == "Log":
                    y = torch.log(ins[0])
                elif op in ("Max", "Sum"):
                    y = ins[0]
                    for other in ins[1:]:
                        y = torch.maximum(y, other) if op == "Max" else y + other
                elif op == "Softmax":
                    if n.output[0] == graph.output[0].name:
                        continue
                    y = torch.softmax(ins[0], a.get("axis", -1))
                env[n.output[0]] = y
            return env[logits_name]

    return OnnxNet().eval()
