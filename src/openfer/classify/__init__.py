"""Expression classification stage: face crops in, class probabilities out (ONNX Runtime, no PyTorch).

Compound expressions (two strong classes, e.g. "happily surprised"): ``openfer.classify.compound``.
"""

from openfer.classify.onnx_classifier import OnnxClassifier, load_classifier

__all__ = ["OnnxClassifier", "load_classifier"]
