"""How a study judges one composition: screening thresholds and aggregation over models.

Pure functions on the stored records (dicts as ``docs/trial-schema.md`` describes them, numbers
possibly the strings "inf"/"nan"), so each rule is tested on its own. With several models the
study sees the worst model by default: a composition is only as good as on its hardest model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from explorer.direction import Direction
from explorer.records import LAYER_PREDICTORS, VARIANCE_GROWTH_KINDS, record_directions, to_float
from explorer.search.schema import TrialAttr
from explorer.search.study_file import ScreeningConfig, StudyConfig, objective_source

Record = dict[str, Any]


def _number(value: Any) -> float:
    """A stored number that must be one (a measurement the worker just made)."""
    number = to_float(value)
    if number is None:
        raise ValueError(f"not a number: {value!r}")
    return number


def aggregate_predictors(by_model: dict[str, Record]) -> Record:
    """The predictors of the worst model for each key: the study's view of one composition.

    NaN counts as the worst value; the per-layer lists are those of the model whose gradients
    explode most, so that they stay one model's curves.
    """
    if len(by_model) == 1:
        return dict(next(iter(by_model.values())))
    rows = list(by_model.values())

    def worst(key: str, direction: Direction) -> Any:
        values = [r[key] for r in rows if key in r]
        return values[direction.worst_index([_number(v) for v in values])] if values else None

    out: Record = {key: worst(key, direction) for key, direction in record_directions(rows).items()}
    out["overflow"] = any(bool(r.get("overflow")) for r in rows)
    out["missing"] = {k: f"{m}: {v}" for m, r in by_model.items() for k, v in (r.get("missing") or {}).items()}
    out["directions"] = {k: v for r in rows for k, v in (r.get("directions") or {}).items()}
    explosions = [_number(r.get("grad_explosion_exponent", 0.0)) for r in rows]
    worst_model = max(range(len(rows)), key=lambda i: explosions[i] if not math.isnan(explosions[i]) else math.inf)
    for key in LAYER_PREDICTORS:
        out[key] = rows[worst_model].get(key, [])
    growths = [r.get("variance_growth") or {"kind": "flat", "rate": 0.0} for r in rows]
    out["variance_growth"] = max(growths, key=_growth_severity)
    spread: Record = {}
    for r in rows:
        for key, value in (r.get("spread") or {}).items():
            try:
                spread[key] = max(_number(spread.get(key, 0.0)), _number(value))
            except ValueError:
                spread[key] = value
    out["spread"] = spread
    return out


def _growth_severity(growth: Record) -> tuple[int, float]:
    kind = growth.get("kind")
    order = VARIANCE_GROWTH_KINDS.index(kind) if kind in VARIANCE_GROWTH_KINDS else 0
    return order, _number(growth.get("rate", 0.0))


def aggregate_training(by_model: dict[str, Record]) -> Record:
    """One ``train`` record for several models: worst accuracies, any divergence, summed time."""
    rows = list(by_model.values())
    if len(rows) == 1:
        return dict(rows[0])
    worst = min(range(len(rows)), key=lambda i: rows[i]["test_accuracy"])
    steps = [r["diverged_step"] for r in rows if r.get("diverged_step") is not None]
    return {
        "loss_curve": rows[worst]["loss_curve"],
        "mean_train_accuracy": min(r["mean_train_accuracy"] for r in rows),
        "test_accuracy": min(r["test_accuracy"] for r in rows),
        "diverged": any(r["diverged"] for r in rows),
        "diverged_step": min(steps) if steps else None,
        "wall_time_s": sum(r["wall_time_s"] for r in rows),
        "device": rows[0]["device"],
    }


def objective_values(config: StudyConfig, predictors_by_model: dict[str, Record],
                     train_by_model: dict[str, Record]) -> list[float]:
    """The study's objectives, each aggregated over models (worst case for its direction, or mean)."""
    values = []
    for name, direction in config.objectives.items():
        source, key, _ = objective_source(name)
        table = predictors_by_model if source == TrialAttr.PREDICTORS else train_by_model
        per_model = []
        for record in table.values():
            if key == "final_loss":
                curve = record.get("loss_curve") or [[0, math.inf]]
                # a diverged run's last loss is NaN; for the study it is the worst possible loss
                per_model.append(math.inf if record.get("diverged") else _number(curve[-1][1]))
            else:
                per_model.append(_number(record[key]))
        if config.aggregate == "mean":
            values.append(sum(per_model) / len(per_model))
        else:
            values.append(Direction.of(direction).worst(per_model))
    return values


def screening_verdict(screening: ScreeningConfig, by_model: dict[str, Record],
                      objectives: Iterable[str] = ()) -> str | None:
    """Why screening rejects the composition, or None when it passes every threshold and every
    objective measured at screening (a predictor named in ``objectives``) has a value: a NaN
    objective could never be told to Optuna, so the trial is pruned here, with the predictor's
    stored reason, instead of training and failing."""
    return _threshold_verdict(screening, by_model) or objective_verdict(objectives, by_model)


def objective_verdict(objectives: Iterable[str], by_model: dict[str, Record]) -> str | None:
    """Why an objective that is a predictor has no value on some model (NaN or absent), or None."""
    for name in objectives:
        source, key, _ = objective_source(name)
        if source != TrialAttr.PREDICTORS:
            continue
        for model, record in by_model.items():
            value = to_float(record.get(key))
            if value is None or math.isnan(value):
                why = (record.get("missing") or {}).get(key) or "no reason was recorded"
                return f"objective {key} is NaN on {model}: {why}"
    return None


def _threshold_verdict(screening: ScreeningConfig, by_model: dict[str, Record]) -> str | None:
    s = screening
    for model, p in by_model.items():
        if s.prune_overflow and p.get("overflow"):
            return f"NaN/inf at initialization on {model}"
        explosion = _number(p.get("grad_explosion_exponent", 0.0))
        if s.prune_overflow and math.isnan(explosion):
            return f"NaN gradient explosion exponent on {model}"
        if s.max_grad_explosion is not None and explosion > s.max_grad_explosion:
            return (f"gradient explosion exponent {explosion:.3g} > {s.max_grad_explosion:g} "
                    f"(screening.max_grad_explosion) on {model}")
        growth = p.get("variance_growth") or {}
        if growth.get("kind") in s.reject_variance_growth and (rate := _number(growth.get("rate", 0.0))) > 0:
            return (f"{growth.get('kind')} activation-variance growth (rate {rate:.3g}) "
                    f"on {model} (screening.reject_variance_growth)")
        cosine = _number(p.get("cosine_similarity", 0.0))
        if s.max_cosine_similarity is not None and cosine > s.max_cosine_similarity:
            return (f"cosine similarity {cosine:.3g} > {s.max_cosine_similarity:g} "
                    f"(screening.max_cosine_similarity) on {model}")
    return None
