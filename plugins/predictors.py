"""The predictors of Lubana et al. (NeurIPS 2021), registered like any third-party predictor.

All four come from the shared forward + backward (no weight gradients): cosine similarity and
stable rank per batch from the probes' outputs and the classifier's input, the explosion exponent
and the variance growth once per model from the per-probe curves. Definitions:
:mod:`explorer.predictors` and docs/predictors.md.
"""

from __future__ import annotations

from torch import Tensor

from explorer import PredictorEntry, hookimpl
from explorer.predictors import (BatchPass, SeedPass, cosine_similarity, grad_explosion_exponent, stable_rank,
                                 variance_growth)

PAPER = "Lubana, Dick, Tanaka, Beyond BatchNorm (NeurIPS 2021)"


def _cosine(batch: BatchPass) -> Tensor:
    # the last probe's output before pooling (after pooling InstanceNorm's features are one constant)
    return cosine_similarity(batch.outputs[-1] if batch.outputs else batch.features)


def _stable_rank(batch: BatchPass) -> Tensor:
    return stable_rank(batch.features)


def _explosion(seed: SeedPass) -> float:
    return grad_explosion_exponent(seed.grad_norm)


def _growth(seed: SeedPass) -> dict:
    return variance_growth(seed.activation_variance, seed.stages)


@hookimpl
def register_predictors(register):
    register(PredictorEntry(
        name="cosine_similarity", direction="lower", needs=("activations",), compute=_cosine, min_batch=2,
        reference=PAPER,
        doc="mean off-diagonal cosine of the last probe's per-sample outputs; low trains fast (Fig. 5)",
    ))
    register(PredictorEntry(
        name="grad_explosion_exponent", direction="lower", needs=("output_gradients",), compute=_explosion,
        per="seed", reference=PAPER,
        doc="slope of log10 ‖dL/d output‖ toward the input, decades per layer; low is stable (Claim 4)",
    ))
    register(PredictorEntry(
        name="stable_rank", direction="higher", needs=("activations",), compute=_stable_rank, min_batch=2,
        reference=PAPER,
        doc="trace(ΔᵀΔ)/‖Δ‖₂² of the centered penultimate features; high is expressive (Claim 3)",
    ))
    register(PredictorEntry(
        name="variance_growth", direction="lower", needs=("activations",), compute=_growth, per="seed",
        scalar=False, reference=PAPER,
        doc="activation variance over depth: flat, linear or exponential, with its rate (Claims 1, 2)",
    ))
