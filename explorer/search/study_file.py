"""Study files: TOML describing what to search, how to screen and how to train.

Every key is checked before anything is created in storage: an unknown key, a wrong type or
malformed TOML is one :class:`StudyFileError` line naming the file, the line and the key, e.g.
``studies/quick.toml:14: training.stpes: unknown key; closest: steps``. The README documents
every key; the dataclasses below declare each key once (type, default, range), and
:data:`SCHEMA`, :data:`REQUIRED` and :data:`RANGES` are derived from them.
"""

from __future__ import annotations

import math
import re
import tomllib
import types
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from explorer.errors import NormxError, suggestion
from explorer.direction import Direction
from explorer.records import DEFAULT_DIRECTIONS, DEFAULT_PREDICTORS, PAPER_PREDICTORS, VARIANCE_GROWTH_KINDS
from explorer.registry import SLOTS
from explorer.search.schema import TrialAttr
from explorer.search.learned import MIN_TRIALS, check_prior_names
from explorer.search.screening import (COMBINED, COMBINED_PREDICTORS, LEARNED, POLICIES, SCORES, predictor_direction,
                                       score_predictors)

#: objective name -> (the trial attribute its value comes from, key, the way it is better)
OBJECTIVE_NAMES: dict[str, tuple[str, str, Direction]] = {
    "test_accuracy": (TrialAttr.TRAIN, "test_accuracy", Direction.HIGHER),
    "mean_train_accuracy": (TrialAttr.TRAIN, "mean_train_accuracy", Direction.HIGHER),
    "final_loss": (TrialAttr.TRAIN, "final_loss", Direction.LOWER),
    "wall_time_s": (TrialAttr.TRAIN, "wall_time_s", Direction.LOWER),
    **{key: (TrialAttr.PREDICTORS, key, better) for key, better in PAPER_PREDICTORS.items()},
}
DIRECTIONS = ("maximize", "minimize")
#: Predictors whose value is not a number (a kind and a rate): they cannot be objectives.
NOT_SCALAR = ("variance_growth",)
SAMPLERS = ("tpe", "nsga2", "random")
AGGREGATES = ("worst", "mean")
DEFAULT_AXES = ["bx", "cx", "gx", "x"]
DEFAULT_GROUP_SIZES = [2, 4, 8, 16]
#: ``[screening]`` keys that are inputs of every trial's measurement (the others decide what trains)
MEASURED_SCREENING_KEYS = ("batch_size", "batches", "seeds")
#: ``[training]`` keys that say where and how fast a run goes, not what it computes
RUN_ONLY_TRAINING_KEYS = ("device", "compile")
#: The longest study name Optuna's storages hold: its ``studies.study_name`` column is a
#: VARCHAR(512) (``optuna.storages._rdb.models.MAX_INDEXED_STRING_LENGTH``), which PostgreSQL enforces.
MAX_STUDY_NAME = 512


class StudyFileError(NormxError):
    """A study file that cannot be used; the message is one line with file, line and key."""


def scalar_predictor_names() -> list[str]:
    """Every registered predictor whose value is a number: what an objective or a criterion may name."""
    from explorer.plugins import get_registry

    return sorted(n for n, e in get_registry().predictors.items() if e.scalar)


def objective_source(name: str) -> tuple[str, str, Direction]:
    """(attribute, key, the way it is better) of an objective: a training measure, or any
    registered scalar predictor."""
    if name in OBJECTIVE_NAMES:
        return OBJECTIVE_NAMES[name]
    direction = predictor_direction(name)
    if direction is None:
        raise KeyError(name)
    return TrialAttr.PREDICTORS, name, direction


# --------------------------------------------------------------------------- the keys
# Every key is declared once, as a dataclass field: its type annotation is the type the file must
# give (``list[str]`` accepts one string too, ``dict`` is a table of free keys checked by the
# caller, a dataclass a section), its default the default, and ``metadata["range"]`` the range
# checked after the types. Fields with ``metadata["key"] = False`` are not keys of the file.

