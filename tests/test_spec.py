"""Specs: the canonical form round-trips, spellings of one normalizer agree, bad syntax is located."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import explorer
from explorer import Primitive, Spec, SpecError, format_spec, hookimpl, parse_spec
from explorer.models import ModelError, create_model, resolve_model
from explorer.plugins import get_registry, unregister
from explorer.registry import SLOTS, Param, Preset, Registry
from explorer.scoring import ScoreError
from explorer.spec import Step, bind_arguments, format_value

# ----------------------------------------------------------------------------- generated compositions


def axes_strategy() -> st.SearchStrategy[str]:
    """A valid axes string in any letter order (c and g never together)."""
    letters = st.sets(st.sampled_from("bcgx"), min_size=1).filter(lambda s: not {"c", "g"} <= s)
    return letters.flatmap(lambda s: st.permutations(sorted(s)).map("".join))


def value_strategy(param: Param) -> st.SearchStrategy:
    if param.choices is not None:
        return st.sampled_from(param.choices)
    if param.type == "axes":
        return axes_strategy()
    if param.type is bool:
        return st.booleans()
    if param.type is int:
        return st.integers(1, 64)
    if param.type is float:
        return st.floats(1e-8, 1e3, allow_nan=False, allow_infinity=False)
    return st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@st.composite
def primitive_call(draw, name: str) -> str:
    """``name(k=v, ...)`` with random valid parameters drawn from the primitive's declaration."""
    prim = get_registry().primitives[name]
    args = []
    for param in prim.params:
        if param.name in ("groups", "group_size"):
            continue
        if param.type == "axes" or draw(st.booleans()):
            args.append((param.name, draw(value_strategy(param))))
    axes = dict(args).get("axes")
    if isinstance(axes, str) and "g" in axes:
        key = draw(st.sampled_from(["groups", "group_size"]))
        args.append((key, draw(st.integers(1, 16))))
    if not args:
        return name
    positional = prim.positional[:1]
    parts = [literal(v) if k in positional else f"{k}={literal(v)}" for k, v in args]
    parts.sort(key=lambda p: "=" in p)  # positional arguments first
    return f"{name}({', '.join(parts)})"


@st.composite
def preset_call(draw, name: str) -> str:
    """A preset, with its parameters drawn when it has any (``gn(group_size=4)``)."""
    preset = get_registry().presets[name]
    if not preset.params:
        return name
    if {p.name for p in preset.params} >= {"groups", "group_size"}:
        key = draw(st.sampled_from(["groups", "group_size"]))
        return f"{name}({key}={draw(st.integers(1, 16))})"
    parts = [f"{p.name}={literal(draw(value_strategy(p)))}" for p in preset.params if draw(st.booleans())]
    return f"{name}({', '.join(parts)})" if parts else name


@st.composite
def compositions(draw) -> str:
    """A spec text: maybe a preset, then random primitives in random slots (each slot once)."""
    registry = get_registry()
    by_slot = registry.by_slot()
    parts = []
    if draw(st.booleans()):
        parts.append(draw(preset_call(draw(st.sampled_from(sorted(registry.presets))))))
    slots = draw(st.lists(st.sampled_from([s for s in SLOTS if by_slot[s]]), unique=True, max_size=len(SLOTS)))
    for slot in slots:
        name = draw(st.sampled_from(sorted(p.name for p in by_slot[slot])))
        parts.append(draw(primitive_call(name)))
    assume(parts)
    return " | ".join(parts)


@settings(max_examples=150)
@given(text=compositions())
def test_parse_format_round_trip(text):
    try:
        spec = parse_spec(text)
    except SpecError:
        assume(False)  # e.g. group_size=1 over the g axis alone leaves nothing to normalize over
    canonical = format_spec(spec)
    again = parse_spec(canonical)
    assert again == spec
    assert format_spec(again) == canonical
    assert hash(again) == hash(spec)


@settings(max_examples=300)
@given(text=compositions(), width=st.sampled_from([1, 2, 4, 8, 16, 32, 64]))
def test_resolved_spec_round_trips_and_is_idempotent(text, width):
    try:
        spec = parse_spec(text).resolved(width)
    except SpecError:
        assume(False)
    assert parse_spec(str(spec)) == spec
    assert spec.resolved(width) == spec


