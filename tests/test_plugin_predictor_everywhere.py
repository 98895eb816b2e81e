"""A plugin's predictor shows everywhere a study's predictors are shown, with no edit of the core:
the example plugin (``dead_unit_fraction``, lower is better) is installed, a tiny real study
screens with it (``[screening] predictors = ["default", "dead_unit_fraction"]``) and trains a few
steps, then ``normx report --json`` and ``--csv``, ``normx study validate --json``,
``normx report --plots`` and the viewer (headless) all show it. The readers take the list from
the stored records (:attr:`explorer.search.results.StudyData.scalar_predictors`), so the viewer
below runs in a process that has not loaded the plugin at all."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import sys

import pytest
from test_plugins import installed_example, run_normx  # noqa: F401
from test_tui_app import screen_text, still
from tiny_study import tiny_study

from explorer.search.results import StudySource
from explorer.tui.app import StudyApp, TrialScreen

PLUGIN = "dead_unit_fraction"
#: four compositions, all trained (a few steps), so that the validation has its three trials
SPACE = '[space.slots]\ncenter = ["none", "mean"]\nscale = ["std", "root_mean_square"]\n[space.params]\naxes = ["c"]'


@pytest.fixture(scope="module")
def study(installed_example, tmp_path_factory):  # noqa: F811
    """(storage URL, study name, the installed plugin's path) of a study run with the plugin's predictor."""
    normx_exe = [shutil.which("normx") or sys.executable, *([] if shutil.which("normx") else ["-m", "explorer"])]
    work = tmp_path_factory.mktemp("plugin-study")
    text = tiny_study("plug", n=4, objectives='test_accuracy = "maximize"', space=SPACE,
                      screening=f'predictors = ["default", "{PLUGIN}"]', training="steps = 4")
    text = text.replace('models = ["mlp(depth=2, width=16)"]', 'models = ["mlp(depth=2, width=8)"]')
    (work / "plug.toml").write_text(text)
    url = f"sqlite:///{work / 'plug.db'}"
    done = run_normx(normx_exe, "study", "run", str(work / "plug.toml"), "--storage", url, path=installed_example)
    assert done.returncode == 0, done.stderr
    return url, "plug", installed_example


def test_the_study_lists_the_plugin_predictor_after_the_papers(study):
    url, name, _ = study
    data = StudySource(url, name).load()
    names = data.scalar_predictors
    assert names[:4] == ("cosine_similarity", "grad_explosion_exponent", "stable_rank", "variance_growth_rate")
    assert PLUGIN in names[4:]
    assert str(data.predictor_direction(PLUGIN)) == "lower"
    # sorted and filtered by it, as the viewer's filter box and a column sort do
    values = [r.predictor(PLUGIN) for r in data.select(sort_key=PLUGIN)]
    assert values == sorted(values)
    cut = values[len(values) // 2]
    assert {r.number for r in data.select(f"{PLUGIN}<={cut}")} == {
        r.number for r in data.rows if r.predictor(PLUGIN) is not None and r.predictor(PLUGIN) <= cut}


def test_report_json_and_csv_hold_it_per_trial(study, normx_exe):
    url, name, plugin = study
    report = run_normx(normx_exe, "report", name, "--storage", url, "--json", "--resamples", "100", path=plugin)
    assert report.returncode == 0, report.stderr
    trials = json.loads(report.stdout)["trials"]
    assert trials and all(PLUGIN in t for t in trials)
    assert all(isinstance(t[PLUGIN], float) and 0 <= t[PLUGIN] <= 1 for t in trials)
    table = run_normx(normx_exe, "report", name, "--storage", url, "--csv", path=plugin)
    assert table.returncode == 0, table.stderr
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    header = table.stdout.splitlines()[0].split(",")
    assert header.index(PLUGIN) > header.index("variance_growth_rate")
    assert [float(r[PLUGIN]) for r in rows] == [t[PLUGIN] for t in trials]


def test_validate_ranks_it(study, normx_exe):
    url, name, plugin = study
    result = run_normx(normx_exe, "study", "validate", name, "--storage", url, "--json", "--resamples", "100",
                       path=plugin)
    assert result.returncode == 0, result.stderr
    validation = json.loads(result.stdout)
    ranked = {r["predictor"]: r for r in validation["ranking"]}
    assert ranked[PLUGIN]["direction"] == "lower"
    assert {p["measure"] for p in validation["pairs"] if p["predictor"] == PLUGIN} == {
        "mean_train_accuracy", "test_accuracy"}


def test_the_validation_figure_has_a_panel_for_it(study, normx_exe, tmp_path):
    pytest.importorskip("matplotlib")
    url, name, plugin = study
    result = run_normx(normx_exe, "report", name, "--storage", url, "--plots", str(tmp_path), "--resamples", "100",
                       path=plugin)
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / f"{name}-validation.svg").read_text()
    # matplotlib keeps each text as a comment beside its paths: the panel's x label, with its arrow
    assert f"<!-- {PLUGIN} ↓ -->" in svg
    assert "<!-- cosine similarity (↓ faster) -->" in svg


def test_the_viewer_shows_it_on_the_trial_screen_and_cycles_to_it(study):
    url, name, _ = study

    async def scenario():
        app = still(StudyApp(StudySource(url, name), refresh_s=None))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, TrialScreen)
            assert PLUGIN.replace("_", " ") in screen_text(app)
            await pilot.press("escape", "3")
            seen = [app.predictor]
            for _ in app.data.scalar_predictors:
                await pilot.press("p")
                seen.append(app.predictor)
            assert seen[0] == "cosine_similarity" and seen[-1] == seen[0]  # around once, back to the first
            assert PLUGIN in seen
            while app.predictor != PLUGIN:
                await pilot.press("p")
            await pilot.pause()
            assert PLUGIN in screen_text(app)  # the plot's title names it
            await pilot.press("q")

    asyncio.run(scenario())
