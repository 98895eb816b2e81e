"""``explorer.score``: every predictor for one normalizer on one model, averaged over batches and seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from explorer.compile import CompileController, parse_compile_mode
from explorer.errors import NormxError, PredictorError, plugin_failure
from explorer.models import create_model, resolve_model
from explorer.predictors import Recorder, SeedPass, failure_reason, too_small_batch
from explorer.records import DEFAULT_PREDICTORS, PREDICTOR_KEYS, to_float
from explorer.registry import PredictorEntry
from explorer.spec import Spec, parse_spec

if TYPE_CHECKING:
    from explorer.registry import Registry

__all__ = ["ScoreError", "ScoreRequest", "aggregate", "check_batch_size", "measure", "predictor_record",
           "resolve_predictors", "score"]


class ScoreError(NormxError, ValueError):
    """Inputs that cannot be scored (no batches, batch size 1 with batch statistics, ...)."""


def check_batch_size(spec: Spec, batch_size: int, registry: Registry | None = None) -> None:
    """Refuse, before any compute, a batch the spec cannot normalize (batch statistics of one sample)."""
    if batch_size < 2 and spec.uses_batch_statistics(registry):
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


@dataclass(frozen=True)
class ScoreRequest:
    """What to score, validated once: :meth:`create` checks every argument (``normx score`` builds
    it from its flags before loading any data), and :func:`score` trusts it."""

    spec: Spec
    #: the model in canonical call form (non-default parameters only); None for a built module
    model: str | None
    predictors: tuple[PredictorEntry, ...]
    seeds: int
    device: torch.device
    compile: str | bool
    registry: Registry

    @classmethod
    def create(cls, spec: str | Spec, model: str | None = "cnn10", predictors: str | Iterable[str] | None = None,
               seeds: int = 1, device: str | torch.device = "cpu", compile: str | bool = "auto",
               registry: Registry | None = None) -> ScoreRequest:
        """The request, or one :class:`NormxError` naming the first bad argument."""
        from explorer.plugins import get_registry  # entry points: loaded when something is scored

        registry = registry or get_registry()
        if seeds < 1:
            raise ScoreError(f"seeds must be at least 1, got {seeds}")
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ScoreError("device cuda was asked for but torch sees no CUDA device")
        return cls(spec=parse_spec(spec, registry), model=None if model is None else resolve_model(model, registry)[2],
                   predictors=tuple(resolve_predictors(predictors, registry)), seeds=seeds, device=device,
                   compile=parse_compile_mode(compile), registry=registry)

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse a batch the spec cannot normalize, before any data is loaded."""
        check_batch_size(self.spec, batch_size, self.registry)


def resolve_predictors(names: str | Iterable[str] | None = None,
                       registry: Registry | None = None) -> list[PredictorEntry]:
    """The registered predictors ``names`` asks for, in registration order.

    ``None`` or ``"default"`` is :data:`explorer.records.DEFAULT_PREDICTORS`, ``"all"`` every
    registered one; a string is comma-separated (``"snip, synflow"``), and ``default``/``all`` may
    be combined with names (``default,snip``). An unknown name raises :class:`PredictorError`
    listing the valid ones.
    """
    if registry is None:
        from explorer.plugins import get_registry  # entry points: loaded when predictors are chosen

        registry = get_registry()
    if names is None:
        names = ["default"]
    elif isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    wanted: list[str] = []
    for name in names:
        if name == "default":
            wanted += [n for n in DEFAULT_PREDICTORS if n in registry.predictors]
        elif name == "all":
            wanted += list(registry.predictors)
        elif name:
            wanted.append(registry.predictor(name).name)
    if not wanted:
        raise PredictorError(f"no predictors were asked for; valid: {', '.join(sorted(registry.predictors))}")
    order = predictor_order(registry.predictors)
    return [registry.predictors[n] for n in sorted(set(wanted), key=order.index)]


