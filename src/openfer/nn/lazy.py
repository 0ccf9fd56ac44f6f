"""PyTorch, imported only when a PyTorch feature is used, with an error that names the extra to install."""

from __future__ import annotations

from openfer.errors import require_extra


def import_torch(what: str = "PyTorch models (Grad-CAM, checkpoints, training) need PyTorch"):
    """The ``torch`` module.

    Raises:
        openfer.MissingExtraError: PyTorch is not installed (the message says ``pip install 'openfer[train]'``).
    """
    require_extra("torch", "train", what)
    import torch

    return torch
