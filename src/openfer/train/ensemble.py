"""Ensembles: several trained networks averaged into one model, calibrated on their shared validation split.

An ensemble is stored as one checkpoint (``kind = "ensemble"``) holding every member's weights, config and
temperature, so ``openfer export`` turns it into a single ONNX file like any other run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from openfer.datasets import FaceSet
from openfer.errors import UsageError
from openfer.nn.checkpoint import Checkpoint, load_checkpoint
from openfer.train.combine import fit_temperature
from openfer.train.loop import predict_logits


def make_ensemble(checkpoints: list[str | Path], val_set: FaceSet, out_path: str | Path) -> dict:
    """Combine ``best.pt`` files of runs that share one validation split into ``out_path``.

    The ensemble's own temperature is fitted on that split, and it declares the mean of its members' training
    priors (so its export carries one, for label rules and ``--prior balanced``). Returns validation accuracy and
    NLL of every member and of the ensemble.
    """
    cks = [load_checkpoint(p) for p in checkpoints]
    first = cks[0].config
    for p, ck in zip(checkpoints, cks):
        c = ck.config
        if ck.classes != cks[0].classes or ck.input_size != cks[0].input_size or ck.in_chans != cks[0].in_chans:
            raise UsageError(f"{p}: classes or input differ from {checkpoints[0]}; members must be interchangeable")
        if (c.get("split_seed", 0), c["val_fraction"], c["protocol"]) != \
                (first.get("split_seed", 0), first["val_fraction"], first["protocol"]):
            raise UsageError(f"{p}: validation split differs from {checkpoints[0]}; the ensemble could not be "
                             "calibrated on images none of its members trained on")
    members = [Checkpoint(ck.config, ck.classes, ema=ck.ema, temperature=ck.temperature, val_acc=ck.val_acc)
               for ck in cks]
    priors = [c.class_prior for c in cks]  # the members' training priors: their mean is the ensemble's
    ck = Checkpoint({**first, "arch": "ensemble", "tta": "none", "tta_flip": False, "name": Path(out_path).parent.name},
                    cks[0].classes, kind="ensemble", members=members,
                    class_prior=np.mean(priors, 0).tolist() if all(p is not None for p in priors) else None)
    net = ck.build_model()
    report = {"members": []}
    labels = torch.from_numpy(val_set.labels)
    for p, m, sub in zip(checkpoints, members, net.members):
        lg = predict_logits(sub, val_set.pixels, m.input_size, tta=m.tta)
        lg = torch.from_numpy(lg) / m.calibrated_temperature
        report["members"].append({"checkpoint": str(p), "val_acc": float((lg.argmax(1) == labels).float().mean()),
                                  "val_nll": F.cross_entropy(lg, labels).item()})
    logits = predict_logits(net, val_set.pixels, ck.input_size)
    t = fit_temperature(logits, val_set.labels)
    ck.temperature = t
    ck.val_acc = float((logits.argmax(1) == val_set.labels).mean())
    ck.save(out_path)
    lt = torch.from_numpy(logits)
    report.update({"val_acc": ck.val_acc, "temperature": t,
                   "val_nll": F.cross_entropy(lt / t, labels).item(), "n_val": int(len(labels))})
    return report
