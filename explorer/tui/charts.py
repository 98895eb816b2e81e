"""The study's plots: the speed–stability trade-off, a predictor against accuracy, a trial's per-layer
curves. Built from :class:`explorer.search.results.StudyData` series into braille :class:`Plot` renderables,
shared by the viewer and the report.
"""

from __future__ import annotations

from rich.text import Text

from explorer.search.results import StudyData, TrialRow
from explorer.tui.formatting import COLUMNS, PARETO_MARK
from explorer.tui.plot import MISSING_COLOUR, Plot, Series, colour_for, scale_legend

LABELS = {"cosine_similarity": "cosine similarity", "grad_explosion_exponent": "gradient explosion exponent",
          "stable_rank": "stable rank", "variance_growth_rate": "activation variance growth rate",
          "test_accuracy": "test accuracy", "mean_train_accuracy": "mean train accuracy"}


def _accuracy_range(values: list[float]) -> tuple[float, float]:
    return (min(values), max(values)) if values else (0.0, 1.0)


def tradeoff_plot(data: StudyData, height: int | None = None, selected: int | None = None) -> Plot:
    """Cosine similarity (x, lower = faster optimisation) against the gradient-explosion exponent
    (y, lower = more stable), coloured by test accuracy; Pareto trials marked ◆, ``selected`` ✚."""
    points = data.tradeoff_points()
    accs = [acc for _, _, acc, _ in points if acc is not None]
    lo, hi = _accuracy_range(accs)
    buckets: dict[str, list[tuple[float, float]]] = {}
    # untrained points first so that trained ones win a shared cell
    for x, y, acc, _row in sorted(points, key=lambda p: -1.0 if p[2] is None else p[2]):
        buckets.setdefault(colour_for(acc, lo, hi), []).append((x, y))
    order = [MISSING_COLOUR, *[c for c in buckets if c != MISSING_COLOUR]]
    series = [Series(buckets[c], colour=c) for c in order if c in buckets]
    markers = [(x, y, PARETO_MARK, "bright_white") for x, y, _acc, row in points if row.pareto]
    markers += [(x, y, "✚", "magenta") for x, y, _acc, row in points if row.number == selected]
    legend = scale_legend("test acc", lo, hi)
    legend.append(f"  {PARETO_MARK} Pareto", style="bold")
    return Plot(series, title=f"speed–stability trade-off ({len(points)} trials)",
                x_label="cosine similarity ↓ faster", y_label="explosion exponent ↓ stabler",
                height=height, markers=markers, legend=legend)


def predictor_plot(data: StudyData, predictor: str, outcome: str = "test_accuracy", height: int | None = None) -> Plot:
    """``predictor`` (x) against a measured ``outcome`` (y) over the trained trials; Pareto trials marked."""
    points = data.predictor_points(predictor, outcome)
    plain = [(x, y) for x, y, row in points if not row.pareto]
    front = [(x, y) for x, y, row in points if row.pareto]
    markers = [(x, y, PARETO_MARK, "bright_white") for x, y in front]
    legend_text = f"{len(points)} trained trials; {PARETO_MARK} Pareto"
    return Plot([Series(plain, colour="cyan"), Series(front, colour="bright_white")],
                title=f"{LABELS.get(predictor, predictor)} against {LABELS.get(outcome, outcome)}",
                x_label=COLUMNS.get(predictor, predictor), y_label=COLUMNS.get(outcome, outcome),
                height=height, markers=markers, legend=Text(legend_text, style="dim"))


def layer_plot(row: TrialRow, name: str, height: int | None = None) -> Plot:
    """A per-layer curve of one trial (``activation_variance`` or ``grad_norm``) over depth, log scale."""
    curve = row.layer_curve(name)
    points = [(float(k + 1), v) for k, v in enumerate(curve) if v is not None]
    label = {"activation_variance": "activation variance", "grad_norm": "gradient norm"}.get(name, name)
    colour = "green3" if name == "activation_variance" else "orange1"
    return Plot([Series(points, colour=colour, line=True)], title=f"{label} per layer (trial #{row.number})",
                x_label="layer (forward order)", y_label=label, height=height, log_y=True)


def loss_plot(row: TrialRow, height: int | None = None) -> Plot:
    """The training loss curve of one trial."""
    points = [(s, v) for s, v in row.loss_curve() if v is not None]
    return Plot([Series(points, colour="cyan", line=True)], title=f"training loss (trial #{row.number})",
                x_label="step", y_label="loss", height=height)
