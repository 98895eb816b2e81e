"""Rich tables of a study: its trials, Pareto front, best trials, summary and predictor validation,
and the helpers that fit any table to 80 columns (:func:`stack`, :func:`legend`).

The viewer (:mod:`explorer.tui.app`), the live progress, ``normx report`` and ``normx study
list|pareto|validate`` build on the same functions, so a composition or a number looks the same
wherever it appears. The tables of the commands that read no study (the catalogue, a score result)
are the CLI's own: :mod:`explorer.cli.catalog_tables`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from explorer.direction import Direction
from explorer.search.results import to_float
from explorer.tui.formatting import COLUMNS, PARETO_MARK, format_duration, format_number

if TYPE_CHECKING:  # the study's types load optuna, which the generic helpers do not need
    from explorer.search.results import Objective, StudyData, Summary, TrialRow

STATE_STYLES = {"complete": "green", "running": "cyan", "pruned": "yellow", "failed": "red", "interrupted": "magenta",
                "waiting": "dim"}

# --------------------------------------------------------------------------- fitting 80 columns
# A table fits a narrow terminal when each of its names is kept whole: stack the values of a row in one
# cell (the names on lines of their own that never wrap, prose below them that may), and abbreviate
# headers with a legend under the table. Generic: any command's table can use them.


def stack(*lines: Text | str | None) -> Group:
    """Several values of one row in one cell, one per line (blank ones left out). A cell's lines wrap
    only at spaces and only when wider than the cell: a name is never cut."""
    parts = []
    for line in lines:
        if line is None or str(line) == "":
            continue
        text = line.copy() if isinstance(line, Text) else Text(line)
        text.overflow = "fold"
        parts.append(text)
    return Group(*parts)


class Legend:
    """``cos sim = cosine_similarity · explosion = grad_explosion_exponent``: the abbreviations a table
    used, packed into lines of the console's width without splitting an entry."""

    def __init__(self, entries: Sequence[tuple[str, str]], separator: str = " · "):
        self.entries = list(entries)
        self.separator = separator

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        line = Text(style="dim")
        for short, full in self.entries:
            entry = f"{short} = {full}"
            if line.plain and line.cell_len + len(self.separator) + len(entry) > options.max_width:
                yield line
                line = Text(style="dim")
            if line.plain:
                line.append(self.separator)
            line.append(entry)
        if line.plain:
            yield line


def legend(names: dict[str, str], keys: Sequence[str]) -> Legend:
    """The legend of the abbreviated ``keys`` (``names[key]`` is the short form; unabbreviated keys are left out)."""
    return Legend([(names[key], key) for key in dict.fromkeys(keys) if names.get(key, key) != key])


# --------------------------------------------------------------------------- a study


def state_text(row: TrialRow) -> Text:
    if row.state == "complete" and row.diverged:  # chance accuracy after a NaN loss is not a result
        return Text("diverged", style="bold red")
    return Text(row.state, style=STATE_STYLES.get(row.state, ""))


def row_cells(row: TrialRow, columns: Sequence[str]) -> list[Text | str]:
    """The cells of ``row`` for table ``columns`` (keys of :data:`explorer.tui.formatting.COLUMNS`)."""
    cells: list[Text | str] = []
    for key in columns:
        if key == "number":
            cells.append(Text(f"{PARETO_MARK if row.pareto else ' '}{row.number}",
                              style="bold" if row.pareto else ""))
        elif key == "state":
            cells.append(state_text(row))
        elif key in ("spec", "reason", "progress"):
            cells.append(Text(str(row.value(key)), overflow="ellipsis", no_wrap=True))
        else:
            value = row.value(key)
            text = format_number(value, 3)
            style = "red" if isinstance(value, float) and not math.isfinite(value) else ""
            cells.append(Text(text, style=style, justify="right"))
    return cells


def trials_table(rows: Sequence[TrialRow], columns: Sequence[str] | None = None, title: str = "") -> Table:
    columns = list(columns or COLUMNS)
    table = Table(title=title or None, show_lines=False)
    for key in columns:
        justify = "left" if key in ("spec", "state", "progress", "reason", "number") else "right"
        table.add_column(COLUMNS.get(key, key), justify=justify, overflow="fold" if key == "spec" else "ellipsis")
    for row in rows:
        table.add_row(*row_cells(row, columns))
    return table


def compositions(rows: Sequence[TrialRow]) -> Text:
    """``#27  weight_standardization | affine | relu``, one trial per line: the compositions of a table
    whose number columns took the width, each kept whole on a line of its own."""
    text = Text()
    width = max((len(str(r.number)) for r in rows), default=1) + 1
    for k, row in enumerate({r.number: r for r in rows}.values()):
        if k:
            text.append("\n")
        text.append(f"#{row.number}".rjust(width), style="bold")
        text.append("  ")
        text.append(row.spec or "-", style="cyan")
    text.overflow = "fold"
    return text


