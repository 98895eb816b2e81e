"""Measurements as they are stored: the predictor and training records, JSON-safe numbers.

Core (no optuna): ``explorer.score`` and ``normx score`` write these records as much as the
search does, so the predictor names and the one encoder/decoder for non-finite floats live here,
and :mod:`explorer.search.schema` (the trial schema in code) builds on them. JSON has no
``inf``/``nan``: they are stored as the strings ``"inf"``, ``"-inf"``, ``"nan"``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, overload

from explorer.direction import Direction


def json_safe(value: Any) -> Any:
    """Floats that JSON cannot hold become "inf", "-inf", "nan"; tensors and tuples plain lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if hasattr(value, "item"):
        return json_safe(value.item())
    return str(value)


@overload
def to_float(value: Any) -> float | None: ...
@overload
def to_float(value: Any, default: float) -> float: ...


def to_float(value: Any, default: float | None = None) -> float | None:
    """A stored number as a float ("inf", "-inf", "nan" strings included); ``default`` when it is no number."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return default
    return default


#: The paper's scalar predictors (Lubana et al.), each with the way it is better: the fixed fields
#: of :class:`Predictors`, and what screening, aggregation over models and the study file's
#: objectives know without loading a plugin.
PAPER_PREDICTORS: dict[str, Direction] = {
    "cosine_similarity": Direction.LOWER,
    "grad_explosion_exponent": Direction.LOWER,
    "stable_rank": Direction.HIGHER,
}
#: The predictors ``normx score``, ``explorer.score`` and every study compute unless told otherwise:
#: the paper's four (one forward + backward, no weight gradients) and the parameter count, the
#: baseline every predictor must beat (docs/predictors.md, "Choosing predictors").
DEFAULT_PREDICTORS: tuple[str, ...] = (
    "cosine_similarity", "grad_explosion_exponent", "stable_rank", "variance_growth", "parameter_count",
)
#: Which way each default predictor is better: known without loading the plugins (reading a study
#: file stays cheap), and for records stored before they said so themselves (a record's
#: ``directions`` wins). Every other predictor's direction is its plugin's.
DEFAULT_DIRECTIONS: dict[str, Direction] = {
    **PAPER_PREDICTORS, "variance_growth_rate": Direction.LOWER, "parameter_count": Direction.HIGHER,
}
#: Every scalar predictor, in the order reports show them (the variance growth's rate included).
SCALAR_PREDICTORS: tuple[str, ...] = (*PAPER_PREDICTORS, "variance_growth_rate")
#: Per-layer predictors, in forward order.
LAYER_PREDICTORS: tuple[str, ...] = ("activation_variance", "grad_norm")
#: The kinds of activation-variance growth, from harmless to worst.
VARIANCE_GROWTH_KINDS: tuple[str, ...] = ("flat", "linear", "exponential")


@dataclass
class Predictors:
    """The init predictors of one composition on one model (the ``predictors`` trial attribute)."""

    cosine_similarity: float = math.nan
    grad_explosion_exponent: float = math.nan
    stable_rank: float = math.nan
    activation_variance: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    variance_growth: dict[str, Any] = field(default_factory=lambda: {"kind": "flat", "rate": 0.0})
    overflow: bool = False
    spread: dict[str, float] = field(default_factory=dict)
    #: predictor name -> why it could not be computed (its value is NaN)
    missing: dict[str, str] = field(default_factory=dict)
    #: predictor name -> which way it is better ("lower" or "higher" when stored), for every predictor computed
    directions: dict[str, str] = field(default_factory=dict)
    #: every other registered predictor's value (parameter_count, snip, ...), stored as a key of
    #: its own beside the fixed ones
    extra: dict[str, float] = field(default_factory=dict)

    def to_attrs(self) -> dict[str, Any]:
        """The JSON-safe form stored in a trial: the fixed keys, then one key per extra predictor."""
        out = asdict(self)
        extra = out.pop("extra")
        return json_safe({**out, **extra})

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> Predictors:
        """The record of a stored (or freshly scored) dict; keys it does not know are ignored."""
        def number(v: Any) -> float:
            return to_float(v, math.nan)

        out = cls()
        for key in ("cosine_similarity", "grad_explosion_exponent", "stable_rank"):
            if key in attrs:
                setattr(out, key, number(attrs[key]))
        for key in LAYER_PREDICTORS:
            if isinstance(attrs.get(key), list):
                setattr(out, key, [number(v) for v in attrs[key]])
        growth = attrs.get("variance_growth")
        if isinstance(growth, dict):
            out.variance_growth = {"kind": str(growth.get("kind", "flat")), "rate": number(growth.get("rate", 0.0))}
        out.overflow = bool(attrs.get("overflow", False))
        if isinstance(attrs.get("spread"), dict):
            out.spread = {str(k): number(v) for k, v in attrs["spread"].items()}
        for key in ("missing", "directions"):
            if isinstance(attrs.get(key), dict):
                setattr(out, key, {str(k): str(v) for k, v in attrs[key].items()})
        out.extra = {k: number(v) for k, v in attrs.items()
                     if k not in PREDICTOR_KEYS and to_float(v) is not None}
        return out


def predictor_value(record: dict[str, Any], name: str) -> float | None:
    """A stored predictor as a number: a scalar, or the rate of ``<name>_rate`` for a
    dict-valued one (``variance_growth_rate``); None when the record does not hold it."""
    if name.endswith("_rate") and isinstance(record.get(name[:-5]), dict):
        return to_float(record[name[:-5]].get("rate"))
    return to_float(record.get(name))


def scalar_predictors(record: dict[str, Any]) -> list[str]:
    """The names of the scalar predictors a stored record holds, in its order (a dict-valued one,
    variance growth, as its ``_rate``)."""
    out = []
    for key, value in record.items():
        if key in ("activation_variance", "grad_norm", "overflow", "spread", "missing", "directions"):
            continue
        if isinstance(value, dict) and "rate" in value:
            out.append(f"{key}_rate")
        elif to_float(value) is not None:
            out.append(key)
    return out


def record_directions(records: list[dict[str, Any]]) -> dict[str, Direction]:
    """The scalar predictors of some stored records, each with the way it is better: the paper's,
    then those the records' ``directions`` name (a dict-valued one, variance growth, left out)."""
    out = dict(PAPER_PREDICTORS)
    for record in records:
        for name, direction in (record.get("directions") or {}).items():
            if not isinstance(record.get(name), dict) and (parsed := Direction.parse(direction)) is not None:
                out.setdefault(name, parsed)
    return out