@pytest.mark.parametrize("text", ["std(gx, group_size=4, eps=0.001)", "mean(gx, group_size=4, at=pre) | std(cx)"])
def test_resolved_keeps_the_declared_parameter_order(text):
    spec = parse_spec(text).resolved(16)
    assert "groups=4" in str(spec) and parse_spec(str(spec)) == spec


def test_every_preset_round_trips():
    for name in get_registry().presets:
        spec = parse_spec(name)
        assert parse_spec(str(spec)) == spec, name


# ----------------------------------------------------------------------------- canonical equivalences


# The presets written out from NOTES.md, independently of plugins/presets.py.
WRITTEN_OUT = {
    "bn": "mean(bx) | std(bx) | affine | relu",
    "ln": "mean(cx) | std(cx) | affine | relu",
    "in": "mean(x) | std(x) | affine | relu",
    "gn": "mean(gx, groups=32) | std(gx, groups=32) | affine | relu",
    "frn": "root_mean_square(x) | affine | tlu",
    "vn": "std(bx) | affine | relu",
    "evo_b0": "evo_max | affine",
    "evo_s0": "std(gx, groups=32) | sigmoid_gate | affine",
    "wn": "weight_norm | wnrelu",
    "sws": "weight_standardization | relu",
    "rms": "root_mean_square(cx) | affine(bias=false) | relu",
    "bmlv": "mean(bx) | std(cx) | affine | relu",
    "lmbv": "mean(cx) | std(bx) | affine | relu",
    "preln": "mean(cx, at=pre) | std(cx) | affine | relu",
    "regnorm": "mean(cx) | std(cx) | affine | relu | batch_mean_penalty(strength=0.1)",
    "none": "relu",
}


@pytest.mark.parametrize("preset", sorted(WRITTEN_OUT))
def test_presets_equal_their_written_out_compositions(preset):
    assert parse_spec(preset) == parse_spec(WRITTEN_OUT[preset])


def test_every_preset_of_the_issue_is_registered():
    assert set(WRITTEN_OUT) <= set(get_registry().presets)


@pytest.mark.parametrize(("a", "b"), [
    ("gn(groups=1)", "ln"),
    ("gn(group_size=1)", "in"),
    ("mean(gx, groups=1) | std(gx, group_size=1)", "mean(cx) | std(x)"),
    ("mean(xb) | std(x+b) | affine | relu", "bn"),
    ("mean(XB) | std(xb) | affine | relu", "bn"),
    ("std(bx, eps=1e-5)", "std(bx)"),
    ("std(axes=bx)", "std(bx)"),
    ("affine(bias=true)", "affine"),
    ("bn | tlu", "mean(bx) | std(bx) | affine | tlu"),
    ("tlu | bn", "mean(bx) | std(bx) | affine | tlu"),
    ("bn | identity", "mean(bx) | std(bx) | affine"),
    ("bn | affine(bias=false)", "mean(bx) | std(bx) | affine(bias=false) | relu"),
    ("gn(groups=8) | std(gx, groups=4)", "mean(gx, groups=8) | std(gx, groups=4) | affine | relu"),
    ("regnorm(strength=0.5)", "ln | batch_mean_penalty(strength=0.5)"),
    ("gn(groups=4) | mean(bx)", "mean(bx) | std(gx, groups=4) | affine | relu"),
    ("mean(bx) | gn(groups=4)", "mean(bx) | std(gx, groups=4) | affine | relu"),
    ("relu | std(cx) | mean(cx)", "mean(cx) | std(cx) | relu"),
])
def test_spellings_of_one_normalizer_share_the_canonical_form(a, b):
    assert parse_spec(a) == parse_spec(b)
    assert str(parse_spec(a)) == str(parse_spec(b))


def test_canonical_form_is_in_slot_order_without_defaults():
    assert str(parse_spec("relu | affine(bias=true) | std(xb, eps=0.00001) | mean(b+x)")) == \
        "mean(bx) | std(bx) | affine | relu"
    assert str(parse_spec("gn(group_size=4)")) == "mean(gx, group_size=4) | std(gx, group_size=4) | affine | relu"


