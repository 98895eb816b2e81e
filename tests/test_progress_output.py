"""What ``normx study run`` prints while a study starts and runs (issue 13, items 20 and 23)."""

from __future__ import annotations

import io
import subprocess
import threading
import time

from rich.console import Console

from explorer.search.events import TrialEvent
from explorer.tui.progress import create_progress
from tiny_study import tiny_study



def out_study(objective: str) -> str:
    return tiny_study("out", objectives=f'{objective} = "minimize"', space='presets = ["bn", "ln"]')


def test_an_objectives_mismatch_prints_no_status_line_first(tmp_path, normx_exe):
    """Item 20: the refusal was preceded by a bogus '2/1 finished' line of the study it refused."""
    db = tmp_path / "out.db"
    first = tmp_path / "first.toml"
    first.write_text(out_study("cosine_similarity"))
    ran = subprocess.run([*normx_exe, "study", "run", first, "--storage", db, "--n-trials", "2"],
                         capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr
    other = tmp_path / "other.toml"
    other.write_text(out_study("grad_explosion_exponent"))
    refused = subprocess.run([*normx_exe, "study", "run", other, "--storage", db],
                             capture_output=True, text=True, timeout=180)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "already exists with objectives" in refused.stderr


class SlowStream(io.StringIO):
    """A pipe that is slow to take each write (as a loaded CI log is): another thread's write can
    land between two writes of one line."""

    def write(self, text: str) -> int:
        time.sleep(0.0005)
        return super().write(text)


def test_piped_lines_never_run_together(tmp_path, normx_exe):
    """Item 23: a trial line and a status line, written by two threads, ran together on one line."""
    db = tmp_path / "out.db"
    path = tmp_path / "s.toml"
    path.write_text(out_study("cosine_similarity"))
    assert subprocess.run([*normx_exe, "study", "run", path, "--storage", db, "--n-trials", "2"],
                          capture_output=True, timeout=180).returncode == 0
    out = SlowStream()
    console = Console(file=out, force_terminal=False)
    display = create_progress(f"sqlite:///{db}", "out", budget=2, console=console, interval=0.001, plain_every_s=0.0)
    stop = threading.Event()
    with display:
        display(TrialEvent(kind="study", study="out", message="resumed"))

        def statuses() -> None:
            while not stop.is_set():
                display._last_line = ""  # force a status line on every poll
                display._print_status(force=True)

        thread = threading.Thread(target=statuses)
        thread.start()
        for n in range(300):
            display(TrialEvent(kind="trial_finished", study="out", trial=n, state="PRUNED", spec="bn", message="x"))
        stop.set()
        thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) > 300
    for line in lines:
        assert line.startswith(("study out: ", "trial ")), line
        assert line.count("study out: ") + line.count("trial ") == 1, line


def test_the_live_panel_says_opening_while_the_study_is_created(tmp_path):
    """Item 23: the live panel briefly said "no study named …" while the runner created it."""
    db = tmp_path / "later.db"
    terminal = Console(file=io.StringIO(), force_terminal=True, width=400)
    shown = Console(file=io.StringIO(), width=400, record=True, color_system=None)
    with create_progress(f"sqlite:///{db}", "out", budget=2, console=terminal, interval=0.05) as display:
        display.poller.poll()
        assert display.poller.error  # the storage has no such study yet
        shown.print(display.__rich__())
        before = shown.export_text()
        display(TrialEvent(kind="study", study="out", message="created"))
        shown.print(display.__rich__())
        after = shown.export_text()
    assert "opening the study in sqlite:///" in before
    assert "no study" not in before and "no SQLite" not in before
    assert "waiting for the study" in after  # ready: now the storage's own state is shown
