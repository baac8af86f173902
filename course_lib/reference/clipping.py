"""Gradient clipping by global norm, with ``torch.nn.utils.clip_grad_norm_``'s semantics."""
from __future__ import annotations

import torch


def clip_grad_norm(parameters, max_norm):
    """Scale every gradient in place by min(1, max_norm / (||g|| + 1e-6)); return ||g||.

    ||g|| is the global L2 norm over *all* gradients together (one direction for the whole
    model), measured before clipping. Parameters whose ``.grad`` is ``None`` are skipped; an empty
    list returns ``tensor(0.)``. Like PyTorch, the scale is applied even when it is 1, so a NaN or
    inf norm propagates into the gradients (the training loop checks for that).

    ``parameters``: a tensor or an iterable of tensors; ``max_norm`` >= 0 (the threshold tau). Returns a 0-d
    tensor on the first gradient's device. Raises ``ValueError`` for a non-tensor parameter or a negative or
    NaN ``max_norm``.
    Source: Pascanu et al. 2013 (Algorithm 1, norm clipping); PyTorch's ``torch.nn.utils.clip_grad_norm_``
    documentation.
    Used by lecture 2 (exploding gradients and clipping) and graded in assignment 1
    (``check_clip_grad_norm``).
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    for k, p in enumerate(parameters):
        if not isinstance(p, torch.Tensor):
            raise ValueError(f"parameters[{k}] must be a torch.Tensor, got {type(p).__name__}")
    if isinstance(max_norm, torch.Tensor):
        max_norm = float(max_norm)
    if not isinstance(max_norm, (int, float)) or max_norm != max_norm or max_norm < 0:
        raise ValueError(f"max_norm must be a non-negative number, got {max_norm!r}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    total_norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.detach(), 2.0).to(device) for g in grads]), 2.0
    )
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(clip_coef.to(g.device, g.dtype))
    return total_norm
