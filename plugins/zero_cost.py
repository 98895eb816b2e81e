"""Zero-cost proxies from the NAS literature as predictors: the baselines a normalizer predictor
has to beat (definitions in :mod:`normx_plugins.zero_cost_proxies` and docs/predictors.md).

Which pass each uses: ``naswot`` reads the shared forward (the probes' on/off pattern);
``weight_grad_norm`` and ``snip`` the shared backward, which then also computes the weight
gradients of the same cross-entropy loss; ``jacob_cov`` needs the gradient of the summed logits
with respect to the input, a different output, so it runs a forward + backward of its own per
batch; ``synflow`` is data-free (|W|, all-ones input, float64, eval mode) on a copy of the model;
``forward_flops`` counts one forward; ``parameter_count`` reads the model.
"""

from __future__ import annotations


from explorer import PredictorEntry, hookimpl
from explorer.predictors import BatchPass, SeedPass
from normx_plugins import zero_cost_proxies as zc

ABDELFATTAH = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS (ICLR 2021)"
MELLOR = "Mellor et al., Neural Architecture Search without Training (ICML 2021)"


def _weight_grads(batch: BatchPass) -> list:
    if batch.weight_grads is None:
        raise RuntimeError("the shared backward computed no weight gradients")
    return batch.weight_grads


def _weight_grad_norm(batch: BatchPass) -> float:
    return zc.grad_norm(_weight_grads(batch))


def _snip(batch: BatchPass) -> float:
    return zc.snip(batch.weights, _weight_grads(batch))


def _naswot(batch: BatchPass) -> float:
    return zc.naswot(zc.activation_codes(batch.outputs))


def _jacob_cov(batch: BatchPass) -> float:
    return zc.jacob_cov(zc.input_jacobians(batch.model, batch.x))


def _synflow(seed: SeedPass) -> float:
    return zc.synflow(seed.model, tuple(seed.batches[0][0].shape[1:]))


def _flops(seed: SeedPass) -> float:
    return zc.forward_flops(seed.model, seed.batches[0][0])


def _parameters(seed: SeedPass) -> float:
    return float(zc.parameter_count(seed.model))


@hookimpl
def register_predictors(register):
    register(PredictorEntry(
        name="parameter_count", direction="higher", compute=_parameters, per="seed", reference=ABDELFATTAH,
        doc="trainable parameters: the size baseline that ties most proxies on NAS benchmarks",
    ))
    register(PredictorEntry(
        name="forward_flops", direction="higher", needs=("separate_pass",), compute=_flops, per="seed",
        reference=ABDELFATTAH, doc="matmul/conv FLOPs of one forward per sample (torch's FlopCounterMode)",
    ))
    register(PredictorEntry(
        name="weight_grad_norm", direction="higher", needs=("weight_gradients",), compute=_weight_grad_norm,
        reference=ABDELFATTAH, doc="grad_norm: Σ over layers of ‖∂L/∂W‖ (cross-entropy, the shared backward)",
    ))
    register(PredictorEntry(
        name="snip", direction="higher", needs=("weight_gradients",), compute=_snip,
        reference="Lee et al., SNIP (ICLR 2019); " + ABDELFATTAH, doc="Σ |W ⊙ ∂L/∂W| over layer weights",
    ))
    register(PredictorEntry(
        name="synflow", direction="higher", needs=("separate_pass",), compute=_synflow, per="seed",
        reference="Tanaka et al., SynFlow (NeurIPS 2020)",
        doc="Σ |W ⊙ ∂R/∂W|, R = Σ f(1) with |W|, float64, eval mode; data-free",
    ))
    register(PredictorEntry(
        name="naswot", direction="higher", needs=("activations",), compute=_naswot, min_batch=2, reference=MELLOR,
        doc="log|det K| of the probes' binary on/off codes, K_ij = agreements of samples i, j",
    ))
    register(PredictorEntry(
        name="jacob_cov", direction="higher", needs=("separate_pass",), compute=_jacob_cov, min_batch=2,
        reference=MELLOR + ", arXiv v1",
        doc="−Σ log(λ+ε) + 1/(λ+ε) over the eigenvalues of the input-Jacobian correlation matrix",
    ))
