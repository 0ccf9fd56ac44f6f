"""Export a trained checkpoint to a self-contained ONNX classifier and check it against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from openfer.nn.checkpoint import load_checkpoint
from openfer.nn.tta import tta_logits


class _Deployable(nn.Module):
    """Raw 0..255 pixels in, calibrated probabilities out: normalisation, test-time augmentation (mirror image or
    ten crops, chosen on validation) and temperature live in the graph."""

    def __init__(self, net: nn.Module, temperature: float, tta: str = "none", net_size: int = 0) -> None:
        super().__init__()
        self.net = net
        self.temperature = float(temperature)
        self.tta = tta
        self.net_size = net_size  # > 0: faces arrive at another size and are resized to this one in the graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x / 255.0 - 0.5) / 0.5
        if self.net_size and x.shape[-1] != self.net_size:
            scale = self.net_size / int(x.shape[-1])  # a constant scale (a fixed size would trace Shape ops)
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            if int(x.shape[-1]) != self.net_size:
                raise ValueError(f"cannot resize {int(x.shape[-1] / scale)} px faces to {self.net_size} px exactly")
        return torch.softmax(tta_logits(self.net, x, self.tta) / self.temperature, dim=1)


def export_onnx(ckpt_path: str | Path, out_path: str | Path, opset: int = 17, input_size: int | None = None,
                half: bool = False) -> dict:
    """Write ``out_path`` (ONNX, dynamic batch, input ``faces`` float32 [N, C, S, S] of 0..255 values, output
    ``probabilities`` [N, K]) and return a parity report: max |p_onnx - p_torch| on random and flat inputs.

    ``input_size`` (default: the training size) lets the file take faces of another size and resize them to the
    network's inside the graph: e.g. 48 px crops, upsampled to 96 px exactly as training upsampled FER2013's
    48 px faces, so photos reach the network with the sharpness it learnt on. ``half`` stores the weights as
    float16 (``openfer.classify.merge.half_weights``); the parity check is made before, on float32 weights.
    """
    import onnx
    import onnxruntime as ort

    ck = load_checkpoint(ckpt_path)
    cfg = ck.config
    net_size, chans = ck.input_size, ck.in_chans
    size = input_size or net_size
    tta = ck.tta
    model = _Deployable(ck.build_model(), ck.calibrated_temperature, tta, net_size if size != net_size else 0).eval()
    example = torch.rand(2, chans, size, size) * 255
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (example,), str(out_path), input_names=["faces"], output_names=["probabilities"],
                      dynamic_axes={"faces": {0: "N"}, "probabilities": {0: "N"}}, opset_version=opset,
                      dynamo=False)
    proto = onnx.load(str(out_path))
    meta = {"classes": json.dumps(list(ck.classes)), "input_size": str(size), "channels": str(chans),
            "arch": ck.arch, "temperature": str(ck.calibrated_temperature),
            "tta": tta, "producer": "openfer", "network_input_size": str(net_size)}
    if "protocol" in cfg and "val_fraction" in cfg:
        # the validation split it was chosen on, so ensembles of exported files can check their members agree
        meta.update({"protocol": cfg["protocol"], "split_seed": str(cfg.get("split_seed", 0)),
                     "val_fraction": str(cfg["val_fraction"])})
        if cfg.get("val_rows"):
            meta["val_rows"] = cfg["val_rows"]
    if ck.class_prior is not None:  # what --prior balanced divides out
        meta["class_prior"] = json.dumps([round(float(v), 6) for v in ck.class_prior])
    if ck.pretrained:
        meta["pretrained"] = json.dumps(ck.pretrained)
    if ck.kind == "ensemble":
        meta["members"] = json.dumps([f"{m.arch}:{m.tta}" for m in ck.members])
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
    report = {"max_abs_diff": float(np.abs(p_onnx - p_torch).max()), "n": len(x)}
    if half:  # float16 storage, float32 arithmetic: half the file; how far its answers move is reported
        from openfer.classify.merge import half_weights

        onnx.save(half_weights(onnx.load(str(out_path))), str(out_path))
        p_half = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"]).run(None, {"faces": x})[0]
        report["half_max_abs_diff"] = float(np.abs(p_half - p_onnx).max())
    return {**report, "bytes": out_path.stat().st_size}
