"""Zero-cost proxies from the NAS literature: the baselines a normalizer predictor has to beat.

Definitions (``docs/predictors.md`` has the references and directions):

* ``parameter_count``: trainable parameters. Abdelfattah et al. (ICLR 2021) found that this and
  FLOPs rank NAS-Bench-201 networks as well as most proxies, so every predictor is reported
  beside it.
* ``forward_flops``: floating-point operations of one forward pass per sample, as counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions).
* ``grad_norm``: the sum over layers of ‖∂L/∂W‖ (one batch, cross-entropy).
* ``snip``: Σ |W ⊙ ∂L/∂W| (Lee et al., ICLR 2019, as a network score).
* ``synflow``: weights replaced by their absolute values, an all-ones input in float64, R = Σ of
  the output, score Σ |W ⊙ ∂R/∂W| (Tanaka et al., NeurIPS 2020). Data-free; normalizers run in
  eval mode (running statistics at their initial values).
* ``naswot``: log |det K| with K_ij the number of units on which the binary activation codes of
  samples i and j agree (Mellor et al., ICML 2021).
* ``jacob_cov``: eigenvalues λ of the correlation matrix of the per-sample input Jacobians of
  the summed logits; score −Σ (log(λ + 1e-5) + 1/(λ + 1e-5)) (Mellor et al., arXiv v1).

"Layers" are the weights of the conv/linear ops: the parameters with two or more dimensions (a
weight-normalized layer's direction and gain included); per-channel affine parameters are not.
Every proxy here is "higher is better" as in the literature. ``plugins/zero_cost.py`` registers
them as predictors; these are the definitions. They live with the plugin, not in the core: nothing
else uses them, and a third-party predictor package would carry its own the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from explorer.predictors import layer_weights

#: Added to the correlation eigenvalues in jacob_cov (Mellor et al.'s constant).
JACOB_COV_EPS = 1e-5
#: naswot's kernel is singular when λ_min ≤ λ_max · N · this (numpy's matrix_rank uses N · 2.2e-16;
#: 1e-12 leaves room for every CPU's rounding of an exactly singular integer matrix).
NASWOT_SINGULAR = 1e-12


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(model: nn.Module, x: Tensor) -> float:
    """FLOPs of one forward pass on ``x``, per sample (the model's mode is left as it was)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / max(1, x.shape[0])


def grad_norm(grads: Iterable[Tensor | None]) -> float:
    """Σ over layers of the Frobenius norm of each layer's weight gradient."""
    return float(sum(torch.linalg.vector_norm(g.double()) for g in grads if g is not None))


def snip(weights: Iterable[Tensor], grads: Iterable[Tensor | None]) -> float:
    """Σ |W ⊙ ∂L/∂W| over every layer weight."""
    return float(sum((w.detach().double() * g.double()).abs().sum()
                     for w, g in zip(weights, grads) if g is not None))


def naswot(codes: Tensor) -> float:
    """log |det K| for binary activation codes (N samples, U units), K_ij = agreements of i and j.

    -inf when K is singular: the network cannot tell the samples apart (two share a code, or the
    codes span too few directions, as N samples on fewer than N/2 units always do). Singular means
    numerically singular, λ_min ≤ λ_max · N · 1e-12: an exactly singular K computed in floating
    point has a tiny eigenvalue of either sign, and its log-determinant is whatever the CPU's
    rounding makes of it (a finite number on one machine, -inf on another).
    Exact for fewer than 2**24 units.
    """
    # K = c cᵀ + (1 − c)(1 − c)ᵀ = 2 c cᵀ − s 1ᵀ − 1 sᵀ + U (s the row sums, U the units): one
    # product instead of two, in float32, which holds these integer sums exactly below 2**24.
    c = codes.detach().float()
    rows = c.sum(dim=1)
    kernel = (2 * (c @ c.T) - rows[:, None] - rows[None, :] + c.shape[1]).double()
    eig = torch.linalg.eigvalsh(kernel)  # K is positive semi-definite: a sum of two Gram matrices
    if not bool(eig[0] > eig[-1] * kernel.shape[0] * NASWOT_SINGULAR):
        return -math.inf
    return float(torch.log(eig).sum())


def jacob_cov(jacobians: Tensor) -> float:
    """−Σ (log(λ + ε) + 1/(λ + ε)) over the eigenvalues λ of the correlation matrix of the rows
    (one flattened input Jacobian per sample). NaN when a row is constant (no correlation)."""
    j = jacobians.detach().double().flatten(1)
    centered = j - j.mean(dim=1, keepdim=True)
    norms = torch.linalg.vector_norm(centered, dim=1, keepdim=True)
    if not bool((norms > 0).all()) or not bool(torch.isfinite(j).all()):
        return math.nan
    unit = centered / norms
    corr = unit @ unit.T
    eig = torch.linalg.eigvalsh(corr).clamp_min(0.0)
    return float(-(torch.log(eig + JACOB_COV_EPS) + 1.0 / (eig + JACOB_COV_EPS)).sum())


def input_jacobians(model: nn.Module, x: Tensor) -> Tensor:
    """Per-sample gradient of the summed logits with respect to the input, (N, ...) (a pass of its own)."""
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    return grad


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Σ |W ⊙ ∂R/∂W| with |W| for every parameter, R = Σ model(ones) in float64, eval mode.

    Runs on a copy: the caller's model is left untouched. ``input_shape`` is one sample's shape.
    """
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_()
    for p in probe.parameters():
        p.requires_grad_(True)
        p.grad = None
    first = next(probe.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    probe(ones).sum().backward()
    weights = layer_weights(probe)
    return snip(weights, [w.grad for w in weights])


def activation_codes(outputs: Iterable[Tensor]) -> Tensor:
    """Binary codes (N, U): which units are positive, over the given layer outputs (after ReLU,
    exactly the ReLU's on/off pattern)."""
    return torch.cat([(o.detach() > 0).flatten(1) for o in outputs], dim=1)
