"""Sharpness-aware minimisation (Foret et al., 2021): step from the worst point of a small weight neighbourhood.

Each step costs two forward/backward passes: one to find the ascent direction, one at the perturbed weights.
"""

from __future__ import annotations

from typing import Callable

import torch


def sam_step(params: list[torch.nn.Parameter], closure: Callable[[], torch.Tensor], opt: torch.optim.Optimizer,
             rho: float) -> torch.Tensor:
    """One SAM update. ``closure`` computes the loss and calls ``backward``; returns the first (unperturbed) loss.

    The weights move by ``rho * g / ||g||``, the gradient is taken there, the weights are restored and ``opt``
    steps with that gradient.
    """
    opt.zero_grad(set_to_none=True)
    loss = closure()
    with torch.no_grad():
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.norm(torch.stack([g.norm(2) for g in grads]), 2) if grads else torch.tensor(0.0)
        scale = rho / (norm + 1e-12)
        moved = []
        for p in params:
            if p.grad is None:
                continue
            e = p.grad * scale
            p.add_(e)
            moved.append((p, e))
    opt.zero_grad(set_to_none=True)
    closure()
    with torch.no_grad():
        for p, e in moved:
            p.sub_(e)
    opt.step()
    return loss
