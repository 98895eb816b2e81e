"""What a running study tells its display: one :class:`TrialEvent` per thing that happened.

``run_study(..., on_trial_event=handler)`` calls ``handler(event)`` in the process that started
the study, for the events of every worker (workers in other processes send theirs through a
queue). A display only implements a callable; :class:`PlainLines` prints one line per event and
is what ``normx study run`` uses without a richer display.

Kinds, in the order they happen:

=================  ==================================================================
``study``          the study is ready (``message``: created or resumed, the budget)
``trial_started``  a worker claimed trial ``trial``
``stage``          a trial entered ``stage`` (screening, training) with its ``spec``
``progress``       training progress: ``step`` of ``steps``, ``loss`` (about every second)
``trial_finished`` ``state`` COMPLETE/PRUNED/FAIL, ``values``, ``message`` (prune reason, error)
``space_exhausted`` a worker found no new composition (``message``: how many distinct ones)
``worker_done``    a worker found the budget spent and stopped
``study_done``     every worker stopped (``message``: summary, or ``interrupted``)
=================  ==================================================================
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from explorer.search.signals import close_output


@dataclass
class TrialEvent:
    """One event of a running study; plain data, picklable across processes."""

    kind: str
    study: str
    trial: int | None = None
    spec: str | None = None
    stage: str | None = None
    step: int | None = None
    steps: int | None = None
    loss: float | None = None
    state: str | None = None
    values: list[float] | None = None
    message: str = ""
    worker: str = ""
    time: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)


#: ``handler(event)``: a display of a running study.
TrialEventHandler = Callable[[TrialEvent], None]
#: ``emit(kind, **fields)``: one worker's event, its study and worker filled in (``Worker.emit``).
Emit = Callable[..., None]


def ignore(event: TrialEvent) -> None:
    """A handler that shows nothing."""


def write_line(stream: TextIO, line: str) -> None:
    """One line in one write: ``print`` writes the newline separately, and another thread's line
    (a status line) could land between the two.

    When the reader of the output went away (``| head``), the run is interrupted
    (:func:`explorer.search.signals.close_output`): output that cannot be written is no trial's failure."""
    try:
        stream.write(line + "\n")
        stream.flush()
    except BrokenPipeError:
        close_output(stream)


def _fmt(values: list[float] | None) -> str:
    if not values:
        return ""
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


class PlainLines:
    """Print one plain line per event; training progress at most every ``progress_every_s``."""

    def __init__(self, stream: TextIO | None = None, progress_every_s: float = 5.0):
        self.stream = stream or sys.stdout
        self.progress_every_s = progress_every_s
        self._last_progress: dict[tuple[str, int | None], float] = {}

    def __call__(self, event: TrialEvent) -> None:
        line = self.format(event)
        if line:
            write_line(self.stream, line)

    def format(self, event: TrialEvent) -> str | None:
        tag = f"trial {event.trial}" if event.trial is not None else event.study
        if event.kind == "study":
            return f"study {event.study}: {event.message}"
        if event.kind == "trial_started":
            return None
        if event.kind == "stage":
            return f"{tag}: {event.stage:<9} {event.spec or ''}".rstrip()
        if event.kind == "progress":
            key = (event.worker, event.trial)
            now = time.monotonic()
            if now - self._last_progress.get(key, 0.0) < self.progress_every_s and event.step != event.steps:
                return None
            self._last_progress[key] = now
            return f"{tag}: step {event.step}/{event.steps} loss {event.loss:.4f}"
        if event.kind == "trial_finished":
            state = (event.state or "").lower()
            detail = " ".join(filter(None, (_fmt(event.values), event.message))) if state == "complete" else event.message
            return f"{tag}: {state:<9} {event.spec or ''} {detail}".rstrip()
        if event.kind == "worker_done":
            return None
        if event.kind in ("study_done", "space_exhausted"):
            return f"study {event.study}: {event.message}"
        return f"{tag}: {event.kind} {event.message}".rstrip()
