"""The predictors at initialization (Lubana et al. 2021), as functions of tensors and as a recorder.

Definitions (docs/predictors.md has the reasoning):

* activation variance of a layer output: the variance of each channel over every other axis
  (batch and positions; biased), averaged over channels;
* gradient norm: the Frobenius norm of d loss / d layer output over the whole batch tensor;
* cosine similarity of the last probed layer's output (before pooling): flatten each sample,
  L2-normalize, Gram matrix, mean of the off-diagonal entries;
* stable rank: trace(ΔᵀΔ) / ‖Δ‖₂² of the penultimate features Δ (N, D), centered across samples;
  the penultimate features are the classifier's input (after global pooling);
* gradient-explosion exponent: least-squares slope of log10(gradient norm) against the distance
  from the output (positive = gradients grow toward the input);
* variance growth: linear vs exponential least-squares fits per stage, compared in log space.

These are the definitions; the predictors a measurement computes are registered by plugins
(``plugins/predictors.py`` for the paper's, ``plugins/zero_cost.py`` for the baselines), and
each receives a :class:`BatchPass` or a :class:`SeedPass`. The recorder keeps every statistic on
the device; nothing is copied to the host until the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from explorer.errors import NormxError, plugin_failure
from explorer.norm import NormalizedLayer

if TYPE_CHECKING:
    from explorer.registry import PredictorEntry

#: A variance that grows by less than this factor over a stage is "flat".
FLAT_GROWTH = 1.5


# --------------------------------------------------------------------------- definitions on tensors


def activation_variance(y: Tensor) -> Tensor:
    """Per-channel variance over batch and positions, averaged over channels (a 0-d tensor).

    Channels are dim 1 for (N, C) and (N, C, H, W), the last dim for sequences (N, L, C).
    """
    y = y.detach().float()
    if y.dim() == 3:  # (N, L, C): tokens are samples
        y = y.reshape(-1, y.shape[-1])
    if y.dim() == 2:
        return y.var(dim=0, correction=0).mean()
    dims = [0, *range(2, y.dim())]
    return y.var(dim=dims, correction=0).mean()


def gradient_norm(grad: Tensor) -> Tensor:
    """Frobenius norm of a gradient tensor (a 0-d tensor)."""
    return torch.linalg.vector_norm(grad.detach().float())


def cosine_similarity(features: Tensor) -> Tensor:
    """Mean cosine similarity over the off-diagonal pairs of a batch (NaN for one sample)."""
    f = features.detach().flatten(1).double()
    n = f.shape[0]
    # Scale each row by its largest entry first, so that huge (but finite) features do not
    # overflow the norm; an all-zero row has no direction, and makes the similarity NaN.
    peak = f.abs().amax(dim=1, keepdim=True)
    f = f / torch.where(peak > 0, peak, torch.ones_like(peak))
    norm = torch.linalg.vector_norm(f, dim=1, keepdim=True)
    f = f / torch.where(norm > 0, norm, torch.full_like(norm, float("nan")))
    gram = f @ f.T
    value = (gram.sum() - gram.diagonal().sum()) / (n * (n - 1)) if n > 1 else gram.sum() * float("nan")
    return value.float()


def stable_rank(features: Tensor, center: bool = True) -> Tensor:
    """trace(ΔᵀΔ) / ‖Δ‖₂² for Δ the (N, D) features, centered across samples by default.

    Centering removes the mean feature vector (large after a ReLU), which otherwise takes the top
    singular value and pins the stable rank near 1 whatever the normalizer. Zero features
    (complete collapse) have stable rank 0.
    """
    d = features.detach().float().flatten(1)
    if center:
        d = d - d.mean(dim=0, keepdim=True)
    # Non-finite features have no rank (NaN); the SVD must not see them, and checking on the
    # device keeps the host out of it.
    finite = torch.isfinite(d).all()
    d = torch.where(finite, d, torch.zeros_like(d))
    frob = d.square().sum()
    top = torch.linalg.matrix_norm(d, ord=2).square()
    rank = torch.where(top > 0, frob / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(top))
    return torch.where(finite, rank, torch.full_like(rank, float("nan")))


# --------------------------------------------------------------------------- fits


def least_squares_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope of the least-squares line through (x, y); NaN with fewer than 2 points or non-finite y."""
    if len(x) < 2 or not all(math.isfinite(v) for v in y):
        return float("nan")
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        return float("nan")
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx


