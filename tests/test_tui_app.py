"""The viewer driven headlessly with Textual's Pilot on a real SQLite study: navigate, sort, filter,
open a trial, help, quit; and text snapshots at fixed terminal sizes.

Snapshots live in tests/snapshots/*.txt (see tests/snapshot_check.py); a missing one fails. After an
intended change of the layout, regenerate them with ``NORMX_UPDATE_SNAPSHOTS=1 python -m pytest
tests/test_tui_app.py`` and review the diff.
"""

from __future__ import annotations

import asyncio
import contextlib
import io

import pytest
from rich.console import Console
from test_tui_model import write_study

from snapshot_check import check_snapshot

from explorer.search.results import StudySource
from explorer.tui.app import HelpScreen, MainScreen, StudyApp, TrialScreen
from explorer.tui.widgets import PlotView, TooSmall, TrialsTable



@pytest.fixture(scope="module")
def url(tmp_path_factory):
    # no running trials: the rate and ETA then depend only on stored timestamps (stable snapshots)
    url = f"sqlite:///{tmp_path_factory.mktemp('app') / 'study.db'}"
    write_study(url, n=40, running=0, n_trials=50)
    return url


def screen_text(app: StudyApp) -> str:
    """The screen as plain text (what a user sees, without colours)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, force_terminal=True,
                      color_system=None, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def still(app: StudyApp) -> StudyApp:
    """The app without animations: a tab's underline that slides for 0.3 s is caught mid-way by a
    snapshot on a busy machine."""
    app.animation_level = "none"
    return app


@contextlib.asynccontextmanager
async def viewer(url: str, size: tuple[int, int]):
    """The viewer on study "demo", without periodic reloads, run headlessly at ``size`` until its first screen."""
    app = still(StudyApp(StudySource(url, "demo"), refresh_s=None))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        yield app, pilot


def run(coro):
    return asyncio.run(coro)


def table_numbers(app: StudyApp) -> list[int]:
    table = app.table
    return [int(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def test_navigate_sort_filter_open_help_quit(url):
    async def scenario():
        async with viewer(url, (100, 30)) as (app, pilot):
            assert isinstance(app.screen, MainScreen)
            assert table_numbers(app) == list(range(40))
            # sort: 's' moves to the next column (composition), clicking a header sorts by it
            await pilot.press("s")
            assert app.table.sort_key == "spec"
            app.sort_by("test_accuracy")
            numbers = table_numbers(app)
            accs = [app.data.row(n).test_accuracy for n in numbers]
            present = [a for a in accs if a is not None]
            assert present == sorted(present, reverse=True)  # accuracy sorts best first
            await pilot.press("r")
            accs = [app.data.row(n).test_accuracy for n in table_numbers(app)]
            assert [a for a in accs if a is not None] == sorted(present)
            # filter
            await pilot.press("slash")
            for key in "state=pruned":
                await pilot.press(key if key != "=" else "equals_sign")
            await pilot.press("enter")
            pruned = {r.number for r in app.data.rows if r.state == "pruned"}
            assert set(table_numbers(app)) == pruned and pruned
            # Home/End move to the first/last trial (DataTable's own Home/End scroll sideways)
            assert len(pruned) > 1
            await pilot.press("down", "end")
            assert app.table.cursor_row == app.table.row_count - 1
            await pilot.press("home")
            assert app.table.cursor_row == 0
            # open the first filtered trial
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, TrialScreen)
            assert app.screen.row.number in pruned
            assert len(app.screen.query(PlotView)) == 2  # activation variance and gradient norm, no loss curve
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, MainScreen)
            await pilot.press("3", "p", "o")
            assert app.predictor == "grad_explosion_exponent" and app.outcome == "mean_train_accuracy"
            await pilot.press("q")
        assert app.return_code == 0

    run(scenario())


def test_snapshots_at_100x30(url):
    async def scenario():
        async with viewer(url, (100, 30)) as (app, pilot):
            check_snapshot("view_trials_100x30", screen_text(app) + "\n")
            await pilot.press("2")
            await pilot.pause()
            check_snapshot("view_tradeoff_100x30", screen_text(app) + "\n")
            await pilot.press("1", "enter")
            await pilot.pause()
            check_snapshot("view_trial0_100x30", screen_text(app) + "\n")

    run(scenario())


def test_usable_at_80x24_and_message_when_too_small(url):
    async def scenario():
        async with viewer(url, (80, 24)) as (app, pilot):
            text = screen_text(app)
            assert "test acc" in text and "composition" in text and "q quit" in text
            assert app.table.row_count == 40
            await pilot.press("2")
            await pilot.pause()
            assert "Pareto" in screen_text(app)  # the plot's legend fits
            await pilot.resize_terminal(50, 12)
            await pilot.pause()
            assert app.screen.query_one(TooSmall).display
            assert "terminal too small (50×12)" in screen_text(app)
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            assert not app.screen.query_one(TooSmall).display

    run(scenario())


def test_refreshes_while_the_study_runs(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'live.db'}"
    write_study(url, n=5, running=1)

    async def scenario():
        app = still(StudyApp(StudySource(url, "demo"), refresh_s=0.2))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.table.row_count == 6
            study = optuna.load_study(study_name="demo", storage=url)
            running = next(t for t in study.trials if t.state.name == "RUNNING")
            study.tell(running.number, state=optuna.trial.TrialState.PRUNED)
            study.ask()
            for _ in range(50):
                await pilot.pause(0.1)
                if app.table.row_count == 7:
                    break
            assert app.table.row_count == 7
            assert app.data.summary().counts["pruned"] >= 1

    run(scenario())


def test_cli_errors_are_one_line(url, capsys):
    from explorer.cli import main

    assert main(["view", "demoo", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no study named 'demoo'" in err and "demo" in err
    assert main(["view", "demo", "--storage", "postgresql://bob:hunter2@127.0.0.1:9/x"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "bob:***@" in err and err.count("\n") == 1
    assert main(["view", "demo", "--storage", url]) == 2  # pytest's stdin is not a terminal
    assert "interactive terminal" in capsys.readouterr().err


def test_trials_table_widget_keys_rows_by_number(url):
    data = StudySource(url, "demo").load()

    async def scenario():
        app = still(StudyApp(StudySource(url, "demo"), refresh_s=None, data=data))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            table = app.main.query_one(TrialsTable)
            await pilot.press("down", "down")
            assert table.current_number() == 2
            app.filter_text = "pareto"
            table.set_rows(app.visible_rows(), 100)
            assert set(table_numbers(app)) == {r.number for r in data.pareto_rows}

    run(scenario())


def test_a_failed_reload_keeps_the_viewer_and_its_data(url):
    """A locked database or a dropped connection during a refresh is a notice, not a crash."""

    class FlakySource(StudySource):
        loads = 0

        def load(self):
            FlakySource.loads += 1
            if FlakySource.loads > 1:
                raise RuntimeError("database is locked (postgresql://u:s3cret@db/x)")
            return super().load()

    async def scenario():
        app = still(StudyApp(FlakySource(url, "demo"), refresh_s=0.1))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            rows = app.table.row_count
            await pilot.press("R")
            for _ in range(20):
                await pilot.pause(0.1)
                if app._notifications:
                    break
            messages = [n.message for n in app._notifications]
            assert any("reload failed: database is locked" in m for m in messages), messages
            assert not any("s3cret" in m for m in messages)
            assert app.is_running and app.table.row_count == rows

    run(scenario())
