"""``normx plugins``, ``normx normalizers``, ``normx primitives``, ``normx predictors`` and ``normx spec``:
what is installed."""

from __future__ import annotations

import argparse
from typing import Any

from explorer.cli.render import print_json, print_normalizers, print_plugins, print_predictors, print_primitives, show
from explorer.errors import NormxError
from explorer.registry import SLOTS
from explorer.spec import parse_spec


def add_parsers(sub: argparse._SubParsersAction) -> None:
    listings = (
        ("plugins", "list plugins with their versions and what each contributes", run_plugins),
        ("normalizers", "list the preset normalizers with their compositions and formulas", run_normalizers),
        ("primitives", "list the primitives by slot with their parameters", run_primitives),
        ("predictors", "list the predictors at initialization: direction, needs, plugin", run_predictors),
    )
    for name, help_text, run in listings:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=run)
    p = sub.add_parser("spec", help="parse a normalizer spec and print its canonical form")
    p.add_argument("spec", help="a preset or composition, e.g. 'gn(group_size=4) | tlu'")
    p.add_argument("--width", type=int, metavar="C",
                   help="resolve the spec for a layer of C channels (GN with group size C is LN) and build it")
    p.add_argument("--batch", type=int, metavar="N",
                   help="with --width: run a training forward + backward of a random (N, C, 8, 8) batch")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_spec)


def plugins_data() -> list[dict[str, Any]]:
    from explorer.plugins import get_registry  # entry points and pluggy: loaded only when a command runs

    reg = get_registry()
    rows = []
    for name, contributed in sorted(reg.contributions().items()):
        rows.append({"name": name, "version": reg.plugin_versions.get(name, "?"),
                     "contributes": {k: sorted(v) for k, v in sorted(contributed.items())}})
    for name, error in sorted(reg.failed.items()):
        rows.append({"name": name, "version": None, "error": error, "contributes": {}})
    return rows


def normalizers_data() -> list[dict[str, Any]]:
    from explorer.plugins import get_registry

    reg = get_registry()
    return [
        {"name": p.name, "composition": str(parse_spec(p.name, reg)), "formula": p.formula, "doc": p.doc,
         "params": {q.name: q.default for q in p.params}, "plugin": p.plugin}
        for p in sorted(reg.presets.values(), key=lambda p: p.name)
    ]


def primitives_data() -> list[dict[str, Any]]:
    from explorer.plugins import get_registry

    reg = get_registry()
    prims = sorted(reg.primitives.values(), key=lambda p: (SLOTS.index(p.slot), p.name))
    return [
        {"name": p.name, "slot": p.slot, "formula": p.formula, "doc": p.doc, "plugin": p.plugin,
         "params": {q.name: q.default for q in p.params}}
        for p in prims
    ]


def predictors_data() -> list[dict[str, Any]]:
    from explorer.plugins import get_registry
    from explorer.records import DEFAULT_PREDICTORS
    from explorer.scoring import predictor_order

    reg = get_registry()
    return [
        {"name": p.name, "direction": p.direction, "needs": list(p.needs), "per": p.per, "scalar": p.scalar,
         "default": p.name in DEFAULT_PREDICTORS, "plugin": p.plugin, "doc": p.doc, "reference": p.reference}
        for p in (reg.predictors[n] for n in predictor_order(reg.predictors))
    ]


def run_predictors(args: argparse.Namespace) -> int:
    return show(predictors_data(), args.json, print_predictors)


def run_plugins(args: argparse.Namespace) -> int:
    return show(plugins_data(), args.json, print_plugins)


def run_normalizers(args: argparse.Namespace) -> int:
    return show(normalizers_data(), args.json, print_normalizers)


def run_primitives(args: argparse.Namespace) -> int:
    return show(primitives_data(), args.json, print_primitives)


def run_spec(args: argparse.Namespace) -> int:
    spec = parse_spec(args.spec)
    if args.width is not None or args.batch is not None:
        spec = _check_spec(spec, args.width, args.batch)
    data = {"spec": str(spec), "steps": [{"slot": s.slot, "primitive": s.name, "params": s.kwargs} for s in spec.steps],
            "batch_statistics": spec.uses_batch_statistics()}
    if args.json:
        print_json(data)
    else:
        print(data["spec"])
    return 0


def _check_spec(spec: Any, width: int | None, batch: int | None) -> Any:
    """The spec resolved for ``width`` channels, built as a conv layer (and run on a batch)."""
    if width is None:
        raise NormxError("--batch needs --width: the layer's channel count")
    if width < 1 or (batch is not None and batch < 1):
        raise NormxError(f"--width and --batch must be at least 1; got width {width}, batch {batch}")
    import torch

    from explorer.norm import create_conv, regularizer_loss

    spec = spec.resolved(width)
    layer = create_conv(spec, width, width)
    if batch is not None:
        layer.train()
        out = layer(torch.randn(batch, width, 8, 8))
        (out.square().mean() + regularizer_loss(layer)).backward()
        if not torch.isfinite(out).all():
            raise NormxError(f"{spec}: non-finite output on a random ({batch}, {width}, 8, 8) batch")
    return spec
