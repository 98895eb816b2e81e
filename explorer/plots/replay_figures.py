"""The replay figure: best final test accuracy found so far against what was paid, per strategy.

Drawn from ``normx table replay``'s summary (plain data), so it needs neither optuna nor the table:
the median over runs as a line, the 95 % interval as a band, the noise band of the table's best as
a grey strip, cost on a log axis. One strategy's line reaching the strip early is the whole point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.plots.canvas import new_figure, save_figure

__all__ = ["save_replay_figure"]

#: strategies drawn with their own colour (the rest in grey, thin)
HIGHLIGHT = ("oracle", "random", "tpe", "tpe+hyperband", "tpe+halving", "default", "relative:combined",
             "relative:parameter_count")


def save_replay_figure(summary: dict[str, Any], out: Path) -> Path:
    """Write ``replay_<table>.png`` and ``.svg`` into ``out``; the PNG's path."""
    out.mkdir(parents=True, exist_ok=True)
    figure, axes = new_figure(8, 5)
    ax = axes[0][0]
    grid = np.asarray(summary["grid_seconds"])
    best, band = summary["best"], summary["band"]
    ax.axhspan(best - band, best, color="0.85", label=f"noise band of the best ({best:.3f})")
    colours = iter(["black", "tab:gray", "tab:blue", "tab:orange", "tab:red", "tab:green", "tab:purple", "tab:brown"])
    for name, s in summary["strategies"].items():
        median = np.asarray(s["curve"]["median"], dtype=float)
        shown = np.isfinite(median)
        if not shown.any():
            continue
        if name in HIGHLIGHT:
            colour = next(colours, "tab:olive")
            low = np.asarray(s["curve"]["low"], dtype=float)
            high = np.asarray(s["curve"]["high"], dtype=float)
            both = shown & np.isfinite(low) & np.isfinite(high)
            ax.fill_between(grid[both], low[both], high[both], color=colour, alpha=0.12, linewidth=0)
            ax.step(grid[shown], median[shown], where="post", color=colour, linewidth=1.6, label=name)
        else:
            ax.step(grid[shown], median[shown], where="post", color="0.6", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("cost paid (seconds of screening and training, as recorded)")
    ax.set_ylabel("best final test accuracy trained so far")
    runs = max(s["runs"] for s in summary["strategies"].values())
    ax.set_title(f"{summary['table']}: searches replayed, {runs} runs each, until one reaches the band\n"
                 "(median and 95 % interval; grey lines: the relative policy by the other predictors)", fontsize=10)
    finite = [v for s in summary["strategies"].values() for v in s["curve"]["median"] if np.isfinite(v)]
    if finite:
        ax.set_ylim(max(min(finite), best - 20 * max(band, 1e-3)), best + max(band, 1e-3))
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(figure, out / f"replay_{summary['table']}")[0]
