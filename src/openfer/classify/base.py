"""What every expression classifier offers, whatever runs it: the ``Classifier`` protocol.

``OnnxClassifier`` (ONNX Runtime, the shipped models) and ``openfer.nn.TorchClassifier`` (PyTorch, for Grad-CAM and
checkpoints) both satisfy it, and so does any object a user brings with these four members; the stages that take a
classifier (``Analyzer``, the explanation methods, evaluation) need no more than this.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Classifier"]


@runtime_checkable
class Classifier(Protocol):
    """Face crops in, one probability per class out.

    ``isinstance(x, Classifier)`` checks that the four members exist (not their types or values).

    Attributes:
        classes: class names of the probability columns.
        input_size: side of the square crop the network reads, pixels (crops of other sizes are resized).
        channels: 1 (the network reads grey crops; RGB crops are converted) or 3 (RGB).
    """

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def input_size(self) -> int: ...

    @property
    def channels(self) -> int: ...

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities float32 [N, len(classes)], rows summing to 1, for uint8 crops [N, H, W] grey or
        [N, H, W, 3] RGB of any size (N may be 0)."""
        ...
