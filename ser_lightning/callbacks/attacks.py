"""Adversarial attacks as pure functions: FGSM and BIM against any differentiable loss (no Lightning).

:class:`~ser_lightning.callbacks.AdversarialRobustness` runs them against a classifier's input features or
waveform (Latif et al. 2020, ε = 0.08); they work on any tensor and any ``loss_fn(x, y)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(x, y) -> scalar loss`` of an attack."""


def _input_gradient(loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
    """Gradient of ``loss_fn(x, y)`` with respect to ``x`` only (no gradient is accumulated on parameters)."""
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        loss = loss_fn(xg, y)
        (grad,) = torch.autograd.grad(loss, xg)
    return grad


def _check_attack(x: Tensor, epsilon: float | Tensor, clamp: tuple[float, float] | None, mask: Tensor | None) -> None:
    if isinstance(epsilon, Tensor):
        if bool((epsilon < 0).any()):
            raise ValueError("epsilon must be >= 0")
    elif not (epsilon >= 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon must be finite and >= 0, got {epsilon}")
    if clamp is not None and not clamp[0] < clamp[1]:
        raise ValueError(f"clamp must be (low, high) with low < high, got {clamp}")
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean tensor, got {mask.dtype}")


def fgsm(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    epsilon: float | Tensor,
    clamp: tuple[float, float] | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Fast gradient sign method (Goodfellow et al.): ``x + epsilon * sign(grad_x loss(x, y))``.

    Computed like ``torchattacks.FGSM`` (so that, with ``clamp=(0, 1)`` and no mask, both give the same
    adversarial inputs); runs with gradients enabled even inside ``torch.inference_mode``.

    Args:
        loss_fn: ``loss_fn(x, y) -> scalar`` to increase (e.g. cross-entropy w.r.t. the true labels).
        x: clean inputs (any shape).
        y: true labels, passed to ``loss_fn``.
        epsilon: L-inf budget, a number or a tensor broadcasting against ``x`` (e.g. one per utterance).
        clamp: optional ``(low, high)`` range the adversarial input is clamped to.
        mask: optional boolean tensor broadcasting against ``x``; elements where it is ``False`` (padding) are
            left exactly as in ``x``.

    Returns:
        The adversarial inputs, detached.
    """
    _check_attack(x, epsilon, clamp, mask)
    x0 = x.detach()
    grad = _input_gradient(loss_fn, x0, y)
    adv = x0 + epsilon * grad.sign()
    if clamp is not None:
        adv = torch.clamp(adv, min=clamp[0], max=clamp[1])
    if mask is not None:
        adv = torch.where(mask, adv, x0)
    return adv.detach()


def bim(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    epsilon: float | Tensor,
    step_size: float | Tensor,
    steps: int,
    clamp: tuple[float, float] | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Basic iterative method (Kurakin et al.): ``x_{k+1} = clip_{x, eps}(x_k + step_size * sign(grad L(x_k)))``.

    ``steps`` gradient steps from ``x_0 = x``, each followed by a projection onto the L-inf ball of radius
    ``epsilon`` around ``x`` (and onto ``clamp``), in the same order of operations as ``torchattacks.BIM``.

    Args:
        loss_fn: ``loss_fn(x, y) -> scalar`` to increase.
        x: clean inputs.
        y: true labels, passed to ``loss_fn``.
        epsilon: L-inf budget (number or broadcasting tensor).
        step_size: step ``alpha`` per iteration (number or broadcasting tensor).
        steps: number of iterations (>= 1).
        clamp: optional ``(low, high)`` range.
        mask: optional boolean tensor; elements where it is ``False`` stay exactly as in ``x``.

    Returns:
        The adversarial inputs, detached.
    """
    _check_attack(x, epsilon, clamp, mask)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x0 = x.detach()
    upper = x0 + epsilon
    lower = x0 - epsilon
    if clamp is not None:
        lower = torch.clamp(lower, min=clamp[0])
    adv = x0.clone()
    for _ in range(steps):
        grad = _input_gradient(loss_fn, adv, y)
        candidate = adv + step_size * grad.sign()
        candidate = torch.minimum(torch.maximum(candidate, lower), upper)
        if clamp is not None:
            candidate = torch.clamp(candidate, max=clamp[1])
        if mask is not None:
            candidate = torch.where(mask, candidate, x0)
        adv = candidate.detach()
    return adv