def direction_of(record: dict[str, Any], name: str) -> Direction | None:
    """Which way a stored predictor is better, or None when unknown."""
    directions = record.get("directions") if isinstance(record.get("directions"), dict) else {}
    base = name[:-5] if name.endswith("_rate") and name[:-5] in directions else name
    return Direction.parse(directions.get(base)) or DEFAULT_DIRECTIONS.get(name)


#: The fixed keys of a stored predictor record (docs/trial-schema.md); each extra predictor adds its own.
PREDICTOR_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Predictors) if f.name != "extra")


@dataclass
class TrainResult:
    """What a training run measured (:func:`explorer.training.train`); ``to_attrs()`` is the
    ``train`` user attribute of a trial."""

    loss_curve: list[list[float]] = field(default_factory=list)
    mean_train_accuracy: float = 0.0
    test_accuracy: float = 0.0
    diverged: bool = False
    diverged_step: int | None = None
    wall_time_s: float = 0.0
    device: str = "cpu"
    steps: int = 0
    #: whether the run's generic layers ran compiled, and why (explorer.compile)
    compile: str = ""
    #: the run measured on the way (``TrainConfig.checkpoints``): step, train_loss (mean since the
    #: previous checkpoint), mean_train_accuracy (so far), test_accuracy, train_s (training seconds
    #: so far, evaluations not counted)
    checkpoints: list[dict[str, float]] = field(default_factory=list)
    #: the step at which a checkpoint callback stopped the run (``train(on_checkpoint=...)``), so a
    #: short run is never mistaken for a finished one; None when it ran to its end (or diverged)
    stopped_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_attrs(self) -> dict[str, Any]:
        """The JSON-safe form stored in a trial (a diverged run's NaN losses as "nan")."""
        return json_safe(asdict(self))

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TrainResult:
        """The record of a stored ``train`` dict; missing keys keep their defaults."""
        def number(key: str, default: float) -> float:
            return to_float(attrs.get(key), default)

        curve = attrs.get("loss_curve") if isinstance(attrs.get("loss_curve"), list) else []
        step = attrs.get("diverged_step")
        stopped = attrs.get("stopped_at")
        return cls(
            loss_curve=[[float(p[0]), to_float(p[1], math.nan)] for p in curve
                        if isinstance(p, (list, tuple)) and len(p) == 2],
            mean_train_accuracy=number("mean_train_accuracy", 0.0),
            test_accuracy=number("test_accuracy", 0.0),
            diverged=bool(attrs.get("diverged", False)),
            diverged_step=int(step) if isinstance(step, int) else None,
            wall_time_s=number("wall_time_s", 0.0),
            device=str(attrs.get("device", "cpu")),
            steps=int(attrs.get("steps", 0) or 0),
            compile=str(attrs.get("compile", "")),
            checkpoints=[{str(k): to_float(v, math.nan) for k, v in c.items()}
                         for c in attrs.get("checkpoints") or [] if isinstance(c, dict)],
            stopped_at=stopped if isinstance(stopped, int) and not isinstance(stopped, bool) else None,
        )