@pytest.mark.parametrize(("text", "width", "expected"), [
    ("gn(group_size=8)", 8, "ln"),
    ("gn(group_size=4)", 8, "gn(groups=2)"),
    ("gn(groups=8)", 8, "in"),
    ("gn(groups=32)", 32, "in"),
    ("gn(group_size=1)", 8, "in"),
    ("evo_s0(group_size=16)", 16, "std(cx) | sigmoid_gate | affine"),
    ("bn", 8, "bn"),
])
def test_resolved_turns_group_settings_into_their_canonical_normalizer(text, width, expected):
    assert parse_spec(text).resolved(width) == parse_spec(expected)


def test_identity_and_empty_specs():
    assert parse_spec("identity") == Spec()
    assert str(Spec()) == "identity"
    assert parse_spec("none") == parse_spec("relu")


def test_spec_helpers():
    spec = parse_spec("bn")
    assert spec.slot("scale").name == "std" and spec.slot("gate") is None
    assert spec.uses_batch_statistics()
    assert not parse_spec("ln").uses_batch_statistics()
    assert parse_spec("evo_b0").uses_batch_statistics()
    assert spec.without("activation") == parse_spec("bn | identity")
    assert spec.with_step(parse_spec("tlu").steps[0]) == parse_spec("bn | tlu")


# ----------------------------------------------------------------------------- invalid syntax


@pytest.mark.parametrize(("text", "position", "words"), [
    ("bn |", 4, "expected a name"),
    ("mean(bx", 7, "expected ')'"),
    ("bn || ln", 4, "expected a name"),
    ("mean(bx,, )", 8, "expected an argument"),
    ("gn(groups=)", 10, "expected a value"),
    ("bn $", 3, "unexpected character"),
    ("ln | bnn", 5, "unknown primitive or preset 'bnn'"),
    ("mean(bx) std(bx)", 9, "expected '|'"),
    ("mean(1=2)", 5, "parameter name"),
    ("std(bx) | std(cx)", 10, "two steps fill the scale slot"),
    ("ln | mean(q)", 5, "unknown axis letter"),
    ("ln | gn(groups=2, group_size=2)", 5, "not both"),
    ("ln | gn(groups=2.5)", 5, "must be int"),
    ("ln | mean(bx, color=3)", 5, "has no parameter 'color'"),
    ("ln | gn(2)", 5, "preset gn takes keyword arguments only, e.g. gn(key=value)"),
    ("mean(at=pre, bx)", 13, "positional argument after keyword argument"),
    ("gn(groups=2, groups=4)", 13, "parameter 'groups' given twice"),
])
def test_invalid_syntax_points_at_the_position(text, position, words):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    err = info.value
    assert err.position == position
    assert words in str(err)
    assert f"at position {position}: {text[:position]}⟨here⟩{text[position:]}" in str(err)
    assert "\n" not in str(err)


@pytest.mark.parametrize(("text", "words"), [
    ("", "empty spec"),
    ("   ", "empty spec"),
    ("mean", "give the statistic axes"),
    ("mean(gx)", "needs groups= or group_size="),
    ("mean(bx, groups=2)", "need the 'g' axis"),
    ("mean(cg)", "already contains"),
    ("mean(bb)", "repeat"),
    ("mean(x, at=middle)", "must be one of pre, post"),
    ("gn(groups=0)", "at least 1"),
    ("affine(bias=maybe)", "must be bool"),
    ("relu(1)", "at most 0 positional"),
    ("mean(g, group_size=1)", "nothing to normalize over"),
    ("bn | identity | relu", "two steps fill the activation slot: identity and relu"),
    ("gn(groups=3) | gn(groups=2)", "two steps fill the center slot"),
    ("mean(bx, axes=cx)", "mean: parameter 'axes' given twice"),  # a keyword repeating a positional
    ("gn(groups=2, groups=4)", "parameter 'groups' given twice"),  # a keyword given twice
])
def test_invalid_compositions_say_why(text, words):
    with pytest.raises(SpecError, match=None) as info:
        parse_spec(text)
    assert words in str(info.value)


# ----------------------------------------------------------------------------- one binding for specs and models


