"""Live progress of a running study, for ``normx study run``.

The display polls the study's STORAGE (read-only, in a background thread), so with several workers —
in this process, in other processes or on other machines — it shows the whole study: trials
finished / running / pruned / failed, the stage of every running trial (screening, or training with
its step), the best value so far per objective, the rate and the ETA. The runner's events
(:mod:`explorer.search.events`) make it react at once and give the freshest training step.

On a terminal it is a rich ``Live`` panel; otherwise (CI logs, pipes) it prints plain lines: one
per finished trial (from the events) and a status line whenever the study's counts change.
"""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from explorer.errors import NormxError
from explorer.search.events import PlainLines, write_line
from explorer.search.results import StudyData, StudySource, TrialRow, mask_password
from explorer.tui.formatting import COLUMNS, format_duration, format_number
from explorer.tui.tables import STATE_STYLES

MAX_RUNNING_ROWS = 8


class StudyPoller:
    """Reloads the study from storage every ``interval`` seconds in a thread; ``data`` is the latest."""

    def __init__(self, storage_url: str, study_name: str, interval: float = 2.0):
        self.storage_url, self.study_name, self.interval = storage_url, study_name, interval
        self.data: StudyData | None = None
        self.error: str | None = None
        self._source: StudySource | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_update: Any = None  # callable(data), called in the poller thread

    def poll(self) -> StudyData | None:
        """Load the study now (the storage or the study may not exist yet while the run starts)."""
        try:
            if self._source is None:
                self._source = StudySource(self.storage_url, self.study_name)
            self.data = self._source.load()
            self.error = None
        except NormxError as err:
            self.error = str(err)
        except Exception as err:  # a busy database, a half-written journal line: try again next time
            self.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        if self.data is not None and self.on_update is not None:
            self.on_update(self.data)
        return self.data

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="normx-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._wake.wait(self.interval)
            self._wake.clear()


def _stage_cell(row: TrialRow, live_step: tuple[str, int | None, int | None] | None) -> Text:
    stage, step, steps = (live_step if live_step is not None else (row.stage, row.step, row.steps))
    text = Text(stage or "starting", style="cyan" if stage == "training" else "magenta")
    if stage == "training" and step is not None and steps:
        filled = int(10 * min(step, steps) / steps)
        text.append(f" {step}/{steps} ")
        text.append("━" * filled, style="green")
        text.append("━" * (10 - filled), style="grey30")
    return text


def progress_renderable(data: StudyData | None, budget: int | None = None,
                        live_steps: dict[int, tuple[str, int | None, int | None]] | None = None,
                        waiting: str | None = None) -> RenderableType:
    """The live panel: summary, running trials with their stage, best so far per objective."""
    if data is None:
        return Text(f"waiting for the study… {waiting or ''}".rstrip(), style="dim")
    summary = data.summary(budget=budget)
    counts = summary.counts
    head = Text()
    head.append(f"study {data.name}  ", style="bold")
    total = f"/{summary.budget}" if summary.budget else ""
    head.append(f"{summary.finished}{total} finished  ")
    for state in ("complete", "running", "pruned", "failed", "interrupted"):
        if state != "interrupted" or counts[state]:
            head.append(f"{counts[state]} {state}", style=STATE_STYLES[state])
            if state == "complete" and summary.diverged:
                head.append(f" ({summary.diverged} diverged)", style="bold red")
            head.append("  ")
    if summary.repeats:
        head.append(f"{summary.repeats} repeated", style="dim")
    head.append(f"\n{format_number(summary.rate_per_min, 2)} trials/min   ETA {format_duration(summary.eta_s)}   "
                f"elapsed {format_duration(summary.elapsed_s)}", style="dim")
    parts: list[RenderableType] = [head]
    if summary.running:
        table = Table(box=None, show_header=True, header_style="dim", padding=(0, 1), expand=False)
        table.add_column("#", justify="right")
        table.add_column("composition", style="cyan", max_width=60, overflow="ellipsis", no_wrap=True)
        table.add_column("stage", no_wrap=True)
        table.add_column("worker", style="dim", no_wrap=True)
        table.add_column("for", justify="right", style="dim")
        for row in summary.running[:MAX_RUNNING_ROWS]:
            table.add_row(str(row.number), row.spec or "…", _stage_cell(row, (live_steps or {}).get(row.number)),
                          row.worker, format_duration(row.duration_s))
        parts.append(table)
        if len(summary.running) > MAX_RUNNING_ROWS:
            parts.append(Text(f"… and {len(summary.running) - MAX_RUNNING_ROWS} more running", style="dim"))
    best = Text("best so far: ", style="dim")
    if summary.best:
        for k, objective in enumerate(data.objectives):
            row = summary.best.get(objective.name)
            if row is not None:
                best.append(f"{COLUMNS.get(objective.name, objective.name)}{objective.direction.arrow} ")
                best.append(format_number(row.values[k], 4), style="bold")
                best.append(f" (#{row.number})  ", style="dim")
    else:
        best.append("no complete trial yet", style="dim")
    parts.append(best)
    return Group(*parts)


def status_line(data: StudyData, budget: int | None = None) -> str:
    """The plain-text status: ``study quick: 12/20 finished (9 complete, 2 pruned, 1 failed), 2 running; …``."""
    summary = data.summary(budget=budget)
    c = summary.counts
    total = f"/{summary.budget}" if summary.budget else ""
    diverged = f" ({summary.diverged} diverged)" if summary.diverged else ""
    line = (f"study {data.name}: {summary.finished}{total} finished ({c['complete']} complete{diverged}, "
            f"{c['pruned']} pruned, "
            f"{c['failed']} failed{', %d interrupted' % c['interrupted'] if c['interrupted'] else ''}"
            f"{'; %d repeated' % summary.repeats if summary.repeats else ''}), {c['running']} running")
    stages = [f"#{r.number} {r.progress}" for r in summary.running[:MAX_RUNNING_ROWS]]
    if stages:
        line += " [" + ", ".join(stages) + "]"
    bests = []
    for k, objective in enumerate(data.objectives):
        row = summary.best.get(objective.name)
        if row is not None:
            bests.append(f"{objective.name}={format_number(row.values[k], 4)} (#{row.number})")
    if bests:
        line += "; best " + ", ".join(bests)
    line += f"; {format_number(summary.rate_per_min, 2)}/min, ETA {format_duration(summary.eta_s)}"
    return line