def grad_explosion_exponent(grad_norms: Sequence[float]) -> float:
    """Slope of log10(gradient norm) against distance from the output, in decades per layer.

    ``grad_norms`` are in forward order (input side first); position ``d = L-1-l`` counts layers
    from the output, so a positive exponent means gradients grow toward the input.
    """
    if any(not (g > 0) or not math.isfinite(g) for g in grad_norms):
        return float("nan")
    n = len(grad_norms)
    return least_squares_slope([n - 1 - i for i in range(n)], [math.log10(g) for g in grad_norms])


def _stage_fit(positions: list[float], values: list[float], stages: list[int]) -> tuple[float, list[float]]:
    """Least squares with one shared slope and an intercept per stage: (slope, fitted values)."""
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(stages):
        groups.setdefault(s, []).append(i)
    sxy = sxx = 0.0
    means = {}
    for s, idx in groups.items():
        mx = sum(positions[i] for i in idx) / len(idx)
        my = sum(values[i] for i in idx) / len(idx)
        means[s] = (mx, my)
        sxx += sum((positions[i] - mx) ** 2 for i in idx)
        sxy += sum((positions[i] - mx) * (values[i] - my) for i in idx)
    slope = sxy / sxx if sxx > 0 else 0.0
    fitted = [means[s][1] + slope * (positions[i] - means[s][0]) for i, s in enumerate(stages)]
    return slope, fitted


def variance_growth(variances: Sequence[float], stages: Sequence[int] | None = None) -> dict:
    """Classify how the activation variance grows over depth: linear, exponential or flat.

    Stages (runs of layers at one resolution) get their own intercept and share the slope; stages
    of one layer are left out. Exponential: log v = b_s + k·l; linear: v = a_s + r·l. The kind is
    ``flat`` when the fitted growth over the mean stage length is below 1.5x (both ways), else the
    fit with the smaller squared error in log space. ``rate`` is r (variance per layer) for linear
    and flat, k/ln 2 (doublings per layer) for exponential.
    """
    stages = list(stages) if stages is not None else [0] * len(variances)
    keep = [i for i, s in enumerate(stages) if stages.count(s) >= 2]
    values = [float(variances[i]) for i in keep]
    st = [stages[i] for i in keep]
    pos = [float(i) for i in keep]
    if len(values) < 3 or any(not math.isfinite(v) or v <= 0 for v in values):
        if any(not math.isfinite(v) for v in values):
            return {"kind": "exponential", "rate": float("inf")}
        return {"kind": "flat", "rate": 0.0}
    logs = [math.log(v) for v in values]
    k, log_fit = _stage_fit(pos, logs, st)
    r, lin_fit = _stage_fit(pos, values, st)
    span = (len(values) / len(set(st))) - 1
    if abs(k) * span < math.log(FLAT_GROWTH):
        return {"kind": "flat", "rate": r}
    sse_exp = sum((a - b) ** 2 for a, b in zip(logs, log_fit))
    if any(p <= 0 for p in lin_fit):
        return {"kind": "exponential", "rate": k / math.log(2)}
    sse_lin = sum((a - math.log(b)) ** 2 for a, b in zip(logs, lin_fit))
    if sse_exp < sse_lin:
        return {"kind": "exponential", "rate": k / math.log(2)}
    return {"kind": "linear", "rate": r}


# --------------------------------------------------------------------------- what predictors receive