@pytest.mark.parametrize(("call", "message"), [
    ("plaincnn(dept=3)", "plaincnn has no parameter 'dept' (parameters: depth, width); did you mean 'depth'?"),
    ("plaincnn(colour=3)", "plaincnn has no parameter 'colour' (parameters: depth, width)"),
    ("plaincnn(depth=deep)", "plaincnn: parameter 'depth' must be int, got 'deep'"),
    ("plaincnn(width=2.5)", "plaincnn: parameter 'width' must be int, got 2.5"),
    ("plaincnn(1, 2, 3)", "plaincnn takes at most 2 positional argument(s), got 3"),
    ("plaincnn(3, depth=3)", "plaincnn: parameter 'depth' given twice"),
])
def test_call_form_binding_gives_specs_and_models_the_same_errors(call, message):
    """A primitive declaring the same parameters as the plaincnn model binds a call exactly as the model does."""
    model = get_registry().models["plaincnn"]
    registry = Registry()
    registry.add_model(model)
    registry.add_primitive(Primitive(name="plaincnn", slot="scale", factory=nn.Identity, params=model.params,
                                     positional=tuple(p.name for p in model.params)))
    with pytest.raises(SpecError) as spec_error:
        parse_spec(call, registry)
    with pytest.raises(ModelError) as model_error:
        resolve_model(call, registry)
    assert spec_error.value.bare_message == str(model_error.value) == message


def test_call_form_binding_fills_positions_coerces_and_defaults_alike():
    model = get_registry().models["plaincnn"]
    bound = bind_arguments("plaincnn", model.params, [12.0], {"width": "8"})
    assert bound == {"depth": 12, "width": 8} and type(bound["depth"]) is int
    entry, params, canonical = resolve_model("plaincnn(12.0, width=8)")
    assert entry is model and params == bound and canonical == "plaincnn(depth=12, width=8)"
    assert create_model(canonical, Spec()).model_name == canonical
    registry = Registry()
    registry.add_primitive(Primitive(name="stretch", slot="scale", factory=nn.Identity, params=model.params,
                                     positional=("depth", "width")))
    assert parse_spec("stretch(12.0, width=8)", registry).slot("scale").kwargs == bound


# ----------------------------------------------------------------------------- what a primitive declares


