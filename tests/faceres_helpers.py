"""Generated faceres-format files (a tfjs graph model with MobileNet-v1 weights under faceres's names) and an
independent NumPy recomputation of the frozen graph: shared by the PyTorch converter's and the ONNX builder's tests,
so neither needs the real weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from openfer.zoo.faceres import BLOCKS


def write_tfjs(folder: Path, weights: dict[str, np.ndarray], quant: dict[str, str] | None = None,
               strides: list[int] | None = None, shards: int = 1) -> Path:
    """Write ``weights`` as a tfjs graph model (``model.json`` + binary shards) the way tfjs-converter does:
    float16 (or affine uint8) quantised float32 weights, int32 raw, and depthwise nodes that carry strides."""
    quant = quant or {}
    entries, blobs = [], []
    for name, w in weights.items():
        entry = {"name": name, "shape": list(w.shape), "dtype": "int32" if w.dtype == np.int32 else "float32"}
        q = quant.get(name, "float16" if w.dtype != np.int32 else None)
        if q == "float16":
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(w.astype(np.float16).tobytes())
        elif q == "uint8":
            lo, hi = float(w.min()), float(w.max())
            scale = (hi - lo) / 255 or 1.0
            entry["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale, "original_dtype": "float32"}
            blobs.append(np.round((w - lo) / scale).astype(np.uint8).tobytes())
        else:
            blobs.append(w.tobytes())
        entries.append(entry)
    data = b"".join(blobs)
    cut = [round(i * len(data) / shards) for i in range(shards + 1)]
    paths = []
    for i in range(shards):
        paths.append(f"group1-shard{i + 1}of{shards}.bin")
        (folder / paths[-1]).write_bytes(data[cut[i] : cut[i + 1]])
    nodes = [{"name": f"conv_dw_{i + 1}/depthwise", "op": "DepthwiseConv2dNative",
              "attr": {"strides": {"list": {"i": ["1", str(s), str(s), "1"]}}}} for i, s in enumerate(strides or [])]
    path = folder / "faceres.json"
    path.write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": nodes},
                                "weightsManifest": [{"paths": paths, "weights": entries}]}))
    return path


def random_faceres(seed: int = 0) -> dict[str, np.ndarray]:
    """MobileNet-v1 weights under faceres's names and TensorFlow layouts (folded batch norms), random values
    scaled so activations neither vanish nor saturate through 27 layers."""
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}

    def add(name, *shape, scale=1.0):
        w[name] = (rng.standard_normal(shape) * scale).astype(np.float32)

    add("conv1/convolution/merged_input", 3, 3, 3, 32, scale=1 / 255 / 3)
    add("conv1_bn/batchnorm_1/sub", 32, scale=0.1)
    w["conv1_relu/Cast"] = np.float32(6.0).reshape(())
    cin = 32
    for i, (cout, _) in enumerate(BLOCKS, start=1):
        add(f"conv_dw_{i}/depthwise_kernel", 3, 3, cin, 1, scale=1 / 3)
        add(f"conv_dw_{i}_bn/batchnorm_1/mul", cin, scale=0.3)
        w[f"conv_dw_{i}_bn/batchnorm_1/mul"] = np.abs(w[f"conv_dw_{i}_bn/batchnorm_1/mul"]) + 0.5
        add(f"conv_dw_{i}_bn/batchnorm_1/sub", cin, scale=0.1)
        w[f"conv_dw_{i}_relu/Cast"] = np.float32(6.0).reshape(())
        add(f"conv_pw_{i}/convolution/merged_input", 1, 1, cin, cout, scale=1.5 / np.sqrt(cin))
        add(f"conv_pw_{i}_bn/batchnorm_1/sub", cout, scale=0.1)
        w[f"conv_pw_{i}_relu/Cast"] = np.float32(6.0).reshape(())
        cin = cout
    # round-trip through float16 now, so the reference below sees exactly the stored values
    return {k: v.astype(np.float16).astype(np.float32) for k, v in w.items()}


def tf_same(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """TensorFlow's SAME zero padding of an NHWC array for a k x k window with stride s."""
    pads = []
    for size in x.shape[1:3]:
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def reference_embedding(w: dict[str, np.ndarray], rgb: np.ndarray) -> np.ndarray:
    """The frozen tfjs graph recomputed in NumPy with TensorFlow's semantics (NHWC, HWIO kernels, SAME padding,
    conv -> +sub -> ReLU6; depthwise -> *mul -> +sub -> ReLU6), on 0..255 RGB [N, H, W, 3]: the last feature map
    [N, H/32, W/32, 1024] before global pooling."""
    def depthwise(x, kern, s):
        xp = tf_same(x, 3, s)
        oh, ow = -(-x.shape[1] // s), -(-x.shape[2] // s)
        return sum(xp[:, dy : dy + s * oh : s, dx : dx + s * ow : s, :] * kern[dy, dx, :, 0]
                   for dy in range(3) for dx in range(3))

    def full(x, kern, s):
        k = kern.shape[0]
        xp = tf_same(x, k, s)
        oh, ow = -(-x.shape[1] // s), -(-x.shape[2] // s)
        return sum(xp[:, dy : dy + s * oh : s, dx : dx + s * ow : s, :] @ kern[dy, dx]
                   for dy in range(k) for dx in range(k))

    relu6 = lambda v: np.clip(v, 0, 6)  # noqa: E731
    x = relu6(full(rgb.astype(np.float64), w["conv1/convolution/merged_input"], 2) + w["conv1_bn/batchnorm_1/sub"])
    for i, (_, s) in enumerate(BLOCKS, start=1):
        x = depthwise(x, w[f"conv_dw_{i}/depthwise_kernel"], s)
        x = relu6(x * w[f"conv_dw_{i}_bn/batchnorm_1/mul"] + w[f"conv_dw_{i}_bn/batchnorm_1/sub"])
        x = relu6(full(x, w[f"conv_pw_{i}/convolution/merged_input"], 1) + w[f"conv_pw_{i}_bn/batchnorm_1/sub"])
    return x