@dataclass
class BatchPass:
    """One batch's shared forward + backward, as a ``per="batch"`` predictor receives it.

    ``outputs`` are the probes' outputs in forward order, ``output_grads`` d loss / d output
    (None for a probe the loss does not reach), ``features`` the classifier's input. The loss is
    cross-entropy with the batch's labels. ``weight_grads`` (d loss / d weight, aligned with
    ``weights``: the parameters with two or more dimensions) come from the same backward, and only
    when some selected predictor needs ``weight_gradients``; otherwise they are None. The model is
    in training mode; a predictor with a ``separate_pass`` may run it again itself.
    """

    model: nn.Module
    x: Tensor
    y: Tensor
    logits: Tensor
    loss: Tensor
    outputs: list[Tensor]
    output_grads: list[Tensor | None]
    features: Tensor
    weights: list[nn.Parameter]
    weight_grads: list[Tensor | None] | None
    stages: list[int]


@dataclass
class SeedPass:
    """One built model after every batch, as a ``per="seed"`` predictor receives it: the model, the
    batches, and the shared pass's per-probe curves (means over the batches)."""

    model: nn.Module | None
    batches: list[tuple[Tensor, Tensor]]
    activation_variance: list[float]
    grad_norm: list[float]
    stages: list[int]


def layer_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weights of the conv/linear ops: parameters with two or more dimensions (a
    weight-normalized layer's direction and gain included; per-channel affine parameters not)."""
    return [p for p in model.parameters() if p.dim() >= 2]


def failure_reason(err: BaseException) -> str:
    """One line saying why a predictor failed, as it is stored under ``missing``."""
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, (SystemExit, KeyboardInterrupt)):
        text = f"{type(err).__name__}{f'({err})' if str(err) else ''} raised by the predictor, which may not end the command"
    return " ".join(text.split())[:300]


def too_small_batch(predictor: PredictorEntry, samples: int) -> str | None:
    """Why ``predictor`` has no value on batches of ``samples`` (stored under ``missing``), or None."""
    if samples >= predictor.min_batch:
        return None
    return f"needs batches of at least {predictor.min_batch} samples, got {samples}"


# --------------------------------------------------------------------------- recorder


