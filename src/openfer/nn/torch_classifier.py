"""A PyTorch classifier behind the same interface as ``OnnxClassifier`` (``openfer.classify.Classifier``;
``[train]`` extra), for Grad-CAM and for explaining checkpoints that were not exported."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openfer.classify.prior import decision_of
from openfer.classify.onnx_classifier import to_network_input
from openfer.nn.lazy import import_torch


class TorchClassifier:
    """Wraps an ``nn.Module`` that maps normalised crops [N, C, S, S] ((x / 255 - 0.5) / 0.5, as in training) to
    logits; probabilities are ``softmax(logits / temperature)``.

    Args:
        net: the network (put in eval mode here). An ``EnsembleNet`` is run member by member (mean of each
            member's logits over its own temperature) so Grad-CAM can look inside every member.
        classes: class names of the logit columns.
        input_size: side of the square input, pixels.
        channels: 1 (grey) or 3 (RGB).
        temperature: calibration temperature of the whole model.
        batch_size: crops per forward pass in ``predict_proba``.

    Test-time augmentation (mirror image, ten crops) of a checkpoint is not applied: the probabilities explained
    are those of the plain network, so a checkpoint's numbers can differ slightly from its exported ONNX file's.
    """

    def __init__(self, net, classes: tuple[str, ...] | list[str], input_size: int, channels: int = 1,
                 temperature: float = 1.0, batch_size: int = 256) -> None:
        self.net = net.eval()
        self.classes = tuple(classes)
        self.input_size = int(input_size)
        self.channels = int(channels)
        self.temperature = float(temperature)
        self.batch_size = batch_size
        self.reweigh = None  # an OnnxClassifier's decision prior (from_onnx), applied to the probabilities

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "TorchClassifier":
        """Load a ``best.pt`` of ``openfer train`` (EMA weights) or an ``ensemble.pt`` of ``openfer ensemble``.

        Raises:
            FileNotFoundError: no file at ``path``.
            openfer.UnreadableInputError: not a checkpoint of a network (e.g. a ``last.pt``).
            openfer.MissingExtraError: PyTorch is not installed (also an ``ImportError``).
        """
        from openfer.nn.checkpoint import load_checkpoint

        ck = load_checkpoint(path)
        return cls(ck.build_model(), ck.classes, ck.input_size, ck.in_chans, ck.calibrated_temperature)

    @classmethod
    def from_onnx(cls, classifier) -> "TorchClassifier":
        """The same model as an ``OnnxClassifier`` (e.g. a shipped one), run by PyTorch so Grad-CAM can see
        inside; its probabilities match the ONNX Runtime ones to about 1e-5 (mirror-image test-time augmentation
        included)."""
        from openfer.nn.onnx_torch import onnx_to_torch
        from openfer.zoo.registry import model_path

        path = getattr(classifier, "path", None) or model_path(classifier.spec)
        twin = cls(onnx_to_torch(path), classifier.classes, classifier.input_size, classifier.channels)
        # the same probabilities (its decision prior) and labels as the ONNX classifier
        twin.reweigh, twin.decision = getattr(classifier, "apply_prior", None), decision_of(classifier)
        return twin

    def members(self) -> list:
        """The networks inside: the members of an ensemble, else ``[net]``."""
        return list(self.net.members) if hasattr(self.net, "members") else [self.net]

    def to_tensor(self, faces: np.ndarray):
        """uint8 crops [N, H, W(, 3)] -> normalised float tensor [N, C, S, S]."""
        torch = import_torch()
        x = torch.from_numpy(to_network_input(faces, self.input_size, self.channels))
        return (x / 255.0 - 0.5) / 0.5

    def logits(self, x):
        """Calibrated logits [N, K] (already divided by the member and model temperatures) of a normalised batch."""
        if hasattr(self.net, "members"):
            torch = import_torch()
            out = torch.stack([m(x) / t for m, t in zip(self.net.members, self.net.temperatures)]).mean(0)
        else:
            out = self.net(x)
        return out / self.temperature

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities float32 [N, K] for uint8 crops of any size."""
        torch = import_torch()
        faces = np.asarray(faces)
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = []
        with torch.no_grad():
            for i in range(0, len(faces), self.batch_size):
                out.append(torch.softmax(self.logits(self.to_tensor(faces[i : i + self.batch_size])), 1))
        p = torch.cat(out).numpy().astype(np.float32)
        return self.reweigh(p) if self.reweigh else p