AT_LEAST_1 = (1, math.inf, "at least 1")
AT_LEAST_1_S = (1, math.inf, "at least 1 (seconds)")
AT_LEAST_0 = (0, math.inf, "0 or more")
A_SEED = (0, 2**32 - 1, "between 0 and 2**32 - 1")
A_FRACTION = (0, 1, "between 0 and 1")
A_SHARE = (0, 1, "greater than 0 and at most 1")
SCREENING_ONLY = (0, math.inf, "0 (screening only) or more")


def _ranged(default: Any, low: float, high: float, what: str) -> Any:
    """A key whose value must lie in [low, high]; ``what`` says so in the error message."""
    return field(default=default, metadata={"range": (low, high, what)})


def _not_a_key(**kwargs: Any) -> Any:
    return field(metadata={"key": False}, **kwargs)


def _compile_key() -> Any:
    """``compile = "auto" | true | false`` (explorer.compile): a key of its own schema kind."""
    return field(default="auto", metadata={"kind": "compile"})


@dataclass
class DataConfig:
    name: str = "synthetic"
    train_limit: int | None = _ranged(2048, *AT_LEAST_1)
    test_limit: int | None = _ranged(512, *AT_LEAST_1)
    seed: int = _ranged(0, *A_SEED)


@dataclass
class SpaceConfig:
    presets: list[str] = field(default_factory=list)
    fixed: str = ""
    tie_axes: bool = False
    #: slot -> allowed primitive names ("none" = the slot left empty, "*" = every registered one)
    slots: dict[str, list[str]] = field(default_factory=dict)
    #: parameter name -> values, for every primitive that takes that parameter
    params: dict[str, list[Any]] = field(default_factory=dict)
    #: primitive -> parameter name -> values (wins over ``params``; written as tables in ``params``)
    primitive_params: dict[str, dict[str, list[Any]]] = _not_a_key(default_factory=dict)


@dataclass
class ScreeningConfig:
    batch_size: int = _ranged(64, *AT_LEAST_1)
    batches: int = _ranged(2, *AT_LEAST_1)
    seeds: int = _ranged(1, *AT_LEAST_1)
    max_grad_explosion: float | None = None
    max_cosine_similarity: float | None = None
    reject_variance_growth: list[str] = field(default_factory=lambda: ["exponential"])
    prune_overflow: bool = True
    #: the predictors every candidate is scored with (``normx predictors``); an objective's are added
    predictors: list[str] = field(default_factory=lambda: ["default"])
    #: "relative" (rank against the candidates screened so far), "halving" (successive halving from
    #: initialization: explorer.search.halving) or "thresholds" (the keys above only)
    policy: str = "relative"
    #: halving: the share 1/eta of each rung goes on to the next
    eta: int = _ranged(3, 2, math.inf, "at least 2")
    #: halving: the steps of the first training rung (default training steps // eta**2)
    min_steps: int | None = _ranged(None, *AT_LEAST_1)
    #: trained trials before the relative policy starts ranking
    warmup: int = _ranged(4, *AT_LEAST_0)
    #: share of the screened candidates (by rank) that the relative policy trains
    top_fraction: float = _ranged(0.34, *A_SHARE)
    #: what the relative policy ranks by: "combined", "learned" or a stored predictor
    score: str = COMBINED
    #: the learned score: NormBench tables and earlier studies ("study:NAME") it also learns from
    prior: list[str] = field(default_factory=list)
    #: the learned score: trained trials (prior rows included) below which the combined score is used
    learned_min_trials: int = _ranged(MIN_TRIALS, 2, math.inf, "at least 2")
    #: also train a candidate no screened candidate dominates on cosine similarity and explosion
    keep_nondominated: bool = True
    compile: str | bool = _compile_key()


