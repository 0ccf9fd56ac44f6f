"""Model registry: every shipped model is declared here, never guessed."""

from openfer.zoo.registry import MODELS, ModelSpec, get_spec, model_path

__all__ = ["MODELS", "ModelSpec", "get_spec", "model_path"]
