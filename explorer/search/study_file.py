"""Study files: TOML describing what to search, how to screen and how to train.

Every key is checked before anything is created in storage: an unknown key, a wrong type or
malformed TOML is one :class:`StudyFileError` line naming the file, the line and the key, e.g.
``studies/quick.toml:14: training.stpes: unknown key; closest: steps``. The README documents
every key; :data:`SCHEMA` is the single source of truth for them.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.errors import NormxError, suggestion

OBJECTIVE_NAMES = {
    # name: (where the value comes from, key, direction in which it gets worse)
    "test_accuracy": ("train", "test_accuracy", "minimize"),
    "mean_train_accuracy": ("train", "mean_train_accuracy", "minimize"),
    "final_loss": ("train", "final_loss", "maximize"),
    "wall_time_s": ("train", "wall_time_s", "maximize"),
    "cosine_similarity": ("predictors", "cosine_similarity", "maximize"),
    "grad_explosion_exponent": ("predictors", "grad_explosion_exponent", "maximize"),
    "stable_rank": ("predictors", "stable_rank", "minimize"),
}
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "nsga2", "random")
AGGREGATES = ("worst", "mean")
VARIANCE_GROWTH_KINDS = ("flat", "linear", "exponential")
DEFAULT_AXES = ["bx", "cx", "gx", "x"]
DEFAULT_GROUP_SIZES = [2, 4, 8, 16]


class StudyFileError(NormxError):
    """A study file that cannot be used; the message is one line with file, line and key."""


# --------------------------------------------------------------------------- schema
# Types: int, float (ints accepted), bool, str, "strs" (a string or a list of strings),
# "list" (a list of scalars), "table" (free keys, checked by the caller), dict (a sub-schema).

SCHEMA: dict[str, Any] = {
    "name": str,
    "description": str,
    "models": "strs",
    "seed": int,
    "n_trials": int,
    "sampler": str,
    "storage": str,
    "aggregate": str,
    "objectives": "table",
    "data": {"name": str, "train_limit": int, "test_limit": int, "seed": int},
    "space": {
        "presets": "strs",
        "fixed": str,
        "tie_axes": bool,
        "slots": "table",
        "params": "table",
    },
    "screening": {
        "batch_size": int,
        "batches": int,
        "seeds": int,
        "max_grad_explosion": float,
        "max_cosine_similarity": float,
        "reject_variance_growth": "strs",
        "prune_overflow": bool,
    },
    "training": {
        "steps": int,
        "epochs": float,
        "batch_size": int,
        "base_lr": float,
        "base_batch_size": int,
        "lr_rule": str,
        "momentum": float,
        "weight_decay": float,
        "decay_at": float,
        "augment": bool,
        "device": str,
    },
    "workers": {"heartbeat_interval": int, "grace_period": int, "max_retry": int},
}

REQUIRED = ("name", "models", "objectives")


@dataclass
class DataConfig:
    name: str = "synthetic"
    train_limit: int | None = 2048
    test_limit: int | None = 512
    seed: int = 0


@dataclass
class SpaceConfig:
    presets: list[str] = field(default_factory=list)
    fixed: str = ""
    tie_axes: bool = False
    #: slot -> allowed primitive names ("none" = the slot left empty, "*" = every registered one)
    slots: dict[str, list[str]] = field(default_factory=dict)
    #: parameter name -> values, for every primitive that takes that parameter
    params: dict[str, list[Any]] = field(default_factory=dict)
    #: primitive -> parameter name -> values (wins over ``params``)
    primitive_params: dict[str, dict[str, list[Any]]] = field(default_factory=dict)


@dataclass
class ScreeningConfig:
    batch_size: int = 64
    batches: int = 2
    seeds: int = 1
    max_grad_explosion: float | None = None
    max_cosine_similarity: float | None = None
    reject_variance_growth: list[str] = field(default_factory=lambda: ["exponential"])
    prune_overflow: bool = True


@dataclass
class TrainingConfig:
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 128
    base_lr: float = 0.1
    base_batch_size: int = 256
    lr_rule: str = "linear"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_at: float = 0.8
    augment: bool = True
    device: str = "auto"

    @property
    def enabled(self) -> bool:
        return not (self.steps == 0 or self.epochs == 0)


@dataclass
class WorkersConfig:
    heartbeat_interval: int = 60
    grace_period: int | None = None
    max_retry: int = 3


@dataclass
class StudyConfig:
    """A validated study file."""

    name: str
    models: list[str]
    objectives: dict[str, str]
    description: str = ""
    seed: int = 0
    n_trials: int = 20
    sampler: str = "tpe"
    storage: str | None = None
    aggregate: str = "worst"
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    screening: ScreeningConfig = field(default_factory=ScreeningConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    path: str = "<study>"
    text: str = ""

    @property
    def directions(self) -> list[str]:
        return list(self.objectives.values())

    def needs_training(self) -> bool:
        return self.training.enabled and any(OBJECTIVE_NAMES[o][0] == "train" for o in self.objectives)


# --------------------------------------------------------------------------- locating keys


#: (section, key) -> (lowest, highest, what to say): checked after the types, before anything runs.
RANGES: dict[tuple[str, str], tuple[float, float, str]] = {
    ("", "seed"): (0, 2**32 - 1, "between 0 and 2**32 - 1"),
    ("", "n_trials"): (1, math.inf, "at least 1"),
    ("data", "train_limit"): (1, math.inf, "at least 1"),
    ("data", "test_limit"): (1, math.inf, "at least 1"),
    ("data", "seed"): (0, 2**32 - 1, "between 0 and 2**32 - 1"),
    ("screening", "batch_size"): (1, math.inf, "at least 1"),
    ("screening", "batches"): (1, math.inf, "at least 1"),
    ("screening", "seeds"): (1, math.inf, "at least 1"),
    ("training", "steps"): (0, math.inf, "0 (screening only) or more"),
    ("training", "epochs"): (0, math.inf, "0 (screening only) or more"),
    ("training", "batch_size"): (1, math.inf, "at least 1"),
    ("training", "base_lr"): (0, math.inf, "0 or more"),
    ("training", "base_batch_size"): (1, math.inf, "at least 1"),
    ("training", "momentum"): (0, 1, "between 0 and 1"),
    ("training", "weight_decay"): (0, math.inf, "0 or more"),
    ("training", "decay_at"): (0, 1, "between 0 and 1 (a fraction of the run)"),
    ("workers", "heartbeat_interval"): (1, math.inf, "at least 1 (seconds)"),
    ("workers", "grace_period"): (1, math.inf, "at least 1 (seconds)"),
    ("workers", "max_retry"): (0, math.inf, "0 or more"),
}

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _split_dotted(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip('"').strip("'") for part in text.split("."))


def locate(text: str, path: tuple[str, ...]) -> int:
    """The 1-based line where the key ``path`` is written (best effort; 1 when not found)."""
    lines = text.splitlines()
    table: tuple[str, ...] = ()
    best = 0
    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header.group(1))
            if table == path:
                return number
            if path[:len(table)] == table and len(table) > 0 and not best:
                best = number
            continue
        key_match = re.match(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=", line)
        if not key_match:
            continue
        full = table + _split_dotted(key_match.group(1))
        if full == path or (len(full) < len(path) and path[:len(full)] == full):
            return number
    return best or 1


class _Checker:
    def __init__(self, path: str, text: str):
        self.path, self.text = path, text

    def fail(self, key: tuple[str, ...], message: str) -> StudyFileError:
        line = locate(self.text, key) if key else 1
        name = ".".join(key) if key else "(file)"
        return StudyFileError(f"{self.path}:{line}: {name}: {message}")

    def check_value(self, key: tuple[str, ...], kind: Any, value: Any) -> Any:
        def type_name(v: Any) -> str:
            return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
                    dict: "a table"}.get(type(v), type(v).__name__)

        if kind is bool:
            if not isinstance(value, bool):
                raise self.fail(key, f"must be true or false, got {type_name(value)}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(key, f"must be an integer, got {type_name(value)}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(key, f"must be a number, got {type_name(value)}")
            value = float(value)
        elif kind is str:
            if not isinstance(value, str):
                raise self.fail(key, f"must be a string, got {type_name(value)}")
        elif kind == "strs":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(key, f"must be a string or a list of strings, got {type_name(value)}")
        elif kind == "table":
            if not isinstance(value, dict):
                raise self.fail(key, f"must be a table, got {type_name(value)}")
        return value

    def check_table(self, prefix: tuple[str, ...], schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            path = (*prefix, key)
            if key not in schema:
                raise self.fail(path, f"unknown key; {suggestion(key, schema)}")
            kind = schema[key]
            if isinstance(kind, dict):
                if not isinstance(value, dict):
                    raise self.fail(path, "must be a table")
                out[key] = self.check_table(path, kind, value)
            else:
                out[key] = self.check_value(path, kind, value)
        return out


# --------------------------------------------------------------------------- loading


def parse_study_text(text: str, path: str = "<study>") -> StudyConfig:
    """Parse and check a study file's text (names of primitives are checked by the search space)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else max(1, len(text.splitlines()))
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise StudyFileError(f"{path}:{line}: malformed TOML: {message}") from None
    check = _Checker(path, text)
    data = check.check_table((), SCHEMA, raw)
    for key in REQUIRED:
        if key not in data:
            raise StudyFileError(f"{path}:1: {key}: missing required key")

    name = data["name"]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise check.fail(("name",), "use letters, digits, '_', '-' and '.' only")
    models = data["models"]
    if not models:
        raise check.fail(("models",), "name at least one model")

    objectives: dict[str, str] = {}
    for key, direction in data["objectives"].items():
        if key not in OBJECTIVE_NAMES:
            raise check.fail(("objectives", key), f"unknown objective; {suggestion(key, OBJECTIVE_NAMES)}")
        if direction not in DIRECTIONS:
            raise check.fail(("objectives", key), f"must be \"maximize\" or \"minimize\", got {direction!r}")
        objectives[key] = direction
    if not objectives:
        raise check.fail(("objectives",), "name at least one objective")

    config = StudyConfig(name=name, models=models, objectives=objectives, path=path, text=text)
    for key in ("description", "seed", "n_trials", "sampler", "storage", "aggregate"):
        if key in data:
            setattr(config, key, data[key])
    if config.sampler not in SAMPLERS:
        raise check.fail(("sampler",), f"must be one of {', '.join(SAMPLERS)}, got {config.sampler!r}")
    if config.aggregate not in AGGREGATES:
        raise check.fail(("aggregate",), f"must be one of {', '.join(AGGREGATES)}, got {config.aggregate!r}")

    config.data = DataConfig(**data.get("data", {}))
    config.screening = ScreeningConfig(**data.get("screening", {}))
    for kind in config.screening.reject_variance_growth:
        if kind not in VARIANCE_GROWTH_KINDS:
            raise check.fail(("screening", "reject_variance_growth"),
                             f"must list kinds among {', '.join(VARIANCE_GROWTH_KINDS)}, got {kind!r}")
    config.training = TrainingConfig(**data.get("training", {}))
    training = config.training
    if training.lr_rule not in ("linear", "constant"):
        raise check.fail(("training", "lr_rule"), f"must be \"linear\" or \"constant\", got {training.lr_rule!r}")
    config.workers = WorkersConfig(**data.get("workers", {}))
    sections = {"": config, "data": config.data, "screening": config.screening, "training": training,
                "workers": config.workers}
    for (section, key), (low, high, what) in RANGES.items():
        value = getattr(sections[section], key)
        if value is not None and not (low <= value <= high):
            raise check.fail((section, key) if section else (key,), f"must be {what}, got {value!r}")

    config.space = _parse_space(check, data.get("space", {}))
    if any(OBJECTIVE_NAMES[o][0] == "train" for o in objectives) and not training.enabled:
        first = next(o for o in objectives if OBJECTIVE_NAMES[o][0] == "train")
        raise check.fail(("objectives", first), "needs training, but training.steps is 0")
    return config