@dataclass
class TrainingConfig:
    """The ``[training]`` section: the fields of :class:`explorer.training.TrainConfig` a study sets."""

    steps: int | None = _ranged(None, *SCREENING_ONLY)
    epochs: float | None = _ranged(None, *SCREENING_ONLY)
    batch_size: int = _ranged(128, *AT_LEAST_1)
    base_lr: float = _ranged(0.1, *AT_LEAST_0)
    base_batch_size: int = _ranged(256, *AT_LEAST_1)
    lr_rule: str = "linear"
    momentum: float = _ranged(0.9, *A_FRACTION)
    weight_decay: float = _ranged(1e-4, *AT_LEAST_0)
    decay_at: float = _ranged(0.8, 0, 1, "between 0 and 1 (a fraction of the run)")
    augment: bool = True
    device: str = "auto"
    compile: str | bool = _compile_key()
    #: steps at which the run is measured on the way (test accuracy included): the curve NormBench
    #: tables record; steps past the run's length are ignored
    checkpoints: list[int] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return not (self.steps == 0 or self.epochs == 0)


@dataclass
class WorkersConfig:
    heartbeat_interval: int = _ranged(60, *AT_LEAST_1_S)
    grace_period: int | None = _ranged(None, *AT_LEAST_1_S)
    max_retry: int = _ranged(3, *AT_LEAST_0)
    #: the directory of the trials' training checkpoints (explorer.search.checkpoints); default:
    #: beside a file storage, or ./normx-artifacts/<study> for a server, which workers on several
    #: machines must then share: set this to the same shared path on each of them
    artifacts: str | None = None