def best_table(data: StudyData) -> Group:
    """The best complete trial for each objective; the compositions under the table, by trial number."""
    table = Table(title="best per objective")
    table.add_column("objective", style="bold")
    table.add_column("direction")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    best = data.best()
    shown = []
    for k, objective in enumerate(data.objectives):
        row = best.get(objective.name)
        if row is None:
            table.add_row(objective.name, objective.direction.optuna, "-", Text("no complete trial", style="dim"))
        else:
            table.add_row(objective.name, objective.direction.optuna, format_number(row.values[k], 4), str(row.number))
            shown.append(row)
    return Group(table, compositions(shown)) if shown else Group(table)


def pareto_table(data: StudyData, title: str | None = None) -> Group:
    """The Pareto-front trials with their objective values and predictors; the compositions under the
    table, by trial number, and the abbreviated column names' legend."""
    table = Table(title=title or f"Pareto front ({len(data.pareto_rows)} of {len(data.rows)} trials)")
    table.add_column("#", justify="right", no_wrap=True)
    for objective in data.objectives:
        table.add_column(f"{COLUMNS.get(objective.name, objective.name)} {objective.direction.arrow}", justify="right", no_wrap=True)
    shown_objectives = {o.name for o in data.objectives}
    extra = [k for k in ("cosine_similarity", "grad_explosion_exponent", "test_accuracy", "mean_train_accuracy")
             if k not in shown_objectives]
    for key in extra:
        table.add_column(COLUMNS[key], justify="right", style="dim", no_wrap=True)
    first = data.objectives[0] if data.objectives else None
    rows = sorted(data.pareto_rows, key=lambda r: (r.values[0] if first else r.number), reverse=bool(first and first.maximize))
    for row in rows:
        table.add_row(str(row.number), *[format_number(v, 4) for v in row.values],
                      *[format_number(row.value(k), 3) for k in extra])
    return Group(table, compositions(rows), legend(COLUMNS, [*(o.name for o in data.objectives), *extra]))


def halving_table(data: StudyData) -> Table | None:
    """Policy "halving": per rung, how many candidates reached it and how many stopped there (the
    reasons are each trial's ``reason``); None for a study of another policy."""
    if not any(r.rung is not None for r in data.rows):
        return None
    # a candidate pruned by a threshold before rung 0's ranking has no decision stored: rung 0
    rungs = [(r.rung or 0, r) for r in data.rows if r.reused_from is None and (r.predictors or r.rung is not None)]
    deepest = max(k for k, _ in rungs)
    table = Table(title="successive halving: the rung each candidate reached")
    for name in ("rung", "reached", "stopped there", "running", "e.g. why"):
        table.add_column(name, justify="left" if name in ("rung", "e.g. why") else "right", no_wrap=name != "e.g. why")
    for k in range(deepest + 1):
        reached = [r for rung, r in rungs if rung >= k]
        here = [r for rung, r in rungs if rung == k]
        stopped = [r for r in here if r.state == "pruned"]
        running = [r for r in here if r.state == "running"]
        label = "0 (screening)" if k == 0 else str(k)
        table.add_row(label, str(len(reached)), str(len(stopped)), str(len(running)),
                      stopped[-1].reason if stopped else "")
    return table


#: Short names of the built-in predictors in the validation table (a legend gives the full ones).
SHORT_NAMES = {"cosine_similarity": "cos_sim", "grad_explosion_exponent": "explosion", "stable_rank": "stab_rank",
               "variance_growth_rate": "var_growth", "parameter_count": "params", "forward_flops": "flops",
               "weight_grad_norm": "wgrad_norm"}
SHORT_WIDTH = 10


def short_names(names: Sequence[str]) -> dict[str, str]:
    """A unique name of at most 10 characters for each predictor: itself when short enough, the
    built-in abbreviation, else the initials of its parts (``my_long_predictor`` -> ``mlp``)."""
    out: dict[str, str] = {}
    for name in names:
        short = name if len(name) <= SHORT_WIDTH else SHORT_NAMES.get(name) or \
            "".join(part[:1] for part in name.split("_") if part)[:SHORT_WIDTH - 2] or name[:SHORT_WIDTH - 2]
        base, k = short, 2
        while short in out.values():
            short, k = f"{base}{k}", k + 1
        out[name] = short
    return out


