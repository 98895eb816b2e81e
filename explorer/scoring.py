"""``explorer.score``: every predictor for one normalizer on one model, averaged over batches and seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from explorer.compile import CompileController
from explorer.errors import NormxError
from explorer.models import canonical_model_name, create_model
from explorer.predictors import Recorder, grad_explosion_exponent, variance_growth
from explorer.records import OBJECTIVE_PREDICTORS
from explorer.spec import Spec, parse_spec

__all__ = ["ScoreError", "aggregate", "check_batch_size", "measure", "score"]


class ScoreError(NormxError, ValueError):
    """Inputs that cannot be scored (no batches, batch size 1 with batch statistics, ...)."""


def check_batch_size(spec: Spec, batch_size: int) -> None:
    """Refuse, before any compute, a batch the spec cannot normalize (batch statistics of one sample)."""
    if batch_size < 2 and spec.uses_batch_statistics():
        raise ScoreError(f"{spec} uses batch statistics, which need a batch size of at least 2 (got {batch_size})")


def _batches(inputs: Iterable[Any], device: torch.device, num_classes: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    """Materialize the caller's batches on the device; tensors without labels get seeded random labels."""
    out = []
    gen = torch.Generator().manual_seed(seed)
    for item in inputs:
        if isinstance(item, Tensor):
            x, y = item, None
        elif isinstance(item, (tuple, list)) and len(item) >= 1 and isinstance(item[0], Tensor):
            x, y = item[0], (item[1] if len(item) > 1 else None)
        else:
            raise ScoreError(f"inputs must be tensors or (x, y) pairs, got {type(item).__name__}")
        if y is None:
            y = torch.randint(0, num_classes, (x.shape[0],), generator=gen)
        out.append((x.to(device, torch.float32, non_blocking=True), torch.as_tensor(y).to(device, torch.long)))
    if not out:
        raise ScoreError("no input batches to score")
    return out


def _std(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) != len(values):
        return float("nan")
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def measure(model: nn.Module, batches: list[tuple[Tensor, Tensor]], compile: str | bool = False,
            planned: int | None = None) -> dict[str, Any]:
    """The predictors of one built model over the batches (train mode, no weight gradients).

    ``compile`` runs the generic layers compiled (explorer.compile); ``planned`` is how many passes
    the caller will run in all (later seeds reuse the compiled code), for ``"auto"`` to weigh.
    """
    was_training = model.training
    requires = [p.requires_grad for p in model.parameters()]
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with CompileController(model, compile, planned=planned or len(batches), device=batches[0][0].device) as \
                compiler, Recorder(model) as recorder:
            for x, y in batches:
                recorder.step(x.detach().requires_grad_(True), y)  # a new leaf: the caller's x is left alone
                compiler.pass_done()
            result = recorder.result()
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.train(was_training)
    result["grad_explosion_exponent"] = grad_explosion_exponent(result["grad_norm"])
    result["variance_growth"] = variance_growth(result["activation_variance"], result["stages"])
    return result


def score(spec: str | Spec, model: str | nn.Module = "cnn10", inputs: Iterable[Any] = (), seeds: int = 1,
          device: str | torch.device = "cpu", num_classes: int | None = None,
          compile: str | bool = "auto") -> dict[str, Any]:
    """Score a normalizer at initialization: every predictor, averaged over batches, then over seeds.

    ``model`` is a name in call form (built once per seed, seeds 0..seeds-1) or a built module
    (scored as it is, one seed). ``inputs`` is an iterable of batches: tensors (labels drawn at
    random, seeded) or (x, y) pairs. Overflow (inf/NaN) is reported in ``overflow``, not raised.
    ``compile``: "auto" (compile the generic layers when it pays), True or False (explorer.compile).
    """
    spec = parse_spec(spec)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScoreError("device cuda was asked for but torch sees no CUDA device")
    if seeds < 1:
        raise ScoreError(f"seeds must be at least 1, got {seeds}")
    classes = num_classes or 10
    batches = _batches(inputs, device, classes, seed=0)
    for x, _ in batches:
        check_batch_size(spec, x.shape[0])
    top = int(torch.stack([y.max() for _, y in batches]).max())  # one host sync, before measuring
    if num_classes is not None and top >= num_classes:
        raise ScoreError(f"labels reach {top} but num_classes is {num_classes}")
    classes = num_classes or max(10, top + 1)
    in_channels = batches[0][0].shape[1] if batches[0][0].dim() == 4 else 3
    runs = []
    if isinstance(model, nn.Module):
        built = model.to(device)
        model_name = getattr(model, "model_name", type(model).__name__)
        runs.append(measure(built, batches, compile))
        seeds = 1
    else:
        model_name = canonical_model_name(model)
        for seed in range(seeds):
            torch.manual_seed(seed)
            built = create_model(model, spec, num_classes=classes, in_channels=in_channels).to(device)
            runs.append(measure(built, batches, compile, planned=len(batches) * (seeds - seed)))
    return aggregate(runs, spec=str(spec), model=model_name, batches=len(batches), device=str(device))


def aggregate(runs: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """Mean over seeds of every field, the variance growth refitted on the mean curve, and the spread."""
    layers = len(runs[0]["activation_variance"])
    act = [_mean([r["activation_variance"][i] for r in runs]) for i in range(layers)]
    grads = [_mean([r["grad_norm"][i] for r in runs]) for i in range(layers)]
    out: dict[str, Any] = dict(fields)
    out.update({
        "cosine_similarity": _mean([r["cosine_similarity"] for r in runs]),
        "grad_explosion_exponent": _mean([r["grad_explosion_exponent"] for r in runs]),
        "stable_rank": _mean([r["stable_rank"] for r in runs]),
        "activation_variance": act,
        "grad_norm": grads,
        "variance_growth": variance_growth(act, runs[0]["stages"]),
        "overflow": any(r["overflow"] for r in runs),
        "seeds": len(runs),
    })
    out["spread"] = {key: _std([r[key] for r in runs]) for key in OBJECTIVE_PREDICTORS}
    out["spread"]["variance_growth_rate"] = _std([r["variance_growth"]["rate"] for r in runs])
    return out

