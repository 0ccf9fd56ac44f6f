"""Heads for a user's own labels on frozen expression features (``openfer fit``): read labels, match them to
embedded faces, cross-validate by person, fit, and compose the head with its network into one ONNX classifier."""

from openfer.heads.export import compose, save_model
from openfer.heads.fit import HEADS, TrainingSet, clip_statistics, cross_validate, fit_head, make_head, training_set
from openfer.heads.labels import LabelFileError, LabelSet, read_labels

__all__ = ["HEADS", "LabelFileError", "LabelSet", "TrainingSet", "clip_statistics", "compose", "cross_validate",
           "fit_head", "make_head", "read_labels", "save_model", "training_set"]
