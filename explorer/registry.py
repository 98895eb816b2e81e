"""The registry of primitives, presets, models and predictors, filled by plugins through pluggy hooks.

Plain data: a :class:`Primitive` says which slot it fills, which parameters it takes and how to
build its module; a :class:`Preset` is a named spec in call form; a :class:`PredictorEntry` says
what a predictor at initialization needs and which way is better. Nothing here builds modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from explorer.axes import parse_axes
from explorer.direction import Direction
from explorer.errors import PluginError, PredictorError, SpecError, closest, unknown_name_message

if TYPE_CHECKING:
    from torch import nn

#: The slots of a composition, in the order they are applied and written.
SLOTS: tuple[str, ...] = ("weight", "center", "scale", "gate", "bound", "affine", "activation", "regularizer")

SLOT_DOCS: dict[str, str] = {
    "weight": "weight-space normalization of the layer's conv/linear weight",
    "center": "subtract a mean (the numerator's shift)",
    "scale": "divide by a statistic (std, RMS, ...)",
    "gate": "multiply the numerator by a learned gate",
    "bound": "an elementwise bounded map with learnable scalars (tanh(α·y), erf(α·y + s)): DyT, Derf",
    "affine": "per-channel gain and bias",
    "activation": "the nonlinearity after the normalizer",
    "regularizer": "a loss term added to the training loss",
}


@dataclass(frozen=True)
class Param:
    """One parameter of a primitive or preset: its type, default and allowed values."""

    name: str
    type: type | str  # int, float, bool, str, or "axes"
    default: Any = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""
    #: the smallest value allowed (numbers only), e.g. 0 for an eps; a float with a minimum must
    #: also be finite (a primitive with its own ``check`` may say more about the others)
    minimum: float | None = None

    def coerce(self, value: Any, owner: str) -> Any:
        """Turn a parsed literal into this parameter's type, or raise a SpecError naming it."""
        if value is None:
            return None
        try:
            if self.type == "axes":
                value = parse_axes(value)
            elif self.type is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false"):
                        raise ValueError(value)
                    value = value.lower() == "true"
                if value not in (True, False):  # 0 and 1 are booleans too; 2 is a mistake
                    raise ValueError(value)
                value = bool(value)
            elif self.type is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                if isinstance(value, bool):
                    raise ValueError(value)
                value = int(value)
            elif self.type is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                value = float(value)
                if self.minimum is not None and not math.isfinite(value):  # nan passes "value < minimum"
                    raise SpecError(f"{owner}: parameter {self.name!r} must be a finite number, got {value!r}")
            elif self.type is str:
                value = str(value)
        except (TypeError, ValueError) as err:
            if isinstance(err, SpecError):
                raise
            tname = self.type if isinstance(self.type, str) else self.type.__name__
            raise SpecError(f"{owner}: parameter {self.name!r} must be {tname}, got {value!r}") from None
        if self.minimum is not None and value < self.minimum:
            raise SpecError(f"{owner}: parameter {self.name!r} must be at least {self.minimum:g}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise SpecError(
                f"{owner}: parameter {self.name!r} must be one of "
                f"{', '.join(map(str, self.choices))}; got {value!r}"
            )
        return value


