"""What ``normx table`` prints: rich tables of the committed tables, a table's correlations, and a
replay's costs side by side. Imported only when a command prints (rich is loaded then)."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table as RichTable
from rich.text import Text

from explorer.normbench.table import BAND_SIGMAS, Table


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—" if value is None or math.isnan(value) else ("∞" if value > 0 else "-∞")
    return f"{value:.{digits}f}"


def tables_table(rows: list[dict[str, Any]]) -> RichTable:
    out = RichTable(title="NormBench tables")
    for column in ("table", "compositions", "task", "σ", "in band", "CPU h"):
        out.add_column(column, justify="right" if column not in ("table", "task") else "left")
    for r in rows:
        band = f"{100 * r['band_fraction']:.0f} %" + (" flat" if r["flat"] else "")
        out.add_row(r["name"], f"{r['trained']}/{r['compositions']}",
                    f"{', '.join(r['models'] or [])} on {r['data']}, {r['steps']} steps", _number(r["sigma"], 4),
                    band, _number(r.get("cpu_hours"), 2))
    return out


def metadata_text(table: Table) -> Text:
    m = table.metadata
    flat = " (flat: more than 10 % of the compositions are inside it, no search task)" if table.flat else ""
    return Text(f"{table.name}: {len(table.rows)} compositions ({len(table.trained)} trained) of "
                f"{', '.join(m.get('models', []))} on {m.get('data')}, {m.get('steps')} steps, checkpoints "
                f"{m.get('checkpoints')}\nbest {table.best.spec} at {table.best.test_accuracy:.4f}; seed noise "
                f"σ = {_number(table.noise_sigma, 4)} over {m.get('noise', {}).get('compositions')} compositions; "
                f"band (best − {BAND_SIGMAS:g}σ) holds {100 * table.band_fraction:.0f} %{flat}\n"
                f"built {m.get('built')} on {m.get('cpu')} with torch {m.get('torch')}, "
                f"{_number(m.get('cpu_hours'), 2)} CPU hours")


def _interval(result: dict[str, Any] | None) -> str:
    if not result:
        return "—"
    low, high = result["ci"]
    return f"{result['value']:+.2f} [{_number(low, 2)}, {_number(high, 2)}]"


def correlations_table(entries: list[dict[str, Any]]) -> RichTable:
    out = RichTable(title="predictor vs outcome, signed (+: ranks as its direction claims), 95 % bootstrap")
    for column in ("predictor", "", "τ accuracy", "ρ accuracy", "τ speed", "ρ speed", "n"):
        out.add_column(column, justify="left" if column in ("predictor", "") else "right")
    for e in entries:
        acc, speed = e.get("test_accuracy") or {}, e.get("mean_train_accuracy") or {}
        arrow = {"lower": "↓", "higher": "↑"}.get(e["direction"], "")
        out.add_row(e["predictor"], arrow, _interval(acc.get("kendall_tau")), _interval(acc.get("spearman_rho")),
                    _interval(speed.get("kendall_tau")), _interval(speed.get("spearman_rho")), str(acc.get("n", "")))
    return out


def transfer_table(entry: dict[str, Any]) -> RichTable:
    """One held-out table of ``normx table learned``: every score's τ and ρ against its final test
    accuracy, strongest first, the learned one fitted on the other tables only."""
    learned = entry["learned"]
    out = RichTable(title=f"{entry['table']}, held out ({entry['n']} compositions): score vs final test accuracy, "
                          f"signed (+: ranks as its direction claims), 95 % bootstrap",
                    caption=f"learned: {learned.get('note', '')}")
    for column in ("score", "", "τ", "ρ"):
        out.add_column(column, justify="left" if column in ("score", "") else "right")
    for e in entry["scores"]:
        arrow = {"lower": "↓", "higher": "↑"}.get(e["direction"], "")
        name = e["score"] + (" (best single)" if e["score"] == entry["best_single"] else "")
        style = "bold" if e["kind"] == "learned" else None
        out.add_row(name, arrow, _interval(e.get("kendall_tau")), _interval(e.get("spearman_rho")), style=style)
    return out


def fronts_table(fronts: dict[str, Any]) -> RichTable:
    names = ", ".join(f"{n} ({w})" for n, w in fronts["objectives"].items())
    out = RichTable(title=f"cost to cover {100 * fronts['share']:.0f} % of the table's hypervolume on {names}; "
                          "median [95 %] over runs")
    for column in ("strategy", "reached", "seconds"):
        out.add_column(column, justify="left" if column == "strategy" else "right")
    for name, s in sorted(fronts["strategies"].items(), key=lambda kv: kv[1]["seconds_to_front"]["median"]):
        sec = s["seconds_to_front"]
        out.add_row(name, f"{100 * s['reached']:.0f} %",
                    f"{_number(sec['median'], 1)} [{_number(sec['low'], 1)}, {_number(sec['high'], 1)}]")
    return out


def replay_table(summary: dict[str, Any]) -> RichTable:
    out = RichTable(title=f"{summary['table']}: cost to train a composition inside the band of the best "
                          f"(best {summary['best']:.4f}, band {summary['band']:.4f}); median [95 %] over runs")
    for column in ("strategy", "reached", "seconds", "steps", "× TPE+Hyperband", "× random"):
        out.add_column(column, justify="left" if column == "strategy" else "right")
    strategies = summary["strategies"]

    def median(name: str) -> float:
        return strategies[name]["seconds_to_band"]["median"] if name in strategies else math.nan

    for name, s in sorted(strategies.items(), key=lambda kv: kv[1]["seconds_to_band"]["median"]):
        sec, steps = s["seconds_to_band"], s["steps_to_band"]
        ratio = [sec["median"] / median(ref) if median(ref) and math.isfinite(median(ref)) else math.nan
                 for ref in ("tpe+hyperband", "random")]
        out.add_row(name, f"{100 * s['reached']:.0f} %",
                    f"{_number(sec['median'], 1)} [{_number(sec['low'], 1)}, {_number(sec['high'], 1)}]",
                    f"{_number(steps['median'], 0)}", _number(ratio[0], 2), _number(ratio[1], 2))
    return out