def find_probes(model: nn.Module) -> tuple[list[nn.Module], list[int], nn.Module]:
    """(probe modules, their stages, classifier) of a model.

    Reference models say so themselves (``probes``, ``probe_stages``, ``head``); any other module
    is probed at every normalized layer, one stage, and its last ``nn.Linear`` is the classifier.
    """
    probes = getattr(model, "probes", None)
    head = getattr(model, "head", None)
    if probes is not None and head is not None:
        return list(probes), list(getattr(model, "probe_stages", [0] * len(probes))), head
    layers = [m for m in model.modules() if isinstance(m, NormalizedLayer)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers or not linears:
        raise NormxError("the model has no normalized layers or no linear classifier to probe")
    head = linears[-1]
    layers = [m for m in layers if m.op is not head]
    return layers, [0] * len(layers), head


class Recorder:
    """Hooks a model's probes and classifier input; accumulates the per-layer curves and the
    ``per="batch"`` predictors on the device.

    For each batch: one forward (hooks keep the probes' outputs and the classifier's input), then
    one ``torch.autograd.grad`` of the loss with respect to those outputs, and to the layer
    weights as well when a predictor needs weight gradients (one backward for both). Each
    predictor then computes its value from that :class:`BatchPass`. Sums stay on the device;
    :meth:`result` copies them once. A predictor that raises is recorded in ``missing`` with its
    reason and not asked again; the others go on. So is one that calls ``sys.exit()`` or raises
    KeyboardInterrupt itself (:func:`explorer.errors.plugin_failure`); a real Ctrl-C still interrupts.
    """

    def __init__(self, model: nn.Module, predictors: Sequence[PredictorEntry] = ()):
        self.model = model
        self.probes, self.stages, self.head = find_probes(model)
        self.predictors = [p for p in predictors if p.per == "batch"]
        self.weight_gradients = any("weight_gradients" in p.needs for p in self.predictors)
        self.outputs: list[Tensor | None] = [None] * len(self.probes)
        self.features: Tensor | None = None
        self.missing: dict[str, str] = {}
        self._handles = []
        self._sums: Tensor | None = None  # variance, grad norm per probe, then the overflow flag
        self._values: dict[str, Tensor] = {}
        self.batches = 0

    def __enter__(self) -> Recorder:
        for i, module in enumerate(self.probes):
            self._handles.append(module.register_forward_hook(self._forward_hook(i)))
        self._handles.append(self.head.register_forward_pre_hook(self._head_hook))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.outputs = [None] * len(self.probes)
        self.features = None

    def _forward_hook(self, index: int):
        def hook(module: nn.Module, inputs, output: Tensor) -> None:
            self.outputs[index] = output

        return hook

    def _head_hook(self, module: nn.Module, inputs) -> None:
        self.features = inputs[0]

    def step(self, x: Tensor, y: Tensor) -> None:
        """One forward + backward on (x, y), accumulating the curves and every predictor on the device."""
        logits = self.model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        outs = self.outputs
        n = len(self.probes)
        device = logits.device
        used = [i for i, o in enumerate(outs) if o is not None and o.requires_grad]
        weights = layer_weights(self.model)
        asked = [outs[i] for i in used] + (weights if self.weight_gradients else [])
        grads = list(torch.autograd.grad(loss, asked, allow_unused=True)) if asked else []
        output_grads: list[Tensor | None] = [None] * n
        for i, g in zip(used, grads):
            output_grads[i] = g
        weight_grads = grads[len(used):] if self.weight_gradients else None
        variances = torch.stack([activation_variance(o) if o is not None else torch.zeros((), device=device)
                                 for o in outs]) if n else torch.zeros(0, device=device)
        norms = torch.stack([gradient_norm(g) if g is not None else torch.zeros((), device=device)
                             for g in output_grads]) if n else torch.zeros(0, device=device)
        feats = self.features
        # Overflow: non-finite features or loss, or a sample whose last probed output overflowed or
        # collapsed to 0 (it has no direction: its cosine similarity would be NaN).
        last = (outs[-1] if n and outs[-1] is not None else feats).detach().flatten(1)
        alive = torch.isfinite(last).all() & ((last.abs().amax(dim=1) > 0).all() | (last.shape[0] < 2))
        finite = torch.isfinite(feats).all() & torch.isfinite(loss) & alive
        row = torch.cat([variances, norms, (~finite).float().reshape(1)])
        self._sums = row if self._sums is None else self._sums + row
        batch = BatchPass(self.model, x, y, logits, loss, [o for o in outs if o is not None], output_grads,
                          feats, weights, weight_grads, list(self.stages))
        for predictor in self.predictors:
            if predictor.name in self.missing:
                continue
            too_small = too_small_batch(predictor, int(x.shape[0]))
            if too_small is not None:
                self.missing[predictor.name] = too_small
                continue
            try:
                value = torch.as_tensor(predictor.compute(batch), device=device).detach().double().reshape(())
            except BaseException as err:  # noqa: BLE001 - a predictor that fails (or exits) is missing, not a crash
                if not plugin_failure(err):
                    raise  # a real Ctrl-C
                self.missing[predictor.name] = failure_reason(err)
                continue
            total = self._values.get(predictor.name)
            self._values[predictor.name] = value if total is None else total + value
        self.batches += 1
        self.outputs = [None] * n
        self.features = None

    def result(self) -> dict:
        """Means over the recorded batches (one host copy): the curves, ``overflow``, ``missing``
        and each per-batch predictor (NaN when it is missing)."""
        n = len(self.probes)
        if self._sums is None:
            raise RuntimeError("no batch was recorded")
        names = [p.name for p in self.predictors if p.name in self._values and p.name not in self.missing]
        values = (self._sums / self.batches).cpu().tolist()
        means = (torch.stack([self._values[k] for k in names]) / self.batches).cpu().tolist() if names else []
        variances, norms, nonfinite = values[:n], values[n:2 * n], values[2 * n]
        out = {"activation_variance": variances, "grad_norm": norms,
               "overflow": bool(nonfinite > 0 or not all(math.isfinite(v) for v in values)),
               "stages": list(self.stages), "missing": dict(self.missing)}
        for p in self.predictors:
            out[p.name] = math.nan
        out.update(zip(names, means))
        return out
