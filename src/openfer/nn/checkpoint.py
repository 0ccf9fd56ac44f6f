"""What a training checkpoint holds, typed: ``best.pt`` and ``last.pt`` of ``openfer train``, ``ensemble.pt`` of
``openfer ensemble``.

On disk a checkpoint stays the plain dict ``torch.save`` wrote before this type existed (same keys, same values),
so every earlier run loads and earlier openfer versions read new ones. Keys this class does not know are kept in
``extra`` and written back unchanged.

A checkpoint is a pickle: load only files you or openfer made (as with any ``torch.load`` of a full checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from openfer.errors import UnreadableInputError
from openfer.nn.lazy import import_torch

__all__ = ["Checkpoint", "load_checkpoint"]


@dataclass
class Checkpoint:
    """One checkpoint file's content.

    Attributes:
        config: the run's ``openfer.train.TrainConfig`` as a dict (``arch``, ``arch_kwargs``, ``input_size``,
            ``in_chans``, ``tta``, the validation split ...); an ensemble's is its first member's with
            ``arch = "ensemble"``.
        classes: class names of the network's outputs (empty in a ``last.pt``, which only resumes training).
        ema: state dict of the exponential-moving-average weights: the network that is evaluated and exported.
        kind: ``"run"`` (one network) or ``"ensemble"`` (``members``).
        members: an ensemble's member checkpoints (each with ``ema``, ``config``, ``classes``, ``temperature``).
        temperature: softmax temperature fitted on the validation split; None before calibration (then 1).
        epoch: the epoch these weights are from (1-based in ``best.pt``, 0-based in ``last.pt``).
        val_acc: validation accuracy under the training prior.
        val_uar: validation mean per-class recall (balanced decision).
        class_prior: class shares of the training labels, ``classes`` order (what ``prior="balanced"`` divides).
        pretrained: where the initial weights came from (``best.pt``; e.g. faceres files and their SHA-256).
        model: ``last.pt`` only: the trained (not averaged) weights.
        opt: ``last.pt`` only: the optimiser state.
        best: ``last.pt`` only: the best validation score so far and its epoch.
        source: ``last.pt`` only: ``pretrained`` of the run, kept across resumes.
        extra: keys of the file that none of the above names, written back as they were.
    """

    config: dict
    classes: tuple[str, ...] = ()
    ema: dict | None = None
    kind: str = "run"
    members: list[Checkpoint] = field(default_factory=list)
    temperature: float | None = None
    epoch: int | None = None
    val_acc: float | None = None
    val_uar: float | None = None
    class_prior: list[float] | None = None
    pretrained: dict | list | None = None
    model: dict | None = None
    opt: dict | None = None
    best: dict | None = None
    source: dict | list | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> "Checkpoint":
        """The checkpoint a ``torch.load``-ed dict describes.

        Raises:
            openfer.UnreadableInputError: ``data`` is not a dict with a ``config``.
        """
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise UnreadableInputError("not an openfer checkpoint (a dict with a 'config'): give the best.pt of "
                                       "`openfer train` or the ensemble.pt of `openfer ensemble`")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "members", "classes", "kind"}
        known = {k: v for k, v in data.items() if k in names}
        rest = {k: v for k, v in data.items() if k not in names | {"members", "classes", "kind"}}
        return cls(**known, classes=tuple(data.get("classes", ())), kind=data.get("kind", "run"),
                   members=[cls.from_dict(m) for m in data.get("members", ())], extra=rest)

    def to_dict(self) -> dict:
        """The dict ``torch.save`` writes: the keys earlier openfer versions wrote, unset ones left out."""
        out: dict = {}
        if self.kind != "run":
            out["kind"] = self.kind
        if self.members:
            out["members"] = [m.to_dict() for m in self.members]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("kind", "members", "extra") or value is None:
                continue
            if f.name == "classes" and not value:
                continue
            out[f.name] = value
        return {**out, **self.extra}

    @property
    def arch(self) -> str:
        """Architecture name (``openfer.nn.archs.ARCHS``), or ``"ensemble"``."""
        return self.config["arch"]

    @property
    def input_size(self) -> int:
        """Side of the square input the network was trained on, pixels."""
        return int(self.config["input_size"])

    @property
    def in_chans(self) -> int:
        """1 (grey) or 3 (RGB)."""
        return int(self.config.get("in_chans", 1))

    @property
    def tta(self) -> str:
        """The run's test-time augmentation (``none``, ``flip`` or ``tencrop``)."""
        return member_tta(self.config)

    @property
    def calibrated_temperature(self) -> float:
        """``temperature``, or 1 before calibration."""
        return 1.0 if self.temperature is None else float(self.temperature)

    def build_model(self):
        """The network (``torch.nn.Module``) in eval mode: the EMA weights of a run, or an ``EnsembleNet`` of the
        members (each with its own temperature and test-time augmentation).

        Raises:
            openfer.UnreadableInputError: a ``last.pt`` or another checkpoint without classes or EMA weights.
            openfer.MissingExtraError: PyTorch is not installed.
        """
        import_torch()
        from openfer.nn.archs import EnsembleNet, build

        if self.kind == "ensemble":
            return EnsembleNet([m.build_model() for m in self.members],
                               [m.calibrated_temperature for m in self.members],
                               [m.tta for m in self.members]).eval()
        if self.ema is None or not self.classes:
            raise UnreadableInputError("this checkpoint holds no network to evaluate (no classes or EMA weights; a "
                                       "last.pt only resumes training): give the run's best.pt")
        net = build(self.arch, len(self.classes), **self.config.get("arch_kwargs", {}))
        net.load_state_dict(self.ema)
        return net.eval()

    def save(self, path: str | Path) -> None:
        """Write the checkpoint to ``path`` atomically (a temporary file beside it, renamed when complete), so a
        run stopped while saving keeps its previous file."""
        torch = import_torch()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            torch.save(self.to_dict(), part)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)


def member_tta(config: dict) -> str:
    """A run's test-time augmentation: ``tta`` when set, else ``flip``/``none`` from the older ``tta_flip``."""
    return config.get("tta") or ("flip" if config.get("tta_flip") else "none")


def load_checkpoint(path: str | Path, map_location: object = "cpu") -> Checkpoint:
    """The checkpoint at ``path`` (a ``best.pt``, ``last.pt`` or ``ensemble.pt``).

    Args:
        map_location: where the tensors go (``torch.load``'s argument): ``"cpu"``, or a ``torch.device``.

    Raises:
        FileNotFoundError: no file at ``path``.
        openfer.UnreadableInputError: the file is not a PyTorch checkpoint openfer wrote.
        openfer.MissingExtraError: PyTorch is not installed.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (give the best.pt of a training run)")
    torch = import_torch()
    try:
        data = torch.load(path, map_location=map_location, weights_only=False)  # our own dicts: config, numbers
    except Exception as e:  # a damaged or foreign file: torch raises pickle, zip and runtime errors alike
        raise UnreadableInputError(f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    try:
        return Checkpoint.from_dict(data)
    except UnreadableInputError as e:
        raise UnreadableInputError(f"{path} is {e}") from None