def _parse_space(check: _Checker, data: dict[str, Any]) -> SpaceConfig:
    from explorer.registry import SLOTS

    space = SpaceConfig(presets=data.get("presets", []), fixed=data.get("fixed", ""),
                        tie_axes=data.get("tie_axes", False))
    for slot, names in data.get("slots", {}).items():
        key = ("space", "slots", slot)
        if slot not in SLOTS:
            raise check.fail(key, f"unknown slot; slots: {', '.join(SLOTS)}")
        space.slots[slot] = check.check_value(key, "strs", names)
        if not space.slots[slot]:
            raise check.fail(key, "list at least one primitive (or \"none\")")
    for name, value in data.get("params", {}).items():
        key = ("space", "params", name)
        if isinstance(value, dict):
            table: dict[str, list[Any]] = {}
            for param, values in value.items():
                table[param] = _values(check, (*key, param), values)
            space.primitive_params[name] = table
        else:
            space.params[name] = _values(check, key, value)
    return space


def _values(check: _Checker, key: tuple[str, ...], values: Any) -> list[Any]:
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise check.fail(key, "list at least one value")
    for v in values:
        if not isinstance(v, (str, int, float, bool)):
            raise check.fail(key, f"values must be strings, numbers or booleans, got {type(v).__name__}")
    return values


def load_study_file(path: str | Path) -> StudyConfig:
    """Read and check a study file; a missing or unreadable file is a :class:`StudyFileError` too."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyFileError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StudyFileError(f"{path}: cannot read the study file: {err}") from None
    return parse_study_text(text, str(path))
