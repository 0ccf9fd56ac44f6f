"""Explanation stage: why the classifier gave a face its probabilities.

Saliency per face (occlusion and RISE for any classifier including the shipped ONNX models; Grad-CAM and
Grad-CAM++ for PyTorch models), the share of the evidence in the brows/eyes, nose and mouth/jaw regions, and a
sentence built only from those shares and the probabilities. Results are ``openfer.Explanation`` objects on
``Face.explanation``. PyTorch is imported only for the Grad-CAM methods, which run an
``openfer.nn.TorchClassifier`` (re-exported here).
"""

from openfer.explain.core import METHODS, explain_faces, heatmaps
from openfer.explain.occlusion import occlusion_map
from openfer.explain.rationale import rationale
from openfer.explain.regions import REGION_NAMES, region_masks, region_shares
from openfer.explain.rise import rise_map
from openfer.explain.sanity import deletion_test, rank_correlation
from openfer.nn.torch_classifier import TorchClassifier

__all__ = ["METHODS", "REGION_NAMES", "TorchClassifier", "deletion_test", "explain_faces", "heatmaps",
           "occlusion_map", "rank_correlation", "rationale", "region_masks", "region_shares", "rise_map"]
