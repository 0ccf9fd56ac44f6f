"""Expression classification stage: face crops in, class probabilities out (ONNX Runtime, no PyTorch).

Compound expressions (two strong classes, e.g. "happily surprised"): ``openfer.classify.compound``.
"""

from openfer.classify.base import Classifier
from openfer.classify.onnx_classifier import OnnxClassifier, load_classifier

__all__ = ["Classifier", "OnnxClassifier", "load_classifier"]