def predictor_order(names: Iterable[str]) -> list[str]:
    """The order predictors are listed, computed and stored in: the defaults first (the paper's
    four, the parameter count), then the others by name."""
    names = list(names)
    return [n for n in DEFAULT_PREDICTORS if n in names] + sorted(n for n in names if n not in DEFAULT_PREDICTORS)


def measure(model: nn.Module, batches: list[tuple[Tensor, Tensor]],
            predictors: Sequence[PredictorEntry] | str | Iterable[str] | None = None, compile: str | bool = False,
            planned: int | None = None) -> dict[str, Any]:
    """The predictors of one built model over the batches (train mode).

    One forward + backward per batch for every ``per="batch"`` predictor; weight gradients only
    when one of them needs them. Then each ``per="seed"`` predictor once. A predictor that fails
    is NaN in the result and its reason is under ``missing``. ``compile`` runs the generic layers
    compiled (explorer.compile); ``planned`` is how many passes the caller will run in all (later
    seeds reuse the compiled code), for ``"auto"`` to weigh.
    """
    entries = (list(predictors) if predictors and all(isinstance(p, PredictorEntry) for p in predictors)
               else resolve_predictors(predictors))  # type: ignore[arg-type]
    was_training = model.training
    requires = [p.requires_grad for p in model.parameters()]
    weight_gradients = any("weight_gradients" in p.needs for p in entries if p.per == "batch")
    model.train()
    for p in model.parameters():
        p.requires_grad_(weight_gradients and p.dim() >= 2)
    try:
        with CompileController(model, compile, planned=planned or len(batches), device=batches[0][0].device) as \
                compiler, Recorder(model, entries) as recorder:
            for x, y in batches:
                recorder.step(x.detach().requires_grad_(True), y)  # a new leaf: the caller's x is left alone
                compiler.pass_done()
            result = recorder.result()
        for p, r in zip(model.parameters(), requires):  # the model as built: parameter_count counts trainable ones
            p.requires_grad_(r)
        seed = SeedPass(model, batches, result["activation_variance"], result["grad_norm"], result["stages"])
        for entry in entries:
            if entry.per == "seed":
                result[entry.name] = _compute_seed(entry, seed, result["missing"])
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
        model.train(was_training)
    result["directions"] = {e.name: e.direction for e in entries}
    return result


def _compute_seed(entry: PredictorEntry, seed: SeedPass, missing: dict[str, str]) -> Any:
    """A ``per="seed"`` predictor's value, NaN (and its reason in ``missing``) when it fails."""
    too_small = too_small_batch(entry, min(int(x.shape[0]) for x, _ in seed.batches)) if seed.batches else None
    if too_small is not None:
        missing[entry.name] = too_small
        return math.nan
    try:
        value = entry.compute(seed)
    except BaseException as err:  # noqa: BLE001 - a predictor that fails (or exits) is missing, not a crash
        if not plugin_failure(err):
            raise  # a real Ctrl-C
        missing[entry.name] = failure_reason(err)
        return math.nan
    return value if isinstance(value, dict) else float(value)