@dataclass(frozen=True)
class Primitive:
    """A building block of normalizers, contributed by a plugin.

    ``factory(channels, **params)`` returns the step's ``nn.Module``; what the module computes
    depends on the slot (see ``docs/plugins.md``). ``canonicalize(params)`` may rewrite the
    parameters into one canonical spelling (GN with one group is LN) and returns
    ``(name, params)``; ``check(params)`` raises :class:`SpecError` for invalid combinations.

    Two declarations tell the core what it cannot read from the parameters, so that it never has
    to know a primitive by name: ``reads_batch_statistics`` and ``is_identity``.
    """

    name: str
    slot: str
    factory: Callable[..., nn.Module]
    params: tuple[Param, ...] = ()
    formula: str = ""
    doc: str = ""
    canonicalize: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]] | None = None
    check: Callable[[dict[str, Any]], None] | None = None
    #: Names of positional parameters, in order (``mean(bx)`` means ``mean(axes=bx)``).
    positional: tuple[str, ...] = ()
    #: The step reduces over the batch whatever its parameters say (EvoNorm-B0's max), so it cannot
    #: normalize a batch of one sample in training. A step whose ``axes`` contain ``b`` needs no flag.
    reads_batch_statistics: bool = False
    #: The step is "nothing": written after a preset (``bn | identity``) it empties the preset's slot,
    #: and a search drawing from every primitive of the slot (``"*"``) leaves it out (``none`` says it).
    is_identity: bool = False
    plugin: str = ""

    def __post_init__(self) -> None:
        if self.slot not in SLOTS:
            raise PluginError(f"primitive {self.name!r}: unknown slot {self.slot!r} (slots: {', '.join(SLOTS)})")
        if self.name != self.name.lower() or not self.name.replace("_", "").isalnum():
            raise PluginError(f"primitive {self.name!r}: names are lower-case letters, digits and '_'")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class Preset:
    """A named normalizer: ``expand(**params)`` returns a spec string made of primitives."""

    name: str
    expand: Callable[..., str]
    params: tuple[Param, ...] = ()
    formula: str = ""
    doc: str = ""
    plugin: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class ModelEntry:
    """A model architecture, contributed by a plugin and named in call form: ``plaincnn(depth=30)``.

    ``factory(spec, num_classes=..., in_channels=..., **params)`` returns the model (a
    :class:`explorer.models.NormxModel`, so that the predictors find its probes and head) with every
    normalization site built from ``spec``. ``params`` are bound and coerced like a primitive's.
    """

    name: str
    factory: Callable[..., nn.Module]
    #: The model's parameters in call form, in positional order; defaults fill the ones not given.
    params: tuple[Param, ...] = ()
    description: str = ""
    plugin: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


#: What a predictor can ask of the measurement (``PredictorEntry.needs``): the probes' outputs and
#: the classifier's input, d loss / d probe output, d loss / d layer weight (the shared backward
#: then computes them too), or a pass of its own (it runs the model itself).
PREDICTOR_NEEDS: tuple[str, ...] = ("activations", "output_gradients", "weight_gradients", "separate_pass")
#: When a predictor is computed (``PredictorEntry.per``).
PREDICTOR_SCOPES: tuple[str, ...] = ("batch", "seed")
#: Keys a predictor record already uses for something else (docs/trial-schema.md), and the
#: training measures a study's objectives name: no predictor may take them.
RESERVED_PREDICTOR_NAMES: tuple[str, ...] = (
    "activation_variance", "grad_norm", "overflow", "spread", "missing", "directions", "stages",
    "variance_growth_rate", "combined", "test_accuracy", "mean_train_accuracy", "final_loss", "wall_time_s",
)


@dataclass(frozen=True)
class PredictorEntry:
    """A predictor at initialization, contributed by a plugin (``normx predictors`` lists them).

    ``compute`` receives what the measurement gives (:mod:`explorer.predictors`): with
    ``per="batch"`` a :class:`explorer.predictors.BatchPass` once per batch, after the shared
    forward + backward (its value is averaged over batches, then over seeds); with ``per="seed"`` a
    :class:`explorer.predictors.SeedPass` once per built model, after every batch (averaged over
    seeds). It returns a number (a 0-d tensor may stay on the device); ``scalar=False`` marks a
    value that is a dict (variance growth: kind and rate) and cannot be an objective. An exception
    records the predictor as missing with its reason; the other predictors are kept.
    """

    name: str
    #: which way is better: "lower" or "higher" (a :class:`~explorer.direction.Direction` once registered)
    direction: Direction
    compute: Callable[[Any], Any]
    needs: tuple[str, ...] = ()
    doc: str = ""
    per: str = "batch"
    #: where the predictor comes from (a paper), shown by ``normx predictors --json``
    reference: str = ""
    scalar: bool = True
    plugin: str = ""
    #: the fewest samples a batch must hold for the value to mean something (2 for a predictor that
    #: compares samples: a cosine similarity, a kernel over the batch); with smaller batches the
    #: predictor is missing, with that reason, instead of a number that means nothing
    min_batch: int = 1

    def __post_init__(self) -> None:
        if self.name != self.name.lower() or not self.name.replace("_", "").isalnum():
            raise PluginError(f"predictor {self.name!r}: names are lower-case letters, digits and '_'")
        if self.name in RESERVED_PREDICTOR_NAMES:
            raise PluginError(f"predictor {self.name!r}: the name is taken by a stored field or a training measure")
        if self.direction not in (Direction.LOWER.value, Direction.HIGHER.value):
            raise PluginError(f"predictor {self.name!r}: direction must be 'lower' or 'higher' (which is better), "
                              f"got {self.direction!r}")
        object.__setattr__(self, "direction", Direction.of(self.direction))
        if self.per not in PREDICTOR_SCOPES:
            raise PluginError(f"predictor {self.name!r}: per must be 'batch' or 'seed', got {self.per!r}")
        unknown = [n for n in self.needs if n not in PREDICTOR_NEEDS]
        if unknown:
            raise PluginError(f"predictor {self.name!r}: unknown need {unknown[0]!r} (needs: {', '.join(PREDICTOR_NEEDS)})")
        if not callable(self.compute):
            raise PluginError(f"predictor {self.name!r}: compute must be callable")
        if isinstance(self.min_batch, bool) or not isinstance(self.min_batch, int) or self.min_batch < 1:
            raise PluginError(f"predictor {self.name!r}: min_batch must be an integer of at least 1, "
                              f"got {self.min_batch!r}")


