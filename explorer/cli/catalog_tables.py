"""Rich tables of the commands that read no study: the catalogue of the registry (``normx plugins``,
``normalizers``, ``primitives``, ``predictors``, ``models``) and one composition's init predictors
(``normx score``).

In the CLI package, not :mod:`explorer.tui`: they serve non-interactive commands only, and the
terminal UI never shows them. They fit 80 columns with the helpers of :mod:`explorer.tui.tables`
(:func:`~explorer.tui.tables.stack`), which the study tables use too. Imported by
:mod:`explorer.cli.render` only when a table is printed: rich loads with this module.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from explorer.direction import Direction
from explorer.tui.formatting import format_number
from explorer.tui.tables import stack


# --------------------------------------------------------------------------- catalogue


def plugins_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="normx plugins", show_lines=False)
    table.add_column("plugin", style="bold")
    table.add_column("version")
    table.add_column("contributes")
    for row in rows:
        if row.get("error"):
            table.add_row(row["name"], "-", Text(f"failed to load: {row['error']}", style="red"))
            continue
        parts = Text()
        for k, (slot, names) in enumerate(row["contributes"].items()):
            if k:
                parts.append("\n")
            parts.append(slot, style="cyan")
            parts.append(": " + ", ".join(names))
        table.add_row(row["name"], row["version"], parts if parts.plain else "-")
    return table


#: How ``normx predictors`` writes each need, short enough for 80 columns.
NEED_WORDS = {"activations": "act", "output_gradients": "out-grad", "weight_gradients": "w-grad",
              "separate_pass": "own pass"}


def predictors_table(rows: list[dict[str, Any]], width: int = 80) -> Group:
    """The registered predictors (``normx predictors``), stacked to fit ``width`` columns: a line
    with the full name, ↓/↑ (lower/higher is better), what it needs and the plugin, then its doc
    line indented below."""
    name_width = max((len(r["name"]) + 1 for r in rows), default=4)
    need_width = max((len(_needs(r)) for r in rows), default=5)
    header = Text(f"{'name':<{name_width}}  {'':1}  {'needs':<{need_width}}  plugin", style="bold")
    lines: list[Text] = [Text("predictors at initialization (* computed by default)", style="bold"), header]
    for r in rows:
        line = Text()
        line.append(f"{r['name'] + ('*' if r.get('default') else ''):<{name_width}}", style="bold")
        line.append(f"  {Direction.of(r['direction']).arrow}  ")
        line.append(f"{_needs(r):<{need_width}}", style="cyan")
        line.append(f"  {r['plugin']}")
        lines.append(line)
        for part in textwrap.wrap(r["doc"], width=width - 4) or [""]:
            lines.append(Text(f"    {part}", style="dim"))
    for part in textwrap.wrap("↓ lower is better, ↑ higher. needs: act = activations, out-grad = output gradients, "
                              "w-grad = weight gradients (from the shared backward), own pass = a pass of its own",
                              width=width):
        lines.append(Text(part, style="italic"))
    return Group(*lines)


def _needs(row: dict[str, Any]) -> str:
    return ", ".join(NEED_WORDS.get(n, n) for n in row["needs"]) or "-"


def normalizers_table(rows: list[dict[str, Any]]) -> Table:
    """Each preset's composition on a line of its own (never wrapped), its formula, then what it is
    and its parameters: stacked in one cell, so that it fits 80 columns."""
    table = Table(title="normalizers (presets)", show_lines=True)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("composition (canonical) · formula · what it is (parameters)")
    for row in rows:
        params = ", ".join(f"{k}={format_default(v)}" for k, v in row["params"].items())
        about = row.get("doc", "") + (f" ({params})" if params else "")
        table.add_row(row["name"], stack(Text(row["composition"], style="cyan"), Text(row["formula"]),
                                         Text(about, style="dim") if about else None))
    return table


def primitives_table(rows: list[dict[str, Any]]) -> Table:
    """Each primitive in call form with its defaults (never wrapped), its formula, what it is and its plugin."""
    table = Table(title="primitives", show_lines=True)
    table.add_column("slot", style="magenta", no_wrap=True)
    table.add_column(Text("primitive(defaults) · formula · what it is [plugin]"))
    for row in rows:
        params = ", ".join(f"{k}={format_default(v)}" for k, v in row["params"].items())
        call = Text(row["name"], style="bold")
        if params:
            call.append(f"({params})")
        about = " ".join(p for p in (row.get("doc", ""), f"[{row['plugin']}]") if p)
        table.add_row(row["slot"], stack(call, Text(row["formula"]), Text(about, style="dim")))
    return table


def models_table(rows: list[dict[str, Any]]) -> Table:
    """The model architectures: name, parameters with defaults (and choices), description."""
    table = Table(title="models", show_lines=True)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("params (defaults) · description")
    table.add_column("plugin", style="dim", no_wrap=True)
    for row in rows:
        # Text, not markup: "[standard|skipinit]" must print as written
        params = ", ".join(f"{k}={v['default']}" + (f" [{'|'.join(map(str, v['choices']))}]" if v.get("choices") else "")
                           for k, v in row["params"].items())
        table.add_row(row["name"], stack(Text(params or "-", style="cyan"), Text(row["description"], style="dim")),
                      row["plugin"])
    return table


def format_default(value: Any) -> str:
    """A parameter's default as it would be written in a spec: 1.7128585504496627 -> 1.71286."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------- a score result


def _layer_values(values: Sequence[Any]) -> str:
    """Every layer's value (wrapped between values, never cut: a curve with a gap reads wrong)."""
    return " ".join(format_number(v, 3) for v in values)


def score_table(result: dict[str, Any]) -> Group:
    """The init predictors of one composition (the fields of ``normx score --json``); the composition
    and the model head the tables on lines of their own, so that neither wraps at 80 columns."""
    head = Text()
    head.append(str(result.get("spec", "?")), style="bold cyan")
    head.append("\non ", style="dim")
    head.append(str(result.get("model", "?")), style="bold")
    table = Table(title="init predictors", show_header=True)
    table.add_column("predictor", style="bold", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_column("spread over seeds", justify="right", style="dim")
    spread = result.get("spread") or {}
    missing = result.get("missing") or {}
    directions = result.get("directions") or {key: "" for key in ("cosine_similarity", "grad_explosion_exponent",
                                                                  "stable_rank", "variance_growth")}
    for name, direction in directions.items():
        key = name
        parsed = Direction.parse(direction)
        arrow = parsed.arrow if parsed else ""
        value = result.get(key)
        key = key.replace("_", " ")
        if name in missing:
            table.add_row(key, arrow, Text(f"missing: {missing[name]}", style="red"), "")
        elif isinstance(value, dict):
            table.add_row(key, arrow, f"{value.get('kind', '?')} (rate {format_number(value.get('rate'), 3)})",
                          format_number(spread.get(f"{name}_rate"), 3) if f"{name}_rate" in spread else "")
        elif name in result:
            table.add_row(key, arrow, format_number(value, 4),
                          format_number(spread.get(name), 4) if name in spread else "")
    if "overflow" in result:
        table.add_row("overflow", "", Text("yes", style="bold red") if result["overflow"] else "no", "")
    layers = Table(title="per layer (forward order)", show_header=True)
    layers.add_column("quantity", style="bold", no_wrap=True)
    layers.add_column("values", overflow="fold")
    for key in ("activation_variance", "grad_norm"):
        if isinstance(result.get(key), list):
            layers.add_row(key.replace("_", " "), _layer_values(result[key]))
    return Group(head, table, layers)
