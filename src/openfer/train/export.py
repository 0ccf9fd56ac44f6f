"""Export a trained checkpoint to a self-contained ONNX classifier and check it against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from openfer.train.archs import build


class _Deployable(nn.Module):
    """Raw 0..255 pixels in, calibrated probabilities out: normalisation and temperature live in the graph."""

    def __init__(self, net: nn.Module, temperature: float, tta_flip: bool = False) -> None:
        super().__init__()
        self.net = net
        self.temperature = float(temperature)
        self.tta_flip = tta_flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x / 255.0 - 0.5) / 0.5
        logits = self.net(x)
        if self.tta_flip:  # average with the mirror image: steadier, better-calibrated predictions
            logits = (logits + self.net(torch.flip(x, dims=[3]))) / 2
        return torch.softmax(logits / self.temperature, dim=1)


def load_checkpoint_model(ckpt_path: str | Path) -> tuple[nn.Module, dict]:
    """The EMA network of a ``best.pt`` checkpoint in eval mode, and the checkpoint dict."""
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    net = build(cfg["arch"], len(ck["classes"]), **cfg.get("arch_kwargs", {}))
    net.load_state_dict(ck["ema"])
    return net.eval(), ck


def export_onnx(ckpt_path: str | Path, out_path: str | Path, opset: int = 17) -> dict:
    """Write ``out_path`` (ONNX, dynamic batch, input ``faces`` float32 [N, C, S, S] of 0..255 values, output
    ``probabilities`` [N, K]) and return a parity report: max |p_onnx - p_torch| on random and flat inputs."""
    import onnx
    import onnxruntime as ort

    net, ck = load_checkpoint_model(ckpt_path)
    cfg = ck["config"]
    size, chans = cfg["input_size"], cfg.get("in_chans", 1)
    model = _Deployable(net, ck.get("temperature", 1.0), cfg.get("tta_flip", False)).eval()
    example = torch.rand(2, chans, size, size) * 255
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (example,), str(out_path), input_names=["faces"], output_names=["probabilities"],
                      dynamic_axes={"faces": {0: "N"}, "probabilities": {0: "N"}}, opset_version=opset,
                      dynamo=False)
    proto = onnx.load(str(out_path))
    meta = {"classes": json.dumps(list(ck["classes"])), "input_size": str(size), "channels": str(chans),
            "arch": cfg["arch"], "temperature": str(ck.get("temperature", 1.0)),
            "tta_flip": str(cfg.get("tta_flip", False)), "producer": "openfer"}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0, 255, (15, chans, size, size)), np.full((1, chans, size, size), 128.0)])
    x = x.astype(np.float32)
    sess = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    p_onnx = sess.run(None, {"faces": x})[0]
    with torch.no_grad():
        p_torch = model(torch.from_numpy(x)).numpy()
    return {"max_abs_diff": float(np.abs(p_onnx - p_torch).max()), "n": len(x), "bytes": out_path.stat().st_size}