@dataclass
class StudyConfig:
    """A validated study file."""

    name: str
    models: list[str]
    objectives: dict[str, str]
    description: str = ""
    seed: int = _ranged(0, *A_SEED)
    n_trials: int = _ranged(20, *AT_LEAST_1)
    sampler: str = "tpe"
    storage: str | None = None
    aggregate: str = "worst"
    data: DataConfig = field(default_factory=DataConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    screening: ScreeningConfig = field(default_factory=ScreeningConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    path: str = _not_a_key(default="<study>")
    text: str = _not_a_key(default="")

    @property
    def directions(self) -> list[str]:
        return list(self.objectives.values())

    def needs_training(self) -> bool:
        return self.training.enabled and any(objective_source(o)[0] == TrialAttr.TRAIN for o in self.objectives)

    def predictor_names(self) -> list[str]:
        """What screening computes: ``[screening] predictors``, every predictor an objective names,
        and every predictor the screening reads (the relative policy's score and the non-dominated
        rule, the thresholds that are set): a criterion is never judged on a value nobody computed."""
        named = [o for o in self.objectives if objective_source(o)[0] == TrialAttr.PREDICTORS]
        return list(dict.fromkeys([*self.screening.predictors, *named, *self.screening_reads()]))

    def screening_reads(self) -> list[str]:
        """The predictors the screening of this study reads to decide (:func:`predictor_names` adds them)."""
        s, out = self.screening, []
        if s.policy == "relative" and self.needs_training():
            out += score_predictors(s.score)
            if s.keep_nondominated:
                out += COMBINED_PREDICTORS
        if s.max_grad_explosion is not None:
            out.append("grad_explosion_exponent")
        if s.max_cosine_similarity is not None:
            out.append("cosine_similarity")
        if s.reject_variance_growth:
            out.append("variance_growth")
        return list(dict.fromkeys(out))

    def comparable_settings(self) -> dict[str, Any]:
        """``dotted key -> value`` of every setting that changes what a trial measures: the models
        (and, with several, how they are aggregated), the seed, the data, the screening's inputs and
        the predictors every trial computes, and the training run. A study resumed with another
        value would mix trials that cannot be compared, so it is refused (``create_or_load_study``);
        everything else (budget, workers, sampler, space, screening policy and thresholds, device,
        compilation) may change between runs."""
        out: dict[str, Any] = {"models": list(self.models), "seed": self.seed}
        if len(self.models) > 1:
            out["aggregate"] = self.aggregate
        out.update({f"data.{f.name}": getattr(self.data, f.name) for f in _keys(DataConfig)})
        out.update({f"screening.{key}": getattr(self.screening, key) for key in MEASURED_SCREENING_KEYS})
        out["screening.predictors"] = sorted(self.predictor_names())
        out.update({f"training.{f.name}": getattr(self.training, f.name) for f in _keys(TrainingConfig)
                    if f.name not in RUN_ONLY_TRAINING_KEYS})
        return out


def _keys(cls: type) -> list[Field[Any]]:
    return [f for f in fields(cls) if f.metadata.get("key", True)]


def _kind(annotation: Any) -> Any:
    """The schema type of a field's annotation (see :data:`SCHEMA`)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType):
        return _kind(args[0])
    if is_dataclass(annotation):
        return _schema(annotation)
    origin = get_origin(annotation)
    if origin is list:
        return "steps" if get_args(annotation) == (int,) else "strs"
    if origin is dict:
        return "table"
    return annotation


def _schema(cls: type) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: f.metadata.get("kind") or _kind(hints[f.name]) for f in _keys(cls)}


def _ranges(cls: type, section: str = "") -> dict[tuple[str, str], tuple[float, float, str]]:
    hints = get_type_hints(cls)
    out: dict[tuple[str, str], tuple[float, float, str]] = {}
    for f in _keys(cls):
        if "range" in f.metadata:
            out[(section, f.name)] = f.metadata["range"]
        elif is_dataclass(hints[f.name]):
            out.update(_ranges(hints[f.name], f.name))
    return out


# Types: int, float (ints accepted), bool, str, "strs" (a string or a list of strings), "steps"
# (a list of positive integers, increasing), "table" (free keys, checked by the caller), dict (a sub-schema).
SCHEMA: dict[str, Any] = _schema(StudyConfig)
#: The keys every study file must give: the fields without a default.
REQUIRED = tuple(f.name for f in _keys(StudyConfig) if f.default is MISSING and f.default_factory is MISSING)
#: (section, key) -> (lowest, highest, what to say): checked after the types, before anything runs.
RANGES: dict[tuple[str, str], tuple[float, float, str]] = _ranges(StudyConfig)


# --------------------------------------------------------------------------- locating keys

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
        return StudyFileError(f"{self.path}:{locate(self.text, key)}: {'.'.join(key)}: {message}")

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
        elif kind == "steps":
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                      for v in value):
                raise self.fail(key, f"must be a list of positive step counts, got {value!r}")
            if value != sorted(set(value)):
                raise self.fail(key, f"must list each step once, in increasing order, got {value!r}")
        elif kind == "table":
            if not isinstance(value, dict):
                raise self.fail(key, f"must be a table, got {type_name(value)}")
        elif kind == "compile":
            if not (isinstance(value, bool) or value == "auto"):
                raise self.fail(key, f"must be \"auto\", true or false, got {value!r}")
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
    if len(name) > MAX_STUDY_NAME:
        raise check.fail(("name",), f"at most {MAX_STUDY_NAME} characters (the longest study name an Optuna storage "
                                    f"holds), got {len(name)}")
    models = data["models"]
    if not models:
        raise check.fail(("models",), "name at least one model")

    objectives: dict[str, str] = {}
    for key, direction in data["objectives"].items():
        if key not in OBJECTIVE_NAMES and predictor_direction(key) is None:
            raise check.fail(("objectives", key), f"unknown objective; "
                                                  f"{suggestion(key, [*OBJECTIVE_NAMES, *scalar_predictor_names()])}")
        if direction not in DIRECTIONS:
            raise check.fail(("objectives", key), f"must be \"maximize\" or \"minimize\", got {direction!r}")
        objectives[key] = direction
    if not objectives:
        raise check.fail(("objectives",), "name at least one objective")

    config = StudyConfig(name=name, models=models, objectives=objectives, path=path, text=text)
    for key, kind in SCHEMA.items():  # the top-level keys that are neither required nor a section
        if key in data and key not in REQUIRED and not isinstance(kind, dict):
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
    config.screening.predictors = _predictor_list(check, ("screening", "predictors"), config.screening.predictors)
    screening = config.screening
    if screening.policy not in POLICIES:
        raise check.fail(("screening", "policy"), f"must be one of {', '.join(POLICIES)}, got {screening.policy!r}")
    if screening.score not in (COMBINED, LEARNED) and predictor_direction(screening.score) is None:
        names = [COMBINED, LEARNED, *sorted(set(SCORES) - {COMBINED, LEARNED} | set(scalar_predictor_names()))]
        raise check.fail(("screening", "score"), f"unknown score {screening.score!r}; {suggestion(screening.score, names)}")
    if screening.prior:
        if screening.score != LEARNED:
            raise check.fail(("screening", "prior"), f"only the learned score learns from a prior (score = \"{LEARNED}\"), "
                                                     f"and the score is {screening.score!r}")
        problem = check_prior_names(screening.prior)
        if problem:
            raise check.fail(("screening", "prior"), problem)
    if screening.top_fraction <= 0:
        raise check.fail(("screening", "top_fraction"), f"must be {A_SHARE[2]}, got {screening.top_fraction!r}")
    config.training = TrainingConfig(**data.get("training", {}))
    training = config.training
    if screening.policy == "halving" and not training.steps:
        raise check.fail(("screening", "policy"), "halving counts its rungs in steps: give training.steps "
                                                  "(at least 1; not epochs)")
    if screening.policy == "halving" and screening.min_steps is not None and training.steps \
            and screening.min_steps > training.steps:
        raise check.fail(("screening", "min_steps"),
                         f"must be at most training.steps ({training.steps}), got {screening.min_steps}")
    if training.lr_rule not in ("linear", "constant"):
        raise check.fail(("training", "lr_rule"), f"must be \"linear\" or \"constant\", got {training.lr_rule!r}")
    config.workers = WorkersConfig(**data.get("workers", {}))
    sections = {"": config, "data": config.data, "screening": config.screening, "training": training,
                "workers": config.workers}
    for section, values in sections.items():  # inf passes "0 or more", and a NaN threshold never prunes
        for key, value in vars(values).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise check.fail((section, key) if section else (key,), f"must be a finite number, got {value!r}")
    for (section, key), (low, high, what) in RANGES.items():
        value = getattr(sections[section], key)
        if value is not None and not (low <= value <= high):
            raise check.fail((section, key) if section else (key,), f"must be {what}, got {value!r}")
    if training.steps is not None and training.epochs is not None:
        raise check.fail(("training", "epochs"), "give steps or epochs, not both")
    if config.storage is not None and not config.storage.strip():
        raise check.fail(("storage",), "empty storage; give a URL or a file, or leave the key out")
    if config.workers.artifacts is not None and not config.workers.artifacts.strip():
        raise check.fail(("workers", "artifacts"), "empty directory; give a path, or leave the key out")

    config.space = _parse_space(check, data.get("space", {}))
    if any(objective_source(o)[0] == TrialAttr.TRAIN for o in objectives) and not training.enabled:
        first = next(o for o in objectives if objective_source(o)[0] == TrialAttr.TRAIN)
        length = "steps" if training.steps == 0 else "epochs"
        raise check.fail(("objectives", first), f"needs training, but training.{length} is 0")
    return config


def _predictor_list(check: _Checker, key: tuple[str, ...], names: list[str]) -> list[str]:
    """``[screening] predictors`` with ``default`` and ``all`` expanded (as ``normx score
    --predictors`` does); an unknown name is one line listing the valid ones."""
    out: list[str] = []
    for name in names:
        if name == "default":
            out += DEFAULT_PREDICTORS
        elif name in DEFAULT_DIRECTIONS or name in NOT_SCALAR:
            out.append(name)
        else:
            from explorer.plugins import get_registry  # "all" or a plugin's predictor: load the plugins
            from explorer.registry import unknown_predictor_message

            registry = get_registry()
            if name == "all":
                out += list(registry.predictors)
            elif name in registry.predictors:
                out.append(name)
            else:
                raise check.fail(key, unknown_predictor_message(name, registry.predictors))
    return list(dict.fromkeys(out))


def _parse_space(check: _Checker, data: dict[str, Any]) -> SpaceConfig:
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
