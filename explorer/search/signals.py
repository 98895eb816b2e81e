"""Signals of a running study: Ctrl-C and SIGTERM become one interruption, at a moment that cuts nothing.

A worker turns SIGINT and SIGTERM into :class:`KeyboardInterrupt` (:func:`interrupt_on_signals`)
so that its running trial is recorded as interrupted. Some steps must not be cut in two: asking
Optuna for a trial and claiming it (a trial left RUNNING with no heartbeat and no worker is never
found stale), and recording an interruption. :func:`deferred_interrupts` holds the signals during
such a step; the interruption is raised by the caller after it (``held.raise_pending()``).

Worker processes start with the two signals blocked (:func:`blocked_signals` around their start:
the mask is inherited across ``exec``) and unblock them once their handlers are installed, so a
Ctrl-C while they import torch is delivered then, as an interruption, never as a traceback.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from explorer.errors import forget_interrupt_signal, note_interrupt_signal

INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
#: The exit status of a command whose output's reader went away, as a shell reports a process
#: killed by SIGPIPE (``yes | head``): 128 + 13.
EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE


#: Set by the handler of :func:`interrupt_on_signals`: a KeyboardInterrupt raised while a weakref
#: callback or a destructor runs (torch runs them at every training step) is printed as "Exception
#: ignored" and lost, so the worker also polls this flag between steps (:func:`raise_if_interrupted`).
_interrupted = threading.Event()


#: Set when the handler raised its KeyboardInterrupt, until the interruption is handled
#: (:func:`interruption_handled`, which the recording of the interrupted trial calls with the
#: signals held): a second signal meanwhile (a SIGTERM to the process group, then the parent's
#: SIGINT) is the same interruption, and raising it again would cut the recording short.
_stopping = threading.Event()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    note_interrupt_signal()  # a real one: a plugin's own KeyboardInterrupt is its failure (explorer.errors)
    if _stopping.is_set():
        return  # the interruption already on its way
    _stopping.set()
    _interrupted.set()
    raise KeyboardInterrupt


#: The unraisable-exception hook in place before :func:`interrupt_on_signals` put its own.
_previous_unraisablehook = sys.unraisablehook


def _drop_swallowed_interrupt(unraisable: sys.UnraisableHookArgs) -> None:
    """Python prints an exception it cannot raise (one from a weakref callback or a destructor) as
    "Exception ignored … Traceback": for the handler's KeyboardInterrupt that is a traceback on a
    clean stop, and the interruption is not lost (the flag is set, the worker raises it at its next
    check), so it is dropped. Every other unraisable exception goes to the previous hook."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt) \
            and _interrupted.is_set():
        return
    _previous_unraisablehook(unraisable)


#: Set when a line could not be written because the reader of the output went away (EPIPE:
#: ``normx study run … | head -3``). Nothing of a trial failed: the run stops as on Ctrl-C (the
#: running trial interrupted, its retry queued) and the command exits with
#: :data:`EXIT_OUTPUT_CLOSED`, quietly, like a Unix tool on SIGPIPE.
_output_closed = threading.Event()


class OutputClosed(KeyboardInterrupt):
    """The reader of the output went away: an interruption, not a failure of the trial."""


def output_closed() -> bool:
    """Whether a write found the output's reader gone (:func:`close_output`)."""
    return _output_closed.is_set()


def close_output(stream: object) -> None:
    """Called when writing to ``stream`` failed with EPIPE: point its file descriptor at
    /dev/null, so that no later write fails (the interpreter's flush at exit included), and
    interrupt the run: raise :class:`OutputClosed` in the main thread, or interrupt the main
    thread from another one (the progress display's thread) as a Ctrl-C would."""
    first = not _output_closed.is_set()
    _output_closed.set()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())  # type: ignore[attr-defined]
        finally:
            os.close(devnull)
    except (AttributeError, OSError, ValueError):  # not a file: nothing more will be written to it
        pass
    if threading.current_thread() is threading.main_thread():
        raise OutputClosed
    if first:
        _thread.interrupt_main()  # SIGINT's handler runs in the main thread (or is held, then raised)


def raise_if_interrupted() -> None:
    """Raise the KeyboardInterrupt of a SIGINT/SIGTERM whose own raise was swallowed."""
    if _interrupted.is_set():
        _interrupted.clear()
        raise KeyboardInterrupt


def interruption_handled() -> None:
    """The KeyboardInterrupt of the last signal was caught (or a new run starts): nothing is pending."""
    _interrupted.clear()
    _stopping.clear()
    forget_interrupt_signal()


def interrupt_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in this process's main thread.

    A process started in the background by a non-interactive shell inherits SIGINT ignored, and a
    batch scheduler stops jobs with SIGTERM: either way the running trial must still be recorded
    as interrupted, so both are turned into the interruption the worker already handles.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    global _previous_unraisablehook
    _interrupted.clear()
    _stopping.clear()
    forget_interrupt_signal()
    if sys.unraisablehook is not _drop_swallowed_interrupt:
        _previous_unraisablehook, sys.unraisablehook = sys.unraisablehook, _drop_swallowed_interrupt
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)


class DeferredInterrupts:
    """Whether SIGINT/SIGTERM arrived while held (see :func:`deferred_interrupts`)."""

    def __init__(self) -> None:
        self.pending = False

    def hold(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True
        note_interrupt_signal()

    def raise_pending(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[DeferredInterrupts]:
    """Hold SIGINT and SIGTERM for the duration of the block (main thread only; elsewhere signals
    do not reach Python code). The block's caller decides when to raise what arrived."""
    held = DeferredInterrupts()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {s: signal.getsignal(s) for s in INTERRUPTS}
    for s in INTERRUPTS:
        signal.signal(s, held.hold)
    try:
        yield held
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def blocked_signals() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread: processes started inside inherit the mask."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unblock_interrupts() -> None:
    """Deliver the SIGINT/SIGTERM that arrived while blocked (after the handlers are installed)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)


class ParentWatch:
    """A worker process's watch on its parent: when the parent dies (even by SIGKILL) the worker
    is interrupted, records its running trial and exits instead of running on as an orphan."""

    def __init__(self, interval: float = 0.5, on_orphaned: Callable[[], None] | None = None):
        self.parent = os.getppid()
        self.interval = interval
        self.orphaned = False
        self.on_orphaned = on_orphaned
        self._thread = threading.Thread(target=self._run, daemon=True, name="normx-parent-watch")

    def start(self) -> ParentWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while os.getppid() == self.parent:
            time.sleep(self.interval)
        self.orphaned = True
        if self.on_orphaned is not None:
            self.on_orphaned()
        os.kill(os.getpid(), signal.SIGTERM)  # the interruption the main thread already handles