#: What a plugin registers through one of the hooks.
Registrable = Primitive | Preset | ModelEntry | PredictorEntry


@dataclass
class Registry:
    """Everything the loaded plugins contributed, by name."""

    primitives: dict[str, Primitive] = field(default_factory=dict)
    presets: dict[str, Preset] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    predictors: dict[str, PredictorEntry] = field(default_factory=dict)
    #: plugin name -> version, for every plugin that loaded
    plugin_versions: dict[str, str] = field(default_factory=dict)
    #: plugin name -> load error, for every plugin that failed to load
    failed: dict[str, str] = field(default_factory=dict)

    def _add(self, table: dict[str, Any], kind: str, item: Registrable) -> None:
        existing = table.get(item.name)
        if existing is not None:
            raise PluginError(
                f"{kind} {item.name!r} is registered twice: by plugin {existing.plugin!r} "
                f"and by plugin {item.plugin!r}"
            )
        if kind in ("primitive", "preset") and (item.name in self.primitives or item.name in self.presets):
            other = self.primitives.get(item.name) or self.presets.get(item.name)
            raise PluginError(
                f"{kind} {item.name!r} from plugin {item.plugin!r} clashes with the "
                f"{'primitive' if item.name in self.primitives else 'preset'} of plugin {other.plugin!r}"
            )
        table[item.name] = item

    def add_primitive(self, primitive: Primitive) -> None:
        self._add(self.primitives, "primitive", primitive)

    def add_preset(self, preset: Preset) -> None:
        self._add(self.presets, "preset", preset)

    def add_model(self, model: ModelEntry) -> None:
        self._add(self.models, "model", model)

    def add_predictor(self, predictor: PredictorEntry) -> None:
        self._add(self.predictors, "predictor", predictor)

    def primitive(self, name: str) -> Primitive:
        try:
            return self.primitives[name]
        except KeyError:
            raise SpecError(
                unknown_name_message("primitive or preset", name, [*self.primitives, *self.presets])
            ) from None

    def model(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            raise SpecError(unknown_name_message("model", name, self.models)) from None

    def predictor(self, name: str) -> PredictorEntry:
        try:
            return self.predictors[name]
        except KeyError:
            raise PredictorError(unknown_predictor_message(name, self.predictors)) from None

    def by_slot(self) -> Mapping[str, list[Primitive]]:
        out: dict[str, list[Primitive]] = {slot: [] for slot in SLOTS}
        for prim in self.primitives.values():
            out[prim.slot].append(prim)
        return out

    def contributions(self) -> dict[str, dict[str, list[str]]]:
        """plugin -> {slot or 'presets'/'models' -> names}; what ``normx plugins`` shows."""
        out: dict[str, dict[str, list[str]]] = {name: {} for name in self.plugin_versions}
        for prim in self.primitives.values():
            out.setdefault(prim.plugin, {}).setdefault(prim.slot, []).append(prim.name)
        for preset in self.presets.values():
            out.setdefault(preset.plugin, {}).setdefault("presets", []).append(preset.name)
        for model in self.models.values():
            out.setdefault(model.plugin, {}).setdefault("models", []).append(model.name)
        for predictor in self.predictors.values():
            out.setdefault(predictor.plugin, {}).setdefault("predictors", []).append(predictor.name)
        return out


def unknown_predictor_message(name: str, valid: Any) -> str:
    """``unknown predictor 'snp'; closest: snip; valid: cosine_similarity, ...`` (every valid name:
    there are few, and a user choosing predictors wants to see them all)."""
    found = closest(name, valid)
    near = f"closest: {', '.join(found)}; " if found else ""
    return f"unknown predictor {name!r}; {near}valid: {', '.join(sorted(valid))}"
