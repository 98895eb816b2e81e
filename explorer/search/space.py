"""The search space, drawn from the plugin registry when the study runs (define-by-run).

A candidate is one primitive (or nothing) per varying slot, each with its parameters, plus the
study's fixed steps. Choices come from the registry at run time: ``"*"`` in a slot means every
primitive registered for it, so an installed third-party primitive joins the space without an
edit to the study. Parameters vary only where the study lists values, except those a primitive
cannot do without (``axes``), and group parameters are asked only when the axes contain ``g``.

Optuna parameter names: the slot (``scale``) for the primitive, ``scale.std.axes`` for its
parameters, so each categorical parameter keeps one fixed set of choices.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from explorer.errors import SpecError, suggestion
from explorer.registry import SLOTS, Param, Primitive, Registry
from explorer.search.study_file import DEFAULT_AXES, DEFAULT_GROUP_SIZES, StudyConfig, StudyFileError, locate
from explorer.spec import EMPTY_SPEC, Spec, format_value, parse_spec

NONE = "none"
ANY = "*"
GROUP_PARAMS = ("groups", "group_size")


class Suggester(Protocol):
    """What the space needs of an Optuna trial (``optuna.trial.Trial`` satisfies it)."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...


@dataclass
class Candidate:
    """A sampled composition: its canonical spec, or the reason it is not a valid one."""

    text: str
    spec: Spec | None = None
    invalid: str | None = None


class _Walker:
    """A :class:`Suggester` that takes the choice at each position of ``path`` (0 past its end) and
    records every question: one leaf of the define-by-run tree per call of ``sample``."""

    def __init__(self, path: list[int]):
        self.path = path
        self.asked: list[tuple[str, list[Any], int]] = []

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        depth = len(self.asked)
        index = self.path[depth] if depth < len(self.path) else 0
        self.asked.append((name, list(choices), index))
        return choices[index]


