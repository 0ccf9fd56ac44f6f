"""The PyTorch layer that training (``openfer.train``) and explanation (``openfer.explain``) share ([train] extra).

- ``archs``: the classifier architectures, created by name (``ARCHS``, ``build``), and ``EnsembleNet``.
- ``tta``: test-time augmentation (mirror image, ten crops) as PyTorch and in exported graphs.
- ``checkpoint``: ``Checkpoint``, the typed content of a ``best.pt`` / ``last.pt`` / ``ensemble.pt``, and
  ``load_checkpoint``; ``Checkpoint.build_model()`` gives its network.
- ``onnx_torch``: ``onnx_to_torch``, an openfer ONNX classifier run as a differentiable PyTorch module.
- ``torch_classifier``: ``TorchClassifier``, a PyTorch network behind ``openfer.classify.Classifier``.

Both stages import from here and neither imports the other. ``import openfer.nn`` does not import PyTorch: the
names below load it when used, and say which extra to install when it is missing (``archs`` and ``tta`` import it
at once; they are only for code that already needs it).
"""

from openfer.nn.checkpoint import Checkpoint, load_checkpoint
from openfer.nn.onnx_torch import onnx_to_torch
from openfer.nn.torch_classifier import TorchClassifier

__all__ = ["Checkpoint", "TorchClassifier", "load_checkpoint", "onnx_to_torch"]
