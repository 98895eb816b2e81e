"""The replay figure: what each strategy paid to train a composition inside the noise band of the
table's best, side by side.

Drawn from ``normx table replay``'s summary (plain data), so it needs neither optuna nor the table:
one row per strategy, sorted by its median, the median as a dot and the 95 % interval over runs as
a bar, cost on a log axis, the oracle (the lower bound) and TPE + Hyperband (what an Optuna user
runs) as vertical lines. A strategy that pays 1/3 of the Hyperband line is what the project aims at.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from explorer.plots.canvas import new_figure, save_figure

__all__ = ["save_replay_figure"]

#: the strategies drawn in colour (the project's default, and what it is measured against)
COLOURS = {"oracle": "black", "random": "tab:gray", "tpe": "tab:blue", "tpe+hyperband": "tab:orange",
           "tpe+halving": "tab:red", "default": "tab:green", "relative:combined": "tab:green",
           "relative:parameter_count": "tab:brown", "halving": "tab:purple", "halving:learned": "tab:pink",
           "relative:learned": "tab:olive"}


def save_replay_figure(summary: dict[str, Any], out: Path) -> Path:
    """Write ``replay_<table>.png`` and ``.svg`` into ``out``; the PNG's path."""
    out.mkdir(parents=True, exist_ok=True)
    strategies = sorted(summary["strategies"].items(), key=lambda kv: kv[1]["seconds_to_band"]["median"])
    figure, axes = new_figure(8, 1.0 + 0.28 * len(strategies))
    ax = axes[0][0]
    for y, (name, s) in enumerate(strategies):
        sec = s["seconds_to_band"]
        colour = COLOURS.get(name, "0.45")
        if math.isfinite(sec["median"]):
            high = sec["high"] if math.isfinite(sec["high"]) else ax.get_xlim()[1]
            ax.plot([sec["low"], high], [y, y], color=colour, linewidth=2, alpha=0.5, solid_capstyle="butt")
            ax.plot([sec["median"]], [y], "o", color=colour)
        ax.text(1.01, y, f"{100 * s['reached']:.0f} %", transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    for name, style in (("oracle", ":"), ("tpe+hyperband", "--")):
        if name in summary["strategies"]:
            ax.axvline(summary["strategies"][name]["seconds_to_band"]["median"], color=COLOURS[name], linestyle=style,
                       linewidth=0.8)
    ax.set_yticks(range(len(strategies)), [name for name, _ in strategies], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds paid (screening and training, as recorded)\nuntil a composition inside the band is trained",
                  fontsize=9)
    runs = max(s["runs"] for s in summary["strategies"].values())
    ax.set_title(f"{summary['table']}: cost to reach the noise band of the best ({summary['best']:.4f} − "
                 f"{summary['band']:.4f})\nmedian and 95 % interval over {runs} runs; right: the share of runs that reached it",
                 fontsize=9)
    return save_figure(figure, out / f"replay_{summary['table']}")[0]