class StudyProgress:
    """The display for ``normx study run``: use as a context manager around the run, and pass it as the
    runner's ``on_trial_event`` handler. Live panel on a terminal, plain lines otherwise.

    With ``after_study_event`` (what ``normx study run`` uses) nothing of the storage is shown
    before the runner says the study is ready: while it is being created the storage has no study
    yet, and a study the runner will refuse (other objectives) must not be shown as if it ran."""

    def __init__(self, storage_url: str, study_name: str, budget: int | None = None, console: Console | None = None,
                 interval: float = 1.0, plain_every_s: float = 10.0, file: TextIO | None = None,
                 after_study_event: bool = False):
        self.console = console or Console(file=file)
        self.budget = budget
        self.plain = not self.console.is_terminal
        self.plain_every_s = plain_every_s
        self.poller = StudyPoller(storage_url, study_name, interval if not self.plain else min(interval, plain_every_s))
        self.live_steps: dict[int, tuple[str, int | None, int | None]] = {}
        self._live: Any = None
        self._last_line = ""
        self._last_line_at = 0.0
        self._lock = threading.Lock()
        self._event_lines: Any = None
        #: set by the runner's "study" event: before it the study is being created or opened, and
        #: what the storage holds (nothing yet, or the study a mismatch will refuse) is not shown
        self._ready = threading.Event()
        if not after_study_event:  # no runner to wait for: show the storage as it is
            self._ready.set()
        self._storage_url = storage_url

    # -- context --------------------------------------------------------------------------

    def __enter__(self) -> StudyProgress:
        if self.plain:
            self._event_lines = PlainLines(stream=self.console.file)
            self.poller.on_update = self._plain_update
        else:
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        self.poller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.poller.stop()
        self.poller.poll()  # the final state, whatever the last poll saw
        if self._live is not None:
            if exc[0] is not None and self.poller.data is None:
                self._live.transient = True  # nothing ran: leave the error line alone on the screen
            self._live.__exit__(*exc)
        elif self.poller.data is not None and self._ready.is_set():
            self._print_status(force=True)

    def __rich__(self) -> RenderableType:
        if not self._ready.is_set():
            return Text(f"opening the study in {mask_password(self._storage_url)}…", style="dim")
        return progress_renderable(self.poller.data, self.budget, dict(self.live_steps), self.poller.error)

    # -- events from the runner -----------------------------------------------------------

    def __call__(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        trial = getattr(event, "trial", None)
        if kind == "stage" and trial is not None:
            self.live_steps[trial] = (event.stage or "", None, None)
        elif kind == "progress" and trial is not None:
            self.live_steps[trial] = ("training", event.step, event.steps)
        elif kind == "trial_finished" and trial is not None:
            self.live_steps.pop(trial, None)
            self.poller.wake()
        elif kind in ("trial_started", "study"):
            if kind == "study":
                self._ready.set()
            self.poller.wake()
        if self.plain:
            with self._lock:
                self._event_lines(event)
        elif kind in ("trial_finished", "study", "study_done", "space_exhausted"):
            line = _event_line(event)
            if line:
                self._live.console.print(line)

    # -- plain lines ----------------------------------------------------------------------

    def _plain_update(self, data: StudyData) -> None:
        self._print_status(force=False)

    def _print_status(self, force: bool) -> None:
        """A status line when the study's counts changed (at most every ``plain_every_s``), and a
        heartbeat line every 6 × ``plain_every_s`` even when nothing finished (long training runs)."""
        data = self.poller.data
        if data is None or not self._ready.is_set():
            return
        line = status_line(data, self.budget)
        counts = line.split(" running")[0]
        with self._lock:
            now = time.monotonic()
            since = now - self._last_line_at
            changed = counts != self._last_line.split(" running")[0]
            if (force and line != self._last_line) or not self._last_line \
                    or (changed and since >= self.plain_every_s) or since >= 6 * self.plain_every_s:
                write_line(self.console.file, line)
                self._last_line, self._last_line_at = line, now


def _event_line(event: Any) -> Text | None:
    if event.kind == "trial_finished":
        state = (event.state or "").lower()
        text = Text(f"trial {event.trial} ", style="bold")
        text.append(f"{state:<9}", style=STATE_STYLES.get(state if state != "fail" else "failed", ""))
        text.append(f" {event.spec or ''}")
        if state == "complete" and event.values:
            text.append("  " + ", ".join(format_number(v, 4) for v in event.values), style="bold")
            if event.message:
                text.append(f"  {event.message}", style="bold red" if "diverged" in event.message else "dim")
        elif event.message:
            text.append(f"  {event.message}", style="dim")
        return text
    if event.kind in ("study", "study_done", "space_exhausted"):
        return Text(f"study {event.study}: {event.message}", style="dim")
    return None


def create_progress(storage_url: str, study_name: str, budget: int | None = None, **kwargs: Any) -> StudyProgress:
    """The progress display for a run of ``study_name`` in ``storage_url`` (see :class:`StudyProgress`)."""
    kwargs.setdefault("after_study_event", True)
    return StudyProgress(storage_url, study_name, budget, **kwargs)
