"""Figures of ``normx reproduce`` in the layout of the paper's (Lubana et al. 2021) figures.

One function per claim draws a :class:`matplotlib.figure.Figure` from the claim's result dict
(:mod:`explorer.claims`); :func:`write_figure` saves it as PNG and SVG. In :mod:`explorer.plots` with
the study's figures, on the same canvas (:mod:`explorer.plots.canvas`): drawing is not the core's
job, and the claims themselves stay free of matplotlib. Matplotlib is an optional extra
(``pip install 'norm-explorer[plots]'``): importing this module without it raises ImportError,
which the CLI turns into a one-line hint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from explorer.claims import label, missing_data
from explorer.plots.canvas import new_figure, save_figure

#: one colour per normalizer, the same in every figure
COLOURS = {"in": "tab:red", "bn": "tab:blue", "gn": "tab:green", "ln": "tab:purple", "wn": "tab:orange",
           "sws": "tab:brown", "dyt": "tab:cyan", "derf": "tab:olive", "seednorm": "tab:pink", "none": "black"}


def _colour(spec: str) -> str:
    return COLOURS.get(spec.partition("(")[0], "tab:gray")


def _finite(values: list[Any]) -> list[float]:
    return [float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan for v in values]


def _by(rows: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def _subtitle(result: dict) -> str:
    parts = [result.get("scale", ""), result.get("data", ""), result.get("device", "")]
    return " · ".join(p for p in parts if p)


def _finish_panel(figure: Figure, ax: Any, result: dict, title: str, xlabel: str, ylabel: str,
                  legend_title: str) -> Figure:
    """The axis labels, legend, grid and title (over the run's subtitle) of a one-panel figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(title=legend_title, fontsize="small")
    ax.grid(alpha=0.3)
    figure.suptitle(f"{title}\n{_subtitle(result)}", fontsize="medium")
    return figure


def figure_claim1(result: dict) -> Figure:
    """Figure 2: activation variance over depth in a ResNet, one line per activation-based normalizer."""
    figure, axes = new_figure(6.0, 3.8)
    ax = axes[0][0]
    model = ""
    for (spec,), rows in _by(result["rows"], "spec").items():
        model = rows[0].get("model", model)
        ax.plot([r["layer"] for r in rows], _finite([r["activation_variance"] for r in rows]), marker="o",
                markersize=3, color=_colour(spec), label=label(spec))
    return _finish_panel(figure, ax, result, f"Figure 2 (Claim 1): linear variance growth in {model}",
                         "layer (stem, then residual blocks)", "activation variance", legend_title="normalizer")


VARIANT_TITLES = {"standard": "(a) standard ResNet", "skipinit": "(b) SkipInit",
                  "resrelu": "(c) nonlinearity on the residual path"}


def figure_claim2(result: dict) -> Figure:
    """Figure 3: log activation variance over depth with WN and SWS, one panel per ResNet variant."""
    variants = list(dict.fromkeys(r["variant"] for r in result["rows"]))
    figure, axes = new_figure(4.0 * len(variants), 3.6, columns=len(variants), sharey=True)
    groups = _by(result["rows"], "variant", "spec")
    for ax, variant in zip(axes[0], variants):
        for (v, spec), rows in groups.items():
            if v == variant:
                ax.semilogy([r["layer"] for r in rows], _finite([r["activation_variance"] for r in rows]),
                            marker="o", markersize=3, color=_colour(spec), label=label(spec))
        ax.set_title(VARIANT_TITLES.get(variant, variant), fontsize="medium")
        ax.set_xlabel("layer (stem, then residual blocks)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("activation variance (log scale)")
    axes[0][0].legend(title="normalizer", fontsize="small")
    figure.suptitle(f"Figure 3 (Claim 2): parametric normalizers in ResNets\n{_subtitle(result)}", fontsize="medium")
    return figure


def figure_claim3(result: dict) -> Figure:
    """Figure 6a: stable rank against sqrt(width / group size), with the least-squares line."""
    figure, axes = new_figure(5.5, 4.0)
    ax = axes[0][0]
    rows = result["rows"]
    x = [r["sqrt_width_over_group_size"] for r in rows]
    y = _finite([r["stable_rank"] for r in rows])
    spread = _finite([r.get("stable_rank_spread", 0.0) for r in rows])
    ax.errorbar(x, y, yerr=[0.0 if math.isnan(s) else s for s in spread], fmt="o", color="tab:green", capsize=3,
                label="GN, mean over seeds (± std)")
    top = ax.secondary_xaxis("top")  # the group sizes, on the points' own positions
    top.set_xticks(x, [str(r["group_size"]) for r in rows], fontsize="small")
    top.set_xlabel("group size", fontsize="small")
    fit = result["summary"].get("fit")
    if fit:
        xs = [min(x), max(x)]
        ax.plot(xs, [fit["intercept"] + fit["slope"] * v for v in xs], "--", color="black",
                label=f"linear fit, R² = {fit['r2']:.3f}")
    ax.set_xlabel("sqrt(width / group size)")
    ax.set_ylabel("stable rank of penultimate activations")
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(alpha=0.3)
    figure.suptitle(f"Figure 6a (Claim 3): {result.get('model', 'plain CNN')}, Gaussian inputs\n{_subtitle(result)}",
                    fontsize="medium")
    return figure


def _group_positions(rows: list[dict]) -> tuple[list[float], list[str]]:
    """x positions (log2 of the group size; LN one step past the largest) and their tick labels."""
    sizes = [r["group_size"] for r in rows if isinstance(r["group_size"], int)]
    top = math.log2(max(sizes)) if sizes else 0.0
    positions = [math.log2(r["group_size"]) if isinstance(r["group_size"], int) else top + 1 for r in rows]
    labels = [str(r["group_size"]) if isinstance(r["group_size"], int) else "LN\n(layer)" for r in rows]
    return positions, labels


def figure_fig6b(result: dict) -> Figure:
    """Figure 6b: penultimate cosine similarity against GN's group size, one line per model; LN last."""
    figure, axes = new_figure(5.5, 4.0)
    ax = axes[0][0]
    styles = ["o-", "s--", "^-.", "d:"]
    ticks: dict[float, str] = {}
    for i, ((model,), rows) in enumerate(_by(result["rows"], "model").items()):
        positions, labels = _group_positions(rows)
        ticks.update(zip(positions, labels))
        ax.plot(positions, _finite([r["cosine_similarity"] for r in rows]), styles[i % len(styles)], label=model)
    ax.set_xticks(list(ticks), list(ticks.values()))
    return _finish_panel(figure, ax, result, "Figure 6b (Claim 3): similarity rises with group size",
                         "group size (IN = 1 … LN = whole layer)", "cosine similarity of penultimate activations",
                         legend_title="model")


def figure_claim4(result: dict) -> Figure:
    """Figure 8: gradient norm over depth (log scale), one panel per model and batch size."""
    panels = list(dict.fromkeys((r["model"], r["batch_size"]) for r in result["rows"]))
    columns = min(len(panels), 2)
    figure, axes = new_figure(4.6 * columns, 3.4 * math.ceil(len(panels) / columns), columns=columns,
                        rows=math.ceil(len(panels) / columns))
    groups = _by(result["rows"], "model", "batch_size", "spec")
    flat = [ax for row in axes for ax in row]
    for ax, (model, batch) in zip(flat, panels):
        for (m, b, spec), rows in groups.items():
            if (m, b) == (model, batch):
                ax.semilogy([r["layer"] for r in rows], _finite([r["grad_norm"] for r in rows]), marker="o",
                            markersize=3, color=_colour(spec), label=label(spec))
        ax.set_title(f"{model}, batch {batch}", fontsize="small")
        ax.set_xlabel("layer")
        ax.set_ylabel("gradient norm (log scale)")
        ax.grid(alpha=0.3, which="both")
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    flat[0].legend(title="normalizer", fontsize="small")
    figure.suptitle(f"Figure 8 (Claim 4): gradient explosion IN ≥ BN ≥ GN ≥ LN\n{_subtitle(result)}",
                    fontsize="medium")
    return figure


def figure_fig9(result: dict) -> Figure:
    """Figure 9: cosine similarity (speed) and gradient explosion (stability) against group size, per model;
    test accuracy below when the result was trained."""
    models = list(dict.fromkeys(r["model"] for r in result["rows"]))
    trained = all("test_accuracy" in r for r in result["rows"])
    figure, axes = new_figure(5.2 * len(models), 6.2 if trained else 3.8, columns=len(models), rows=2 if trained else 1,
                        sharex="col")
    for column, model in enumerate(models):
        rows = [r for r in result["rows"] if r["model"] == model]
        x = [r["group_size"] for r in rows]
        ax = axes[0][column]
        ax.plot(x, _finite([r["cosine_similarity"] for r in rows]), "o-", color="tab:blue",
                label="cosine similarity (↑ slower)")
        ax.set_xscale("log", base=2)
        ax.set_ylabel("cosine similarity", color="tab:blue")
        right = ax.twinx()
        right.plot(x, _finite([r["grad_explosion_exponent"] for r in rows]), "s--", color="tab:red",
                   label="gradient explosion (↑ less stable)")
        right.set_ylabel("gradient explosion exponent\n(decades per layer)", color="tab:red")
        crossing = result.get("summary", {}).get(model, {}).get("crossing_group_size")
        if crossing is not None:
            ax.axvline(crossing, color="gray", linestyle=":", label=f"curves cross (G={crossing})")
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small", loc="lower center",
                  bbox_to_anchor=(0.5, 1.0), title=model, title_fontsize="small", frameon=False)
        ax.grid(alpha=0.3)
        bottom = ax
        if trained:
            bottom = axes[1][column]
            bottom.plot(x, [100 * r["test_accuracy"] for r in rows], "o-", color="black", label="test accuracy")
            if crossing is not None:
                bottom.axvline(crossing, color="gray", linestyle=":")
            bottom.set_ylabel("test accuracy (%)")
            bottom.grid(alpha=0.3)
        bottom.set_xticks(x, [str(g) for g in x])
        bottom.set_xlabel("group size")
    figure.suptitle(f"Figure 9: speed–stability trade-off in GroupNorm\n{_subtitle(result)}", fontsize="medium")
    return figure


def figure_normfree(result: dict) -> Figure:
    """Figures 2-3's layout for the 2025 question: log activation variance over depth per layer, one panel per
    model (a CNN, a ResNet), BN and GN beside DyT, Derf, SeeDNorm and no normalization."""
    models = list(dict.fromkeys(r["model"] for r in result["rows"]))
    figure, axes = new_figure(4.4 * len(models), 3.8, columns=len(models))
    groups = _by(result["rows"], "model", "spec")
    for ax, model in zip(axes[0], models):
        for (m, spec), rows in groups.items():
            if m == model:
                growth = result["summary"][f"{model}/{spec}"]["variance_growth"]["kind"]
                ax.semilogy([r["layer"] for r in rows], _finite([r["activation_variance"] for r in rows]),
                            marker="o", markersize=3, color=_colour(spec), label=f"{label(spec)} ({growth})")
        ax.set_title(model, fontsize="medium")
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3, which="both")
        ax.legend(title="normalizer (variance growth)", fontsize="x-small", title_fontsize="x-small")
    axes[0][0].set_ylabel("activation variance (log scale)")
    figure.suptitle(f"Figure 3 layout, normalization-free layers (DyT, Derf, SeeDNorm) in place of BN\n{_subtitle(result)}",
                    fontsize="medium")
    return figure


CLAIM_FIGURES: dict[str, Callable[[dict], Figure]] = {
    "claim1": figure_claim1, "claim2": figure_claim2, "claim3": figure_claim3, "claim4": figure_claim4,
    "fig6b": figure_fig6b, "fig9": figure_fig9, "normfree": figure_normfree,
}


def create_figure(result: dict) -> Figure:
    """The paper-style figure of a claim's result; ValueError when the claim has none or too little data."""
    draw = CLAIM_FIGURES.get(result.get("claim", ""))
    if draw is None:
        raise ValueError(f"no figure for {result.get('claim')!r}")
    gap = missing_data(result)
    if gap is not None:
        raise ValueError(gap)
    return draw(result)


def write_figure(result: dict, stem: str | Path) -> list[Path]:
    """Save the claim's figure as ``stem.png`` and ``stem.svg``; each file appears whole or not at all."""
    return save_figure(create_figure(result), stem)