def score(spec: str | Spec | ScoreRequest, model: str | nn.Module = "cnn10", inputs: Iterable[Any] = (),
          seeds: int = 1, device: str | torch.device = "cpu", num_classes: int | None = None,
          predictors: str | Iterable[str] | None = None, compile: str | bool = "auto") -> dict[str, Any]:
    """Score a normalizer at initialization: the predictors, averaged over batches, then over seeds.

    ``spec`` may be a :class:`ScoreRequest`, validated already: then ``model``, ``seeds``,
    ``device``, ``predictors`` and ``compile`` come from it (a built module as ``model`` still
    takes its place).

    ``model`` is a name in call form (built once per seed, seeds 0..seeds-1) or a built module
    (scored as it is, one seed). ``inputs`` is an iterable of batches: tensors (labels drawn at
    random, seeded) or (x, y) pairs. ``predictors`` names the registered predictors to compute
    (:func:`resolve_predictors`; default :data:`explorer.records.DEFAULT_PREDICTORS`). Overflow
    (inf/NaN) is reported in ``overflow``, not raised; a predictor that fails is NaN with its
    reason under ``missing``.
    ``compile``: "auto" (compile the generic layers when it pays), True or False (explorer.compile).
    """
    if isinstance(spec, ScoreRequest):
        request = spec
        if not isinstance(model, nn.Module):
            model = request.model
    else:
        request = ScoreRequest.create(spec, model if isinstance(model, str) else None, predictors, seeds, device,
                                      compile)
    spec, entries, device, seeds, compile = (request.spec, list(request.predictors), request.device, request.seeds,
                                             request.compile)
    classes = num_classes or 10
    batches = _batches(inputs, device, classes, seed=0)
    for x, _ in batches:
        request.check_batch_size(x.shape[0])
    top = int(torch.stack([y.max() for _, y in batches]).max())  # one host sync, before measuring
    if num_classes is not None and top >= num_classes:
        raise ScoreError(f"labels reach {top} but num_classes is {num_classes}")
    classes = num_classes or max(10, top + 1)
    in_channels = batches[0][0].shape[1] if batches[0][0].dim() == 4 else 3
    runs = []
    if isinstance(model, nn.Module):
        built = model.to(device)
        model_name = getattr(model, "model_name", type(model).__name__)
        runs.append(measure(built, batches, entries, compile))
        seeds = 1
    else:
        model_name = str(request.model)
        for seed in range(seeds):
            torch.manual_seed(seed)
            built = create_model(model_name, spec, num_classes=classes, in_channels=in_channels,
                                 registry=request.registry).to(device)
            runs.append(measure(built, batches, entries, compile, planned=len(batches) * (seeds - seed)))
    return aggregate(runs, spec=str(spec), model=model_name, batches=len(batches), device=str(device))


def aggregate(runs: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """Mean over seeds of every predictor and curve, with the spread.

    A predictor that failed on any seed is NaN, with its reason under ``missing``. A value that
    is not a number (variance growth: a kind and a rate) cannot be averaged: it is computed again
    on the seed-mean curves.
    """
    layers = len(runs[0]["activation_variance"])
    act = [_mean([r["activation_variance"][i] for r in runs]) for i in range(layers)]
    grads = [_mean([r["grad_norm"][i] for r in runs]) for i in range(layers)]
    directions: dict[str, str] = dict(runs[0].get("directions", {}))
    missing: dict[str, str] = {}
    for r in runs:
        for name, reason in r.get("missing", {}).items():
            missing.setdefault(name, reason)
    out: dict[str, Any] = dict(fields)
    out.update({"activation_variance": act, "grad_norm": grads,
                "overflow": any(r["overflow"] for r in runs), "seeds": len(runs)})
    spread: dict[str, float] = {}
    curves = SeedPass(None, [], act, grads, runs[0]["stages"])
    for name in directions:
        values = [r.get(name, math.nan) for r in runs]
        if name in missing:
            out[name] = math.nan
        elif any(isinstance(v, dict) for v in values):
            from explorer.plugins import get_registry

            out[name] = _compute_seed(get_registry().predictor(name), curves, missing)
            rates = [to_float(v.get("rate"), math.nan) if isinstance(v, dict) else math.nan for v in values]
            spread[f"{name}_rate"] = _std(rates)
        else:
            numbers = [to_float(v, math.nan) for v in values]
            out[name] = _mean(numbers)
            spread[name] = _std(numbers)
    out["missing"] = missing
    out["directions"] = directions
    out["spread"] = spread
    return out


def predictor_record(result: dict[str, Any]) -> dict[str, Any]:
    """The stored ``predictors`` record of a :func:`score` result (docs/trial-schema.md): the
    fixed fields and one key per computed predictor."""
    keys = [*PREDICTOR_KEYS, *result.get("directions", {})]
    return {k: result[k] for k in dict.fromkeys(keys) if k in result}
