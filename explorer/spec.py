"""Normalizer specs: a composition of primitives in slots, with one canonical string form.

Syntax: steps separated by ``|``; a step is a primitive or a preset in call form::

    mean(bx) | std(bx) | affine | relu        # BatchNorm + ReLU
    gn(group_size=4) | tlu                    # a preset, its activation replaced
    mean(cx, at=pre) | std(cx) | affine | relu  # PreLayerNorm

A preset expands to its primitives; an explicitly written primitive replaces the preset's step in
the same slot. The canonical form lists the steps in slot order with default parameters left out,
so two spellings of one normalizer format to the same string, and ``parse(format(s)) == s``.

Names in call form are parsed and bound here once, for specs and models alike: :func:`parse_calls`
reads ``name(args, key=value)`` steps, :func:`bind_arguments` binds them to declared parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from explorer.errors import SpecError, closest, unknown_name_message
from explorer.plugins import get_registry
from explorer.registry import SLOTS

if TYPE_CHECKING:
    from explorer.registry import Param, Primitive, Registry

_TOKEN = re.compile(
    r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![A-Za-z_])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.+]*)"
    r"|(?P<string>\"[^\"]*\"|'[^']*')"
    r"|(?P<punct>[|(),=]))"
)
_BARE = re.compile(r"^[a-z_][a-z0-9_]*$")

#: How the spec with no steps is written; core syntax (like ``|``), whatever the plugins register.
EMPTY_SPEC = "identity"


@dataclass(frozen=True)
class Step:
    """One primitive with its (canonical, non-default) parameters."""

    name: str
    slot: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)

    def __str__(self) -> str:
        return format_step(self)


@dataclass(frozen=True)
class Spec:
    """A normalizer: at most one step per slot, kept in slot order. Compare by value."""

    steps: tuple[Step, ...] = ()

    def __str__(self) -> str:
        return format_spec(self)

    def __repr__(self) -> str:
        return f"Spec({format_spec(self)!r})"

    def slot(self, slot: str) -> Step | None:
        return next((s for s in self.steps if s.slot == slot), None)

    def with_step(self, step: Step) -> Spec:
        """This spec with ``step`` in its slot (replacing what was there)."""
        steps = [s for s in self.steps if s.slot != step.slot] + [step]
        return Spec(tuple(sorted(steps, key=lambda s: SLOTS.index(s.slot))))

    def without(self, slot: str) -> Spec:
        return Spec(tuple(s for s in self.steps if s.slot != slot))

    def uses_batch_statistics(self, registry: Registry | None = None) -> bool:
        """True when any step reduces over the batch axis (needs batch > 1 in training).

        A step says so by its ``axes`` (containing ``b``), or its primitive declares it
        (:attr:`Primitive.reads_batch_statistics`) in ``registry`` (the plugins' by default).
        """
        if any("b" in str(s.get("axes", "")) for s in self.steps):
            return True
        primitives = (registry or get_registry()).primitives
        return any(s.name in primitives and primitives[s.name].reads_batch_statistics for s in self.steps)

    def resolved(self, channels: int) -> Spec:
        """The canonical spec for a layer of ``channels`` channels (group size = width is LN)."""
        steps = []
        for step in self.steps:
            params = dict(step.params)
            _canonical_groups(params, channels)
            steps.append(Step(step.name, step.slot, tuple(params.items())))
        return Spec(tuple(steps))


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") and "e" not in text else text
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return text if _BARE.match(text) else '"' + text + '"'


def format_step(step: Step) -> str:
    if not step.params:
        return step.name
    parts = []
    for i, (key, value) in enumerate(step.params):
        parts.append(format_value(value) if (i == 0 and key == "axes") else f"{key}={format_value(value)}")
    return f"{step.name}({', '.join(parts)})"


def format_spec(spec: Spec) -> str:
    """The canonical string form of a spec; :data:`EMPTY_SPEC` when it has no steps."""
    return " | ".join(format_step(s) for s in spec.steps) or EMPTY_SPEC


# --------------------------------------------------------------------------- parsing


@dataclass
class Call:
    """One name in call form as written, before binding: ``plaincnn(30, width=64)``.

    ``args`` and ``kwargs`` hold the literals (numbers, names, quoted strings); ``position`` is
    where the name starts in the text, for error messages.
    """

    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    position: int


def _tokenize(text: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise SpecError(f"unexpected character {text[start]!r}", text, start)
        kind = m.lastgroup
        start = m.start(kind)
        raw = m.group(kind)
        if kind == "number":
            value: Any = float(raw) if any(ch in raw for ch in ".eE") else int(raw)
        elif kind == "string":
            value = raw[1:-1]
        else:
            value = raw
        tokens.append((kind, value, start))
        pos = m.end()
    tokens.append(("end", None, len(text)))
    return tokens


def parse_calls(text: str) -> list[Call]:
    """The ``|``-separated names in call form of ``text``, unbound; a SpecError points at a syntax error."""
    tokens = _tokenize(text)
    i = 0
    steps: list[Call] = []

    def expect(kind: str, value: str | None = None) -> tuple[str, Any, int]:
        nonlocal i
        tok = tokens[i]
        if tok[0] != kind or (value is not None and tok[1] != value):
            want = repr(value) if value else ("a name" if kind == "name" else kind)
            got = "end of spec" if tok[0] == "end" else repr(str(tok[1]))
            raise SpecError(f"expected {want}, got {got}", text, tok[2])
        i += 1
        return tok

    while True:
        _, name, position = expect("name")
        step = Call(name.lower(), [], {}, position)
        if tokens[i][:2] == ("punct", "("):
            i += 1
            if tokens[i][:2] != ("punct", ")"):
                while True:
                    kind, value, pos = tokens[i]
                    if kind not in ("name", "number", "string"):
                        raise SpecError("expected an argument", text, pos)
                    i += 1
                    if tokens[i][:2] == ("punct", "="):
                        if kind != "name":
                            raise SpecError("expected a parameter name before '='", text, pos)
                        i += 1
                        vkind, v, vpos = tokens[i]
                        if vkind not in ("name", "number", "string"):
                            raise SpecError(f"expected a value for {value!r}", text, vpos)
                        i += 1
                        if value in step.kwargs:
                            raise SpecError(f"parameter {value!r} given twice", text, pos)
                        step.kwargs[value] = v
                    else:
                        if step.kwargs:
                            raise SpecError("positional argument after keyword argument", text, pos)
                        step.args.append(value)
                    if tokens[i][:2] == ("punct", ","):
                        i += 1
                        continue
                    break
            expect("punct", ")")
        steps.append(step)
        if tokens[i][0] == "end":
            return steps
        expect("punct", "|")


def bind_arguments(owner: str, params: Sequence[Param], args: Sequence[Any] = (),
                   kwargs: Mapping[str, Any] | None = None, *, positional: Sequence[str] | None = None,
                   kind: str = "", defaults: bool = True) -> dict[str, Any]:
    """Bind a call's arguments to declared parameters: the one binding of primitives, presets and models.

    Positional arguments fill ``positional`` in order (every parameter, when None); each value is
    coerced by its :class:`Param`; an unknown name is refused with the closest one. With
    ``defaults`` the parameters not given take their defaults. Errors are :class:`SpecError`
    naming ``owner`` (``kind`` prefixes it where the kind is worth saying: ``preset gn``).
    """
    positions = [p.name for p in params] if positional is None else list(positional)
    given = dict(kwargs or {})
    if len(args) > len(positions):
        raise SpecError(f"{owner} takes at most {len(positions)} positional argument(s), got {len(args)}")
    for key, value in zip(positions, args):
        if key in given:
            raise SpecError(f"{owner}: parameter {key!r} given twice")
        given[key] = value
    declared = {p.name: p for p in params}
    bound: dict[str, Any] = {}
    for key, value in given.items():
        param = declared.get(key)
        if param is None:
            raise SpecError(_unknown_parameter(f"{kind} {owner}" if kind else owner, key, declared))
        bound[key] = param.coerce(value, owner)
    if defaults:
        for param in params:
            bound.setdefault(param.name, param.default)
    return bound


def _unknown_parameter(owner: str, key: str, declared: Mapping[str, Param]) -> str:
    """``plaincnn has no parameter 'widht' (parameters: depth, width); did you mean 'width'?``"""
    near = closest(key, declared)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"{owner} has no parameter {key!r} (parameters: {', '.join(declared) or 'none'}){hint}"


def _canonical_groups(params: dict[str, Any], channels: int | None = None) -> None:
    """Rewrite group parameters: one group is the whole layer (c); groups of one channel vanish."""
    axes = params.get("axes")
    if not isinstance(axes, str) or "g" not in axes:
        return
    groups, size = params.get("groups"), params.get("group_size")
    if channels is not None:
        if groups is None and size is not None and channels % size == 0:
            groups = channels // size
        if groups == channels:
            size, groups = 1, None
    if groups == 1 or (channels is not None and size == channels):
        params["axes"] = axes.replace("g", "c")
        params.pop("groups", None)
        params.pop("group_size", None)
    elif size == 1:
        params["axes"] = axes.replace("g", "") or None
        params.pop("groups", None)
        params.pop("group_size", None)
        if params["axes"] is None:
            raise SpecError("groups of one channel over no other axis leave nothing to normalize over")
    elif channels is not None and groups is not None and "group_size" in params:
        # groups= takes group_size='s place, so the parameters keep the primitive's declared order
        # (groups, then group_size) and the resolved spec formats canonically.
        items = [("groups", groups) if k == "group_size" else (k, v) for k, v in params.items() if k != "groups"]
        params.clear()
        params.update(items)


def _check_groups(prim: Primitive, params: dict[str, Any]) -> None:
    axes = params.get("axes")
    if not isinstance(axes, str):
        return
    has_groups = params.get("groups") is not None or params.get("group_size") is not None
    if "g" in axes:
        if params.get("groups") is not None and params.get("group_size") is not None:
            raise SpecError(f"{prim.name}: give groups= or group_size=, not both")
        if not has_groups:
            raise SpecError(f"{prim.name}({axes}): axis 'g' needs groups= or group_size=")
        for key in ("groups", "group_size"):
            if params.get(key) is not None and params[key] < 1:
                raise SpecError(f"{prim.name}: {key} must be at least 1, got {params[key]}")
    elif has_groups:
        raise SpecError(f"{prim.name}({axes}): groups= and group_size= need the 'g' axis, e.g. gx")


def make_step(registry: Registry, name: str, args: Sequence[Any] = (),
              kwargs: Mapping[str, Any] | None = None) -> Step | None:
    """Build the canonical :class:`Step` for a primitive call; ``None`` for an identity step or one
    that canonicalizes away."""
    prim = registry.primitive(name)
    params = bind_arguments(name, prim.params, args, kwargs, positional=prim.positional)
    _check_groups(prim, params)
    if prim.check is not None:
        prim.check(params)
    if prim.is_identity:
        return None
    _canonical_groups(params)
    if prim.canonicalize is not None:
        new_name, params = prim.canonicalize(params)
        if not new_name:
            return None
        if new_name != name:
            return make_step(registry, new_name, [], {k: v for k, v in params.items() if v is not None})
    ordered = tuple(
        (p.name, params[p.name]) for p in prim.params if params.get(p.name) is not None and params[p.name] != p.default
    )
    return Step(prim.name, prim.slot, ordered)


def _expand(registry: Registry, raw: Call, text: str, depth: int) -> list[tuple[Step, bool]]:
    """(step, from_preset) pairs for one raw step."""
    if raw.name in registry.presets:
        if depth > 8:
            raise SpecError(f"preset {raw.name!r} expands into itself", text, raw.position)
        preset = registry.presets[raw.name]
        if raw.args:
            raise SpecError(f"preset {raw.name} takes keyword arguments only, e.g. {raw.name}(key=value)", text, raw.position)
        try:
            # Only the given parameters: the preset's expand() holds its own defaults.
            kwargs = bind_arguments(raw.name, preset.params, (), raw.kwargs, kind="preset", defaults=False)
        except SpecError as err:
            raise SpecError(err.bare_message, text, raw.position) from None
        try:
            expansion = preset.expand(**kwargs)
            inner = _resolve(registry, expansion, depth + 1)
        except SpecError as err:
            raise SpecError(f"{raw.name}: {err.bare_message}", text, raw.position) from None
        return [(s, True) for s in inner]
    if raw.name not in registry.primitives:
        raise SpecError(
            unknown_name_message("primitive or preset", raw.name, [*registry.primitives, *registry.presets]),
            text,
            raw.position,
        )
    try:
        step = make_step(registry, raw.name, raw.args, raw.kwargs)
    except SpecError as err:
        raise SpecError(err.bare_message, text, raw.position) from None
    if step is None:  # an identity step: an explicit "nothing" that still clears a preset's slot
        step = Step("", registry.primitives[raw.name].slot)
    return [(step, False)]


def _resolve(registry: Registry, text: str, depth: int = 0) -> list[Step]:
    by_slot: dict[str, tuple[Step, bool, str]] = {}
    for raw in parse_calls(text):
        for step, from_preset in _expand(registry, raw, text, depth):
            held = by_slot.get(step.slot)
            if held is not None:
                if held[1] and not from_preset:
                    pass  # an explicit primitive replaces the preset's step in its slot
                elif from_preset and not held[1]:
                    continue  # the explicit step written earlier wins over the preset
                else:
                    raise SpecError(
                        f"two steps fill the {step.slot} slot: {held[0] if held[0].name else held[2]} and "
                        f"{step if step.name else raw.name}",
                        text, raw.position,
                    )
            by_slot[step.slot] = (step, from_preset, raw.name)
    return [by_slot[slot][0] for slot in SLOTS if slot in by_slot and by_slot[slot][0].name]


def parse_spec(text: str | Spec, registry: Registry | None = None) -> Spec:
    """Parse a spec string (primitives and presets) into its canonical :class:`Spec`."""
    if isinstance(text, Spec):
        return text
    registry = registry or get_registry()
    if not isinstance(text, str) or not text.strip():
        raise SpecError("empty spec; write a preset such as bn, or primitives such as 'mean(bx) | std(bx)'")
    if text.strip() == EMPTY_SPEC:
        return Spec()
    return Spec(tuple(_resolve(registry, text)))