class BatchPeak(nn.Module):
    """Divide by the largest |x| of each channel over the batch and the positions."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x3: torch.Tensor) -> torch.Tensor:
        return x3.abs().amax(dim=(0, 2), keepdim=True) + self.eps


class DeclaringPlugin:
    """A third-party plugin whose primitives tell the core what their parameters cannot."""

    @hookimpl
    def register_primitives(self, register):
        register(Primitive(name="batch_peak", slot="scale", factory=BatchPeak, reads_batch_statistics=True,
                           formula="/ (max_{b,x} |x| + ε)", doc="divide by the batch's peak magnitude"))
        register(Primitive(name="keep", slot="activation", factory=lambda channels: nn.Identity(),
                           is_identity=True, formula="y", doc="no activation"))


@pytest.fixture
def declaring_plugin():
    explorer.register_plugin(DeclaringPlugin(), name="declaring")
    yield get_registry()
    unregister("declaring")


def test_a_plugin_primitive_declared_batch_reading_is_refused_a_batch_of_one(declaring_plugin):
    spec = parse_spec("mean(x) | batch_peak | affine | relu")
    assert spec.uses_batch_statistics()
    assert not parse_spec("mean(x) | std(x) | affine | relu").uses_batch_statistics()
    with pytest.raises(ScoreError, match="uses batch statistics, which need a batch size of at least 2"):
        explorer.score(spec, model="plaincnn(depth=2, width=4)", inputs=[torch.randn(1, 3, 8, 8)])
    result = explorer.score(spec, model="plaincnn(depth=2, width=4)", inputs=[torch.randn(4, 3, 8, 8)])
    assert len(result["activation_variance"]) == 2


def test_a_plugin_primitive_declared_identity_empties_its_slot(declaring_plugin):
    assert parse_spec("bn | keep") == parse_spec("bn | identity") == parse_spec("bn").without("activation")
    assert parse_spec("keep") == Spec()


# ----------------------------------------------------------------------------- exact canonical text and messages


def test_values_format_to_their_canonical_literals():
    assert (format_value(True), format_value(False)) == ("true", "false")
    assert (format_value(2.0), format_value(0.5), format_value(1e-06), format_value(3)) == ("2", "0.5", "1e-06", "3")
    assert format_value("bx") == "bx" and format_value("Two words") == '"Two words"'
    spec = parse_spec("rms")
    assert str(spec) == "root_mean_square(cx) | affine(bias=false) | relu"
    assert repr(spec) == "Spec('root_mean_square(cx) | affine(bias=false) | relu')"


@pytest.mark.parametrize(("text", "position", "message"), [
    ("bn |", 4, "expected a name, got end of spec"),
    ("mean(bx", 7, "expected ')', got end of spec"),
    ("bn || ln", 4, "expected a name, got '|'"),
    ("mean(bx) end", 9, "expected '|', got 'end'"),
    ("mean(bx,, )", 8, "expected an argument"),
    ("gn(groups=)", 10, "expected a value for 'groups'"),
    ("mean(1=2)", 5, "expected a parameter name before '='"),
    ("mean(at=pre, bx)", 13, "positional argument after keyword argument"),
])
def test_syntax_errors_word_for_word(text, position, message):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert (info.value.bare_message, info.value.position) == (message, position)


def test_literals_empty_calls_and_quoted_arguments():
    assert parse_spec("relu()") == parse_spec("relu")
    assert parse_spec('mean("bx") | std(\'bx\')') == parse_spec("mean(bx) | std(bx)")
    assert parse_spec("std(bx, eps=1E-3)") == parse_spec("std(bx, eps=0.001)")


def test_surrounding_whitespace_is_ignored():
    assert parse_spec("  bn | tlu  ") == parse_spec("bn | tlu")
    assert parse_spec("mean(bx) | std(bx)\n") == parse_spec("mean(bx) | std(bx)")


@pytest.mark.parametrize(("text", "message"), [
    ("mean(bx, post)", "mean takes at most 1 positional argument(s), got 2"),
    ("gn(colour=3)", "preset gn has no parameter 'colour' (parameters: groups, group_size)"),
    ("relu(x=1)", "relu has no parameter 'x' (parameters: none)"),
    ("mean(gx, groups=2, group_size=2)", "mean: give groups= or group_size=, not both"),
    ("mean(g, group_size=1)", "groups of one channel over no other axis leave nothing to normalize over"),
    ("", "empty spec; write a preset such as bn, or primitives such as 'mean(bx) | std(bx)'"),
    ("std", "give the statistic axes, e.g. mean(bx); letters b, c, g, x"),
])
def test_error_messages_word_for_word(text, message):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert info.value.bare_message == message
    assert info.value.position == (0 if text else None)


@pytest.mark.parametrize(("text", "message"), [
    ("std(bx) | std(cx)", "two steps fill the scale slot: std(bx) and std(cx)"),
    ("bn | identity | relu", "two steps fill the activation slot: identity and relu"),
    ("relu | identity", "two steps fill the activation slot: relu and identity"),
])
def test_two_steps_in_one_slot_are_both_named(text, message):
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert info.value.bare_message == message


def test_a_resolved_spec_builds_the_layer_it_names():
    """gn(group_size=4) at width 8 is GroupNorm with 2 groups (an int count, usable by the layer)."""
    spec = parse_spec("gn(group_size=4)").resolved(8)
    assert str(spec) == "mean(gx, groups=2) | std(gx, groups=2) | affine | relu"
    assert type(spec.slot("center").get("groups")) is int
    x = torch.randn(3, 8, 2, 2)
    for fuse in (True, False):
        layer = explorer.create_norm(spec, 8, activation=False)
        if not fuse:
            layer = explorer.norm.Normalizer(layer.center, layer.scale, affine=layer.affine, fuse=False)
        torch.testing.assert_close(layer(x), nn.functional.group_norm(x, 2, eps=1e-5))


# ----------------------------------------------------------------------------- what a plugin's declarations do


def _scaled_canonical(params):
    """factor 0 is no step, a negative factor is flipped(-factor), others stay as written."""
    factor = params["factor"]
    if factor == 0:
        return "", params
    if factor < 0:
        return "flipped", {"factor": -factor, "note": None}
    return "scaled", params


@pytest.fixture
def toy_registry() -> Registry:
    """Primitives declaring what the built-ins do not: a canonicalize hook, string and off-by-default
    bool parameters, a single group parameter without a minimum; presets nesting and looping."""
    registry = Registry()
    factor = Param("factor", float, 1.0)
    registry.add_primitive(Primitive(name="scaled", slot="scale", factory=nn.Identity, params=(factor,),
                                     canonicalize=_scaled_canonical))
    registry.add_primitive(Primitive(name="flipped", slot="scale", factory=nn.Identity,
                                     params=(factor, Param("note", str, None))))
    registry.add_primitive(Primitive(name="tagged", slot="gate", factory=nn.Identity,
                                     params=(Param("label", str, "plain"), Param("flag", bool, False))))
    axes = Param("axes", "axes", None)
    registry.add_primitive(Primitive(name="grouped", slot="center", factory=nn.Identity, positional=("axes",),
                                     params=(axes, Param("groups", int, None))))
    registry.add_primitive(Primitive(name="sized", slot="center", factory=nn.Identity, positional=("axes",),
                                     params=(axes, Param("group_size", int, None))))
    registry.add_preset(Preset("loop", lambda: "loop"))
    for depth in range(1, 10):  # nest1 -> nest2 -> ... -> nest9 -> scaled(factor=2)
        inner = f"nest{depth + 1}" if depth < 9 else "scaled(factor=2)"
        registry.add_preset(Preset(f"nest{depth}", lambda inner=inner: inner))
    # a preset whose declared default (None: not given) leaves the value to its expand()'s own default
    registry.add_preset(Preset("strong", lambda factor=3.0: f"scaled(factor={factor})",
                               params=(Param("factor", float, None),)))
    return registry


def test_canonicalize_keeps_renames_or_drops_a_step(toy_registry):
    assert parse_spec("scaled(factor=2)", toy_registry) == Spec((Step("scaled", "scale", (("factor", 2.0),)),))
    assert str(parse_spec("scaled", toy_registry)) == "scaled"
    flipped = parse_spec("scaled(factor=-2.5)", toy_registry)
    assert flipped == Spec((Step("flipped", "scale", (("factor", 2.5),)),))
    assert str(flipped) == "flipped(factor=2.5)"
    assert parse_spec("scaled(factor=0)", toy_registry) == Spec()


def test_string_and_bool_parameters_format_canonically(toy_registry):
    spec = parse_spec('tagged(label="Two words", flag=true)', toy_registry)
    assert str(spec) == 'tagged(label="Two words", flag=true)'
    assert parse_spec(str(spec), toy_registry) == spec
    assert str(parse_spec("tagged(label=loud, flag=false)", toy_registry)) == "tagged(label=loud)"
    # a number given to a string parameter keeps the spelling it has as a number
    assert parse_spec("tagged(label=2)", toy_registry).steps[0].get("label") == "2"
    assert parse_spec("tagged(label=2.5)", toy_registry).steps[0].get("label") == "2.5"


def test_one_group_parameter_alone_canonicalizes_and_is_checked(toy_registry):
    assert str(parse_spec("grouped(gx, groups=1)", toy_registry)) == "grouped(cx)"
    assert str(parse_spec("sized(gx, group_size=1)", toy_registry)) == "sized(x)"
    assert str(parse_spec("grouped(gx, groups=2)", toy_registry)) == "grouped(gx, groups=2)"
    for text, message in [("grouped(gx, groups=0)", "grouped: groups must be at least 1, got 0"),
                          ("sized(gx, group_size=0)", "sized: group_size must be at least 1, got 0")]:
        with pytest.raises(SpecError) as info:
            parse_spec(text, toy_registry)
        assert info.value.bare_message == message


def test_presets_nest_and_a_preset_expanding_into_itself_is_refused(toy_registry):
    assert parse_spec("nest1", toy_registry) == parse_spec("scaled(factor=2)", toy_registry)
    with pytest.raises(SpecError) as info:
        parse_spec("tagged | loop", toy_registry)
    assert info.value.bare_message.endswith("preset 'loop' expands into itself")
    assert info.value.position == 9


def test_a_preset_parameter_not_written_takes_the_presets_own_default(toy_registry):
    assert str(parse_spec("strong", toy_registry)) == "scaled(factor=3)"
    assert str(parse_spec("strong(factor=4)", toy_registry)) == "scaled(factor=4)"
