"""``normx report STUDY --plots DIR`` on a real SQLite study: the four figures hold the data the terminal
views and the validation show; a file or an unwritable --plots is one line with nothing written; without
matplotlib a hint and the report still prints."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from test_tui_model import write_study

from explorer.cli import main
from explorer.search.results import StudySource

pytest.importorskip("matplotlib")
from explorer.plots import study_figures as figures  # noqa: E402  (needs matplotlib, an optional extra)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('plots') / 'study.db'}"
    write_study(url, n=30, running=1)
    return url


@pytest.fixture(scope="module")
def data(url):
    return StudySource(url, "demo").load()


def offsets(figure, axis: int = 0) -> list[np.ndarray]:
    return [c.get_offsets() for c in figure.axes[axis].collections if len(c.get_offsets())]


def test_the_figures_hold_the_views_data(data):
    from explorer.search.validation import trained_rows, validate_study

    pareto = figures.figure_pareto(data)
    complete = [r for r in data.rows if r.state == "complete"]
    assert [len(o) for o in offsets(pareto)] == [len(complete), len(data.pareto_rows)]
    front = offsets(pareto)[1]
    assert sorted(map(tuple, front.tolist())) == sorted((r.values[0], r.values[1]) for r in data.pareto_rows)
    assert len(pareto.axes) == 3  # three objectives: three pairs

    tradeoff = figures.figure_tradeoff(data)
    points = data.tradeoff_points()
    drawn = np.concatenate(offsets(tradeoff)[:2])  # not trained, trained (the front is drawn over them)
    assert sorted(map(tuple, drawn.tolist())) == sorted((p[0], p[1]) for p in points)

    validation = figures.figure_validation(data, resamples=100)
    rows = trained_rows(data)
    result = {(p["predictor"], p["measure"]): p for p in validate_study(data, n_boot=100)["pairs"]}
    for ax, key in zip(validation.axes, ("cosine_similarity", "grad_explosion_exponent", "stable_rank")):
        assert sorted(map(tuple, ax.collections[0].get_offsets().tolist())) == sorted(
            (r[key], r["mean_train_accuracy"]) for r in rows)
        assert f"Kendall τ = {result[(key, 'mean_train_accuracy')]['kendall_tau']['value']:+.2f}" in ax.get_title()

    layers = figures.figure_layers(data)
    best = figures.best_trials(data)
    assert {data.best()[o.name].number for o in data.objectives} <= {r.number for r in best}
    assert len({r.spec for r in best}) == len(best)  # a repeated composition is drawn once
    curves = layers.axes[0].get_lines()
    assert len(curves) == len(best)
    assert np.allclose(curves[0].get_ydata(), best[0].layer_curve("activation_variance"))


def test_a_repeated_composition_is_drawn_once_in_the_layer_curves(data):
    """A repeat (told its earlier result) has the same values, so it sits on the front beside the
    original, as in a real study: the per-layer figure draws that composition once."""
    import dataclasses

    from explorer.search.results.study_data import StudyData

    original = figures.best_trials(data)[0]
    repeat = dataclasses.replace(original, number=max(r.number for r in data.rows) + 1, reused_from=original.number)
    with_repeat = StudyData(data.name, data.objectives, [*data.rows, repeat], data.user_attrs)
    best = figures.best_trials(with_repeat)
    assert [r.number for r in best] == [r.number for r in figures.best_trials(data)]
    assert len(figures.figure_layers(with_repeat).axes[0].get_lines()) == len(best)


def test_report_plots_writes_every_figure(url, tmp_path, capsys):
    import matplotlib.image

    out = tmp_path / "figs" / "new"  # created, parents too
    assert main(["report", "demo", "--storage", url, "--resamples", "100", "--json", "--plots", str(out)]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays one JSON document
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"demo-{n}.{s}" for n in ("pareto", "tradeoff", "validation", "layers") for s in ("png", "svg"))
    for name in names:
        if name.endswith(".png"):
            image = matplotlib.image.imread(out / name)
            assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0.05  # drawn, not blank
    assert "figures: 8 files in" in captured.err


def normx(*args, script=None):
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "explorer", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_plots_at_a_file_or_an_unwritable_directory_is_one_line(url, tmp_path):
    target = tmp_path / "figs.png"
    target.write_text("not a directory")
    for plots, message in ((target, "is a file, not a directory"), ("/proc/normx-plots", "is not a writable directory"),
                           (target / "sub", "is not a writable directory")):
        proc = normx("report", "demo", "--storage", url, "--plots", str(plots))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
        assert proc.stdout == ""  # nothing printed, nothing drawn
    assert target.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs.png"]


WITHOUT_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None  # importing matplotlib now fails as when it is not installed
from explorer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_matplotlib_the_report_prints_with_a_hint(url, tmp_path):
    from explorer.cli.render import PLOTS_HINT

    proc = normx("report", "demo", "--storage", url, "--resamples", "100", "--plots", str(tmp_path / "p"),
                 script=WITHOUT_MATPLOTLIB)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == PLOTS_HINT
    assert "Pareto front" in proc.stdout
    assert list((tmp_path / "p").iterdir()) == []


def test_a_study_without_trained_trials_says_which_figures_it_cannot_draw(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    write_study(url, n=0, running=1)  # one trial, still training: screened, not trained
    assert main(["report", "demo", "--storage", url, "--plots", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "figures: 2 files" in err and "demo-tradeoff.png" in err  # its predictors are known already
    for name in ("pareto", "validation", "layers"):
        assert f"no {name} figure: " in err
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["demo-tradeoff.png", "demo-tradeoff.svg"]
