"""Ensembles: several trained networks averaged into one model, calibrated on their shared validation split.

An ensemble is stored as one checkpoint (``kind = "ensemble"``) holding every member's weights, config and
temperature, so ``openfer export`` turns it into a single ONNX file like any other run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from openfer.datasets import FaceSet
from openfer.errors import UsageError
from openfer.train.archs import build
from openfer.train.tta import tta_logits


class EnsembleNet(nn.Module):
    """Mean of the members' calibrated logits (each member with its own test-time augmentation)."""

    def __init__(self, members: list[nn.Module], temperatures: list[float], tta: list[str]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.temperatures = [float(t) for t in temperatures]
        self.tta = list(tta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [tta_logits(m, x, mode) / t for m, t, mode in zip(self.members, self.temperatures, self.tta)]
        return torch.stack(out).mean(0)


def member_tta(cfg: dict) -> str:
    """A run's test-time augmentation: ``tta`` when set, else ``flip``/``none`` from the older ``tta_flip``."""
    return cfg.get("tta") or ("flip" if cfg.get("tta_flip") else "none")


def build_from_checkpoint(ck: dict) -> nn.Module:
    """The network a checkpoint dict describes (a single run's EMA weights, or an ensemble), in eval mode."""
    if ck.get("kind") == "ensemble":
        members = [build_from_checkpoint(m) for m in ck["members"]]
        return EnsembleNet(members, [m.get("temperature", 1.0) for m in ck["members"]],
                           [member_tta(m["config"]) for m in ck["members"]]).eval()
    cfg = ck["config"]
    net = build(cfg["arch"], len(ck["classes"]), **cfg.get("arch_kwargs", {}))
    net.load_state_dict(ck["ema"])
    return net.eval()


def make_ensemble(checkpoints: list[str | Path], val_set: FaceSet, out_path: str | Path) -> dict:
    """Combine ``best.pt`` files of runs that share one validation split into ``out_path``.

    The ensemble's own temperature is fitted on that split. Returns validation accuracy and NLL of every member
    and of the ensemble.
    """
    from openfer.train.loop import fit_temperature, predict_logits  # loop imports this module

    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in checkpoints]
    first = cks[0]["config"]
    for p, ck in zip(checkpoints, cks):
        c = ck["config"]
        if ck["classes"] != cks[0]["classes"] or c["input_size"] != first["input_size"] or \
                c.get("in_chans", 1) != first.get("in_chans", 1):
            raise UsageError(f"{p}: classes or input differ from {checkpoints[0]}; members must be interchangeable")
        if (c.get("split_seed", 0), c["val_fraction"], c["protocol"]) != \
                (first.get("split_seed", 0), first["val_fraction"], first["protocol"]):
            raise UsageError(f"{p}: validation split differs from {checkpoints[0]}; the ensemble could not be "
                             "calibrated on images none of its members trained on")
    members = [{k: ck[k] for k in ("ema", "config", "classes", "temperature", "val_acc") if k in ck} for ck in cks]
    ck = {"kind": "ensemble", "members": members, "classes": cks[0]["classes"],
          "config": {**first, "arch": "ensemble", "tta": "none", "tta_flip": False,
                     "name": Path(out_path).parent.name}}
    net = build_from_checkpoint(ck)
    report = {"members": []}
    labels = torch.from_numpy(val_set.labels)
    for p, m, sub in zip(checkpoints, members, net.members):
        lg = predict_logits(sub, val_set.pixels, first["input_size"], tta=member_tta(m["config"]))
        lg = torch.from_numpy(lg) / m.get("temperature", 1.0)
        report["members"].append({"checkpoint": str(p), "val_acc": float((lg.argmax(1) == labels).float().mean()),
                                  "val_nll": F.cross_entropy(lg, labels).item()})
    logits = predict_logits(net, val_set.pixels, first["input_size"])
    t = fit_temperature(logits, val_set.labels)
    ck["temperature"] = t
    ck["val_acc"] = float((logits.argmax(1) == val_set.labels).mean())
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ck, out_path)
    lt = torch.from_numpy(logits)
    report.update({"val_acc": ck["val_acc"], "temperature": t,
                   "val_nll": F.cross_entropy(lt / t, labels).item(), "n_val": int(len(labels))})
    return report
