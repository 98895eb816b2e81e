"""Live progress of a running study: the plain-lines fallback (no terminal) and the live panel, both
fed by polling a real SQLite study that the test advances, plus the runner's events."""

from __future__ import annotations

import io
import re
import time

import optuna
import pytest
from rich.console import Console
from test_tui_model import write_study

from explorer.search.events import TrialEvent
from explorer.search.results import StudySource
from explorer.tui.progress import StudyProgress, progress_renderable, status_line


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_plain_lines_when_not_a_terminal(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    write_study(url, n=6, running=1, n_trials=8)
    out = io.StringIO()
    console = Console(file=out, force_terminal=False)
    with StudyProgress(url, "demo", budget=8, console=console, interval=0.05, plain_every_s=0.0) as display:
        assert wait_for(lambda: "finished" in out.getvalue())
        study = optuna.load_study(study_name="demo", storage=url)
        running = next(t for t in study.trials if t.state.name == "RUNNING")
        study.tell(running.number, state=optuna.trial.TrialState.PRUNED)
        display(TrialEvent(kind="trial_finished", study="demo", trial=running.number, state="PRUNED",
                           spec="mean(bx) | std(bx) | affine | relu", message="explosion 0.9 > 0.5"))
        assert wait_for(lambda: "7/8 finished" in out.getvalue())
    text = out.getvalue()
    assert "\x1b[" not in text  # plain text: no escape codes in CI logs
    lines = text.splitlines()
    assert any(line.startswith(f"trial {running.number}: pruned") and "explosion 0.9" in line for line in lines)
    status = [line for line in lines if line.startswith("study demo: ")]
    assert status[0].startswith("study demo: 6/8 finished") and "1 running" in status[0]
    assert status[-1].startswith("study demo: 7/8 finished") and "0 running" in status[-1]
    assert "best test_accuracy=" in status[-1] and "ETA" in status[-1]


def test_waits_for_a_study_that_does_not_exist_yet(tmp_path):
    path = tmp_path / "later.db"
    out = io.StringIO()
    with StudyProgress(f"sqlite:///{path}", "demo", console=Console(file=out, force_terminal=False),
                       interval=0.05, plain_every_s=0.0) as display:
        time.sleep(0.2)
        assert display.poller.data is None and "no SQLite storage file" in display.poller.error
        write_study(f"sqlite:///{path}", n=3, running=0)
        assert wait_for(lambda: display.poller.data is not None)
    assert "study demo: 3/3 finished" in out.getvalue()


def test_live_panel_shows_stages_best_and_eta(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    write_study(url, n=10, running=2, n_trials=20)
    data = StudySource(url, "demo").load()
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    running = [r.number for r in data.rows if r.state == "running"]
    console.print(progress_renderable(data, budget=20, live_steps={running[1]: ("training", 7, 50)}))
    text = console.export_text()
    assert "10/20 finished" in text and "2 running" in text
    assert "training 40/200" in text  # from storage
    assert "training 7/50" in text  # from the runner's latest event, fresher than storage
    assert re.search(r"best so far: test acc↑ \d\.\d{4} \(#\d+\)", text)
    assert "trials/min" in text and "ETA" in text
    line = status_line(data, budget=20)
    assert line.startswith("study demo: 10/20 finished") and "[#10 training 40/200, #11 screening]" in line


def test_live_mode_on_a_terminal(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    write_study(url, n=4, running=1)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with StudyProgress(url, "demo", console=console, interval=0.05) as display:
        assert not display.plain
        display(TrialEvent(kind="progress", study="demo", trial=4, step=3, steps=9, loss=1.0))
        assert wait_for(lambda: display.poller.data is not None)
        display(TrialEvent(kind="trial_finished", study="demo", trial=4, state="COMPLETE", values=[0.5, 0.2, 0.1],
                           spec="mean(cx) | std(cx) | affine | relu"))
    text = out.getvalue()
    assert "4/5 finished" in text and "trial 4" in text


@pytest.mark.parametrize("budget", [None, 12])
def test_budget_from_the_study_or_the_command_line(tmp_path, budget):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    write_study(url, n=4, running=0, n_trials=6)
    data = StudySource(url, "demo").load()
    assert status_line(data, budget).startswith(f"study demo: 4/{budget or 6} finished")