def validation_table(validation: dict[str, Any]) -> Group:
    """Rank correlations of every stored predictor and the combined score with speed and test
    accuracy, with bootstrap CIs and a verdict, strongest first (the result of
    :func:`explorer.search.validation.validate_study`); fits 80 columns, names abbreviated with
    a legend."""
    pairs = validation.get("pairs", [])
    names = list(dict.fromkeys(p["predictor"] for p in pairs))
    short = short_names(names)
    study = f"{validation['study']}: " if validation.get("study") else ""
    table = Table(title=f"{study}predictor validation: Kendall τ and Spearman ρ over "
                        f"{validation.get('trials', '?')} trained trials, 95% bootstrap CI "
                        f"({validation.get('bootstrap', '?')} resamples), strongest first",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    table.add_column("predictor", style="bold", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("vs", no_wrap=True)
    for name in ("Kendall τ", "Spearman ρ"):
        table.add_column(name.split()[1], justify="right", no_wrap=True, header_style="bold")
        table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)

    def cells(result: Any) -> list[Text]:
        if not isinstance(result, dict) or to_float(result.get("value")) is None:
            return [Text("-", style="dim"), Text("", style="dim")]
        value = to_float(result["value"])
        if value is None or math.isnan(value):
            return [Text("nan", style="dim"), Text("")]
        ci = [to_float(c) for c in result.get("ci") or []]
        interval = (f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if len(ci) == 2 and all(c is not None and math.isfinite(c)
                                                                             for c in ci) else "")
        return [Text(f"{value:+.2f}", style="bold" if abs(value) >= 0.5 else ""), Text(interval)]

    styles = {"agrees": "green", "reversed": "red", "chance": "dim", "too few": "yellow"}
    previous = None
    for pair in pairs:
        name = pair["predictor"]
        first = name != previous
        previous = name
        direction = Direction.parse(pair.get("direction"))
        arrow = (direction.arrow if direction else "?") if first else ""
        measure = "speed" if pair.get("measure") == "mean_train_accuracy" else "test"
        tau, rho = cells(pair.get("kendall_tau")), cells(pair.get("spearman_rho"))
        note = pair.get("verdict") or pair.get("note") or ""
        if note == "constant values":
            note = "constant"
        elif note == "fewer than 3 finite values":
            note = "too few"
        table.add_row(short[name] if first else "", arrow, measure, *tau, *rho,
                      Text(note, style=styles.get(note, "dim")), end_section=not first)
    legend = [f"{s} = {n}" for n, s in short.items() if s != n]
    combined = validation.get("combined") or {}
    notes = ["speed = mean training accuracy (the paper's measure), test = test accuracy; ↓ lower is better, "
             "↑ higher.",
             "verdict: agrees / reversed = the τ interval excludes 0, with / against the predictor's direction; "
             "chance = " + str(validation.get("chance_means", "the interval includes 0")) + "; too few = "
             "fewer than 5 trials, fewer than 3 differing from the rest, or an interval the ties make unreliable."]
    if combined.get("predictors"):
        notes.append("combined = " + str(combined.get("definition", "")) + " (Fig. 9's speed-stability trade-off).")
    learned = validation.get("learned") or {}
    if learned.get("note"):
        notes.append(f"learned = the screening score learned from the trained trials; {learned['note']}.")
    if legend:
        notes.append("; ".join(legend) + ".")
    chance = validation.get("chance") or []
    if chance:
        notes.append(f"Not distinguishable from chance: {len(chance)} of {len(pairs)} correlations.")
    return Group(table, *(Text(n, style="dim") for n in notes))


def studies_table(rows: list[dict[str, Any]]) -> Table:
    """The studies of a storage (``normx study list``): name, models, data and start stacked in the first
    column (a model per line), trial counts by state and objectives one per line."""
    table = Table(title="studies", show_lines=True)
    table.add_column("study · models · data · started")
    table.add_column("trials", no_wrap=True)
    table.add_column("objectives", no_wrap=True)
    for r in rows:
        about = " · ".join(str(v) for v in (r.get("data"), r.get("started")) if v)
        states = [f"{n} {state}" for state, n in sorted(r["states"].items())]
        objectives = [f"{o['name']} {Direction.of(o['direction']).arrow}" for o in r["objectives"]]
        table.add_row(stack(Text(r["name"], style="bold"), *(Text(m, style="cyan") for m in r["models"]),
                            Text(about, style="dim") if about else None),
                      stack(f"{r['trials']} in all", *states), stack(*objectives) if objectives else "-")
    return table


def summary_text(name: str, summary: Summary, objectives: Sequence[Objective] = ()) -> Text:
    """Two lines: counts by state; rate, ETA and the best value per objective."""
    counts = summary.counts
    text = Text()
    text.append(f"{name}  ", style="bold")
    budget = f"/{summary.budget}" if summary.budget else ""
    text.append(f"{summary.finished}{budget} finished: ")
    for state in ("complete", "running", "pruned", "failed"):
        text.append(f"{counts.get(state, 0)} {state}", style=STATE_STYLES[state])
        if state == "complete" and summary.diverged:
            text.append(f" ({summary.diverged} diverged)", style="bold red")
        text.append(" ")
    for state in ("interrupted", "waiting"):
        if counts.get(state):
            text.append(f"{counts[state]} {state} ", style=STATE_STYLES[state])
    text.append(f"\n{format_number(summary.rate_per_min, 2)}/min  ETA {format_duration(summary.eta_s)}", style="dim")
    for k, objective in enumerate(objectives):
        row = summary.best.get(objective.name)
        if row is not None:
            text.append(f"  {COLUMNS.get(objective.name, objective.name)}{objective.direction.arrow} ",
                        style="italic")
            text.append(f"{format_number(row.values[k], 3)}", style="bold")
            text.append(f" #{row.number}", style="dim")
    return text
