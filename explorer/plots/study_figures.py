"""Figures of a study (``normx report STUDY --plots DIR``): the data of the terminal views, drawn for a paper.

- ``pareto``: every complete trial in each pair of objectives, the Pareto front marked and numbered;
- ``tradeoff``: cosine similarity against the gradient-explosion exponent, coloured by test accuracy
  (the viewer's trade-off tab; Figure 9's two axes for every composition of the study);
- ``validation``: each init predictor against training speed (mean training accuracy), with Kendall's τ
  and its bootstrap interval from :func:`explorer.search.validation.validate_study` (the same trials):
  a panel per scalar predictor the study holds (:attr:`StudyData.scalar_predictors`: the paper's,
  then the parameter count, a zero-cost baseline or a plugin's, as the trials stored them);
- ``layers``: the per-layer activation variance and gradient norm of the best trials (the trial screen).

Everything is read from :class:`explorer.search.results.StudyData`, as the viewer and ``normx report``
read it. In :mod:`explorer.plots`, not :mod:`explorer.tui`: these figures are files for a paper, not
terminal views, and share the claim figures' canvas (:mod:`explorer.plots.canvas`). Matplotlib is
optional: importing this module without it raises ImportError.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from explorer.plots.canvas import new_figure, remove_files, save_figure
from explorer.direction import Direction
from explorer.search.results import StudyData, TrialRow, finite
from explorer.search.validation import MEASURES, ValidationError, trained_rows, validate_study

#: how many trials the per-layer figure draws at most
BEST_TRIALS = 6
AXIS_LABELS = {"cosine_similarity": "cosine similarity (↓ faster)", "grad_explosion_exponent": "gradient explosion exponent (↓ stabler)",
          "stable_rank": "stable rank", "variance_growth_rate": "variance growth rate",
          "test_accuracy": "test accuracy", "mean_train_accuracy": "mean training accuracy (speed)"}


def _label(key: str, direction: Direction | None = None) -> str:
    """An axis label: the built-in one (without its note when a direction's arrow follows), else the
    name itself (a plugin's predictor), with the arrow of ``direction``."""
    if direction is None:
        return AXIS_LABELS.get(key, key)
    return f"{AXIS_LABELS.get(key, key).split(' (')[0]} {direction.arrow}"


def _title(figure: Figure, data: StudyData, what: str) -> None:
    models = ", ".join(data.user_attrs.get("models", []) or [])
    source = " · ".join(p for p in (models, str(data.user_attrs.get("data") or "")) if p)
    figure.suptitle(f"study {data.name}: {what}" + (f"\n{source}" if source else ""), fontsize="medium")


def _complete(data: StudyData) -> list[TrialRow]:
    k = len(data.objectives)
    return [r for r in data.rows if r.state == "complete" and len(r.values) == k and all(finite(v) for v in r.values)]


def figure_pareto(data: StudyData) -> Figure:
    """Each pair of objectives (one objective: its value over trial number), front marked and numbered."""
    rows = _complete(data)
    if not rows:
        raise ValueError("no complete trial with objective values")
    objectives = data.objectives
    pairs = list(itertools.combinations(range(len(objectives)), 2)) or [(None, 0)]
    figure, axes = new_figure(4.2 * len(pairs), 3.8, columns=len(pairs))
    front = [r for r in rows if r.pareto]
    for ax, (i, j) in zip(axes[0], pairs):
        def xs(rs: list[TrialRow]) -> list[float]:
            return [float(r.number) if i is None else r.values[i] for r in rs]

        ax.scatter(xs(rows), [r.values[j] for r in rows], s=14, color="tab:gray", alpha=0.6, label="complete trial")
        ax.scatter(xs(front), [r.values[j] for r in front], s=36, marker="D", color="tab:red", edgecolor="black",
                   linewidth=0.5, label="Pareto front", zorder=3)
        for r, x in zip(front, xs(front)):
            ax.annotate(f"#{r.number}", (x, r.values[j]), textcoords="offset points", xytext=(4, 3), fontsize="x-small")
        ax.set_xlabel("trial" if i is None else _label(objectives[i].name, objectives[i].direction))
        ax.set_ylabel(_label(objectives[j].name, objectives[j].direction))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="x-small")
    _title(figure, data, f"Pareto front ({len(front)} of {len(rows)} complete trials)")
    return figure


def figure_tradeoff(data: StudyData) -> Figure:
    """Cosine similarity against the explosion exponent for every screened trial, coloured by test accuracy."""
    points = data.tradeoff_points()
    if not points:
        raise ValueError("no trial with both cosine similarity and explosion exponent")
    figure, axes = new_figure(5.6, 4.2)
    ax = axes[0][0]
    trained = [p for p in points if p[2] is not None]
    untrained = [p for p in points if p[2] is None]
    if untrained:
        ax.scatter([p[0] for p in untrained], [p[1] for p in untrained], s=16, facecolor="none", edgecolor="tab:gray",
                   label="not trained (pruned, failed or screening)")
    if trained:
        dots = ax.scatter([p[0] for p in trained], [p[1] for p in trained], c=[p[2] for p in trained], cmap="viridis",
                          s=26, edgecolor="black", linewidth=0.3, label="trained")
        figure.colorbar(dots, ax=ax, label="test accuracy")
    front = [p for p in points if p[3].pareto]
    if front:
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=90, marker="D", facecolor="none", edgecolor="tab:red",
                   linewidth=1.2, label="Pareto front")
        for x, y, _, row in front:
            ax.annotate(f"#{row.number}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize="x-small")
    ax.set_xlabel(AXIS_LABELS["cosine_similarity"])
    ax.set_ylabel(AXIS_LABELS["grad_explosion_exponent"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")
    _title(figure, data, f"speed–stability trade-off ({len(points)} trials)")
    return figure


def figure_validation(data: StudyData, resamples: int = 1000) -> Figure:
    """Each init predictor against training speed, over the trials the validation correlates, with its τ."""
    # a panel per predictor, each over the trained trials that hold it (one list of trials when, as
    # in a study run by normx, every trial stored the same predictors)
    panels = {key: rows for key in data.scalar_predictors if (rows := trained_rows(data, (key,)))}
    if not panels:
        raise ValueError("no trained trial with finite predictors")
    try:
        pairs = {(p["predictor"], p["measure"]): p for p in validate_study(data, n_boot=resamples)["pairs"]}
    except ValidationError as err:
        pairs, why = {}, str(err)
    else:
        why = ""
    measure = MEASURES[0]  # mean training accuracy: the paper's speed
    figure, axes = new_figure(3.8 * len(panels), 3.6, columns=len(panels), sharey=True)
    for ax, (key, rows) in zip(axes[0], panels.items()):
        ax.scatter([r[key] for r in rows], [r[measure] for r in rows], s=18, color="tab:blue", edgecolor="black",
                   linewidth=0.3)
        pair = pairs.get((key, measure)) or {}
        tau = pair.get("kendall_tau")
        if isinstance(tau, dict) and finite(tau.get("value")):
            low, high = tau.get("ci", [math.nan, math.nan])
            ci = f" [{low:+.2f}, {high:+.2f}]" if finite(low) and finite(high) else ""
            ax.set_title(f"Kendall τ = {tau['value']:+.2f}{ci}", fontsize="small")
        else:
            ax.set_title(f"τ: {pair.get('note') or why or 'none'}", fontsize="x-small")
        ax.set_xlabel(AXIS_LABELS[key] if key in AXIS_LABELS else _label(key, data.predictor_direction(key)))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(AXIS_LABELS[measure])
    trained = max(len(rows) for rows in panels.values())
    _title(figure, data, f"init predictors vs training speed ({trained} trained trials, 95% bootstrap CI)")
    return figure


def best_trials(data: StudyData, limit: int = BEST_TRIALS) -> list[TrialRow]:
    """The best trial of each objective, then the rest of the Pareto front by the first objective; with curves."""
    chosen: dict[str, TrialRow] = {}
    first = data.objectives[0] if data.objectives else None
    front = sorted(data.pareto_rows, key=lambda r: r.values[0], reverse=bool(first and first.maximize))
    for row in [*data.best().values(), *front]:
        # a repeat of a composition has the same curves: one line per composition
        if row.layer_curve("activation_variance") or row.layer_curve("grad_norm"):
            chosen.setdefault(row.spec, row)
    return list(chosen.values())[:limit]


def _curves(row: TrialRow, model: str | None, key: str) -> list[float]:
    """A trial's per-layer curve on ``model`` (``predictors_by_model``), else its own (one-model studies)."""
    if model is not None:
        predictors = row.record.predictors_by_model.get(model)
        raw: list[float | None] = list(getattr(predictors, key)) if predictors is not None else []
    else:
        raw = row.layer_curve(key)
    return [v if v is not None and finite(v) and v > 0 else math.nan for v in raw]


def figure_layers(data: StudyData) -> Figure:
    """Per-layer activation variance and gradient norm (log scale) of the best trials, forward order; a row
    of panels per model when the study has several (a trial's own curve is then its worst model's)."""
    rows = best_trials(data)
    if not rows:
        raise ValueError("no complete trial with per-layer predictors")
    models = [m for m in data.user_attrs.get("models", []) or []
              if any(m in r.record.predictors_by_model for r in rows)]
    panels: list[str | None] = list(models) if len(models) > 1 else [None]
    figure, axes = new_figure(9.0, 3.2 * len(panels) + 1.2, columns=2, rows=len(panels))
    for line, model in zip(axes, panels):
        for row in rows:
            for ax, key in zip(line, ("activation_variance", "grad_norm")):
                values = _curves(row, model, key)
                ax.semilogy(range(1, len(values) + 1), values, marker="o", markersize=3, label=f"#{row.number} {row.spec}")
        line[0].set_ylabel(f"{model}\nlog scale" if model else "log scale", fontsize="small")
        for ax in line:
            ax.grid(alpha=0.3, which="both")
    axes[0][0].set_title("activation variance", fontsize="small")
    axes[0][1].set_title("gradient norm w.r.t. each layer's output", fontsize="small")
    for ax in axes[-1]:
        ax.set_xlabel("layer (forward order)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", fontsize="x-small", ncols=1)
    _title(figure, data, f"per-layer curves of the {len(rows)} best trials")
    return figure


STUDY_FIGURES: dict[str, Callable[[StudyData], Figure]] = {
    "pareto": figure_pareto, "tradeoff": figure_tradeoff, "validation": figure_validation, "layers": figure_layers,
}


def study_figures(data: StudyData, resamples: int = 1000) -> tuple[dict[str, Figure], dict[str, str]]:
    """Every figure the study has data for, and why each of the others is missing."""
    drawn: dict[str, Figure] = {}
    missing: dict[str, str] = {}
    for name, draw in STUDY_FIGURES.items():
        try:
            drawn[name] = draw(data, resamples) if name == "validation" else draw(data)  # type: ignore[call-arg]
        except ValueError as err:
            missing[name] = str(err)
    return drawn, missing


def write_study_figures(data: StudyData, directory: Path, resamples: int = 1000) -> tuple[list[Path], dict[str, str]]:
    """Draw every figure first, then save each as ``DIR/STUDY-NAME.png`` and ``.svg`` (each file whole or absent)."""
    drawn, missing = study_figures(data, resamples)
    files: list[Path] = []
    try:
        for name, figure in drawn.items():
            files += save_figure(figure, directory / f"{_safe(data.name)}-{name}")
    except BaseException:  # a full disk: none of this call's figures stay (each one is whole, but the set is not)
        remove_files(files)
        raise
    return files, missing


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


def describe(files: list[Path], missing: dict[str, str], directory: Any) -> list[str]:
    """The lines the CLI prints about what it wrote."""
    lines = [f"figures: {len(files)} files in {directory}: " + ", ".join(p.name for p in files if p.suffix == ".png")]
    lines += [f"no {name} figure: {why}" for name, why in missing.items()]
    return lines