class SearchSpace:
    """The study's space over the registry's primitives."""

    def __init__(self, config: StudyConfig, registry: Registry):
        self.config = config
        self.registry = registry
        space = config.space
        try:
            self.fixed = parse_spec(space.fixed, registry) if space.fixed.strip() else Spec()
        except SpecError as err:  # like every other key of the study file: file:line: key: why
            raise StudyFileError(f"{config.path}:{locate(config.text, ('space', 'fixed'))}: space.fixed: {err}") \
                from None
        self.slot_choices: dict[str, list[str]] = {}
        for slot in SLOTS:
            if slot not in space.slots:
                continue
            names: list[str] = []
            for name in space.slots[slot]:
                if name == ANY:
                    names += sorted(p.name for p in registry.primitives.values()
                                    if p.slot == slot and not p.is_identity)
                else:
                    names.append(name)
            self.slot_choices[slot] = list(dict.fromkeys(names))
        self.presets = list(space.presets)

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        """Every name in the study exists in the registry; raise StudyFileError with the line."""
        config, text, path = self.config, self.config.text, self.config.path

        def fail(key: tuple[str, ...], message: str) -> StudyFileError:
            return StudyFileError(f"{path}:{locate(text, key)}: {'.'.join(key)}: {message}")

        for slot, names in self.slot_choices.items():
            key = ("space", "slots", slot)
            if self.fixed.slot(slot) is not None:
                raise fail(key, f"the slot is fixed by space.fixed ({self.fixed.slot(slot)}); vary it or fix it, not both")
            for name in names:
                if name == NONE:
                    continue
                prim = self.registry.primitives.get(name)
                if prim is None:
                    candidates = [p.name for p in self.registry.primitives.values() if p.slot == slot]
                    raise fail(key, f"unknown primitive {name!r} for this slot; {suggestion(name, candidates)}")
                if prim.slot != slot:
                    raise fail(key, f"{name!r} is a {prim.slot} primitive, not a {slot} one")
                for param in prim.params:
                    try:
                        self._values(prim, param)
                    except SpecError as err:
                        raise fail(key, str(err)) from None
        known_params = {p.name for prim in self.registry.primitives.values() for p in prim.params}
        for name, values in config.space.params.items():
            if name not in known_params:
                raise fail(("space", "params", name), f"no primitive takes this parameter; {suggestion(name, known_params)}")
            self._coerce_all(name, values, ("space", "params", name), fail)
        for prim_name, table in config.space.primitive_params.items():
            prim = self.registry.primitives.get(prim_name)
            if prim is None:
                raise fail(("space", "params", prim_name),
                           f"unknown primitive; {suggestion(prim_name, self.registry.primitives)}")
            for pname, values in table.items():
                param = prim.param(pname)
                key = ("space", "params", prim_name, pname)
                if param is None:
                    raise fail(key, f"{prim_name} has no parameter {pname!r} (parameters: {', '.join(p.name for p in prim.params) or 'none'})")
                for v in values:
                    try:
                        param.coerce(v, prim_name)
                    except SpecError as err:
                        raise fail(key, str(err)) from None
        for i, preset in enumerate(self.presets):
            try:
                parse_spec(preset, self.registry)
            except SpecError as err:
                raise fail(("space", "presets"), f"entry {i + 1} ({preset!r}): {err}") from None
        if not self.slot_choices and not self.presets and not self.config.space.fixed.strip():
            raise fail(("space",), "nothing to search: give space.slots, space.presets or space.fixed")

    def _coerce_all(self, name: str, values: list[Any], key: tuple[str, ...], fail: Any) -> None:
        for prim in self.registry.primitives.values():
            param = prim.param(name)
            if param is None:
                continue
            for v in values:
                try:
                    param.coerce(v, prim.name)
                except SpecError as err:
                    raise fail(key, str(err)) from None
            return

    # ------------------------------------------------------------------ sampling

    def _values(self, prim: Primitive, param: Param) -> list[Any] | None:
        """The values a parameter may take in this study, or None to leave it at its default."""
        own = self.config.space.primitive_params.get(prim.name, {})
        if param.name in own:
            return own[param.name]
        if param.name in self.config.space.params:
            return self.config.space.params[param.name]
        if param.name == "axes" or (param.type == "axes" and param.default is None):
            return list(DEFAULT_AXES)
        if param.name == "group_size":
            return list(DEFAULT_GROUP_SIZES)
        if param.default is None and param.name not in GROUP_PARAMS:
            if param.choices:
                return list(param.choices)
            if param.type is bool:
                return [False, True]
            raise SpecError(f"{prim.name} needs a value for {param.name!r}: list them under [space.params]")
        return None

    def choices(self) -> dict[str, list[Any]]:
        """Optuna parameter name -> the choices :meth:`sample` offers for it (every question the
        space may ask). Optuna fixes a parameter's choices for the life of a study: a resumed study
        must offer the same ones (:func:`explorer.search.optuna_study.check_same_choices`)."""
        out: dict[str, list[Any]] = {}
        for slot, names in self.slot_choices.items():
            if len(names) > 1:
                out[slot] = list(names)
            for name in names:
                prim = self.registry.primitives.get(name)
                if prim is None:
                    continue
                own = self.config.space.primitive_params.get(prim.name, {})
                for param in prim.params:
                    if param.name in GROUP_PARAMS:
                        values = own.get(param.name) or self.config.space.params.get(param.name)
                        if param.name == "group_size":
                            values = values or list(DEFAULT_GROUP_SIZES)
                    else:
                        values = self._values(prim, param)
                    if values is not None and len(values) > 1:
                        out[f"{slot}.{prim.name}.{param.name}"] = list(values)
        return out

    def is_searchable(self) -> bool:
        return bool(self.slot_choices)

    def enumerate(self, limit: int) -> list[tuple[dict[str, Any], Candidate]] | None:
        """Every (params, candidate) leaf of the space, depth first; None when it has more than ``limit``.

        ``params`` are the Optuna parameters that draw the candidate, so it can be enqueued."""
        leaves: list[tuple[dict[str, Any], Candidate]] = []
        path: list[int] = []
        while True:
            walker = _Walker(path)
            candidate = self.sample(walker)
            leaves.append(({name: choices[i] for name, choices, i in walker.asked}, candidate))
            if len(leaves) > limit:
                return None
            asked = walker.asked
            j = len(asked) - 1
            while j >= 0 and asked[j][2] + 1 >= len(asked[j][1]):
                j -= 1
            if j < 0:
                return leaves
            path = [i for _, _, i in asked[:j]] + [asked[j][2] + 1]

    def sample(self, trial: Suggester) -> Candidate:
        """Draw a composition for ``trial``; invalid compositions come back with the reason."""
        parts: list[str] = []
        center_params: dict[str, Any] = {}
        for slot in SLOTS:
            if slot not in self.slot_choices:
                fixed = self.fixed.slot(slot)
                if fixed is not None:
                    parts.append(str(fixed))
                continue
            choices = self.slot_choices[slot]
            name = choices[0] if len(choices) == 1 else trial.suggest_categorical(slot, choices)
            if name == NONE:
                continue
            prim = self.registry.primitive(name)
            params = self._sample_params(trial, slot, prim, center_params if slot == "scale" else None)
            if slot == "center":
                center_params = params
            parts.append(_call(name, params))
        text = " | ".join(parts) or EMPTY_SPEC
        try:
            return Candidate(text, parse_spec(text, self.registry))
        except SpecError as err:
            return Candidate(text, invalid=f"invalid composition {text!r}: {err}")

    def _sample_params(self, trial: Suggester, slot: str, prim: Primitive,
                       center: dict[str, Any] | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        has_axes = prim.param("axes") is not None
        if self.config.space.tie_axes and center and has_axes and "axes" in center:
            params = {k: v for k, v in center.items() if k in ("axes", *GROUP_PARAMS)}
        for param in prim.params:
            if param.name in params:
                continue
            if param.name in GROUP_PARAMS:
                continue
            values = self._values(prim, param)
            if values is None:
                continue
            params[param.name] = values[0] if len(values) == 1 else trial.suggest_categorical(
                f"{slot}.{prim.name}.{param.name}", values)
        axes = params.get("axes")
        if isinstance(axes, str) and "g" in axes and not any(k in params for k in GROUP_PARAMS):
            # Conditional parameter: a group size only exists when the axes have groups.
            own = self.config.space.primitive_params.get(prim.name, {})
            key = next((k for k in GROUP_PARAMS if k in own or k in self.config.space.params), "group_size")
            param = prim.param(key)
            if param is not None:
                values = own.get(key) or self.config.space.params.get(key) or list(DEFAULT_GROUP_SIZES)
                params[key] = values[0] if len(values) == 1 else trial.suggest_categorical(
                    f"{slot}.{prim.name}.{key}", values)
        return params


def _call(name: str, params: dict[str, Any]) -> str:
    if not params:
        return name
    return f"{name}({', '.join(f'{k}={format_value(v)}' for k, v in params.items())})"


class RandomSuggester:
    """A seeded stand-in for an Optuna trial: uniform draws, for sampling a space without a study."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.rng.choice(choices)


#: Every slot open to every registered primitive (or nothing): the whole design space.
WHOLE_SPACE = """name = "whole"
models = ["cnn10"]
[objectives]
test_accuracy = "maximize"
[space.slots]
weight = ["none", "*"]
center = ["none", "*"]
scale = ["none", "*"]
gate = ["none", "*"]
bound = ["none", "*"]
affine = ["none", "*"]
activation = ["*"]
regularizer = ["none", "*"]
[space.params]
at = ["pre", "post"]
"""


def sample_compositions(n: int, seed: int = 0, registry: Registry | None = None,
                        accept: Callable[[Spec], bool] | None = None, tries: int = 2000) -> list[Spec]:
    """``n`` distinct valid compositions drawn uniformly from the whole space (every slot ``"*"``),
    seeded; ``accept`` filters them further (for example: builds at the widths a caller uses)."""
    from explorer.plugins import get_registry
    from explorer.search.study_file import parse_study_text

    registry = registry or get_registry()
    space = SearchSpace(parse_study_text(WHOLE_SPACE, "<whole space>"), registry)
    suggester = RandomSuggester(random.Random(seed))
    found: dict[str, Spec] = {}
    for _ in range(tries):
        candidate = space.sample(suggester)
        if candidate.spec is None or str(candidate.spec) in found:
            continue
        if accept is None or accept(candidate.spec):
            found[str(candidate.spec)] = candidate.spec
        if len(found) == n:
            break
    return list(found.values())
