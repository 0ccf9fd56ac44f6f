"""Expression classification stage: face crops in, class probabilities out (ONNX Runtime, no PyTorch)."""

from openfer.classify.compound import compound, compound_name
from openfer.classify.onnx_classifier import OnnxClassifier, load_classifier

__all__ = ["OnnxClassifier", "compound", "compound_name", "load_classifier"]
