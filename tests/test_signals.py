"""A Ctrl-C must stop a study even when Python swallows its KeyboardInterrupt: one raised while a
weakref callback or a destructor runs (torch runs them at every training step) is printed as
"Exception ignored" and lost. The worker polls the handler's flag between training steps."""

from __future__ import annotations

import gc
import os
import signal
import weakref

import pytest

from explorer.search.signals import interrupt_on_signals, raise_if_interrupted


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed raise is the point
def test_an_interrupt_swallowed_by_a_weakref_callback_is_raised_at_the_next_check():
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupt_on_signals()

        class Holder:
            pass

        holder = Holder()
        fired = []

        def callback() -> None:
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs inside this callback
            fired.append(True)  # not reached: the handler raised here, and Python swallowed it

        weakref.finalize(holder, callback)
        del holder
        gc.collect()
        assert fired == []  # the callback was cut by the interrupt, which did not propagate
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
        raise_if_interrupted()  # raised once, then cleared
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_an_interrupt_that_was_caught_is_not_raised_again_by_the_next_run(tmp_path):
    """A KeyboardInterrupt that propagated and was caught (here by pytest.raises; in a program, by
    its own handler) must not stop a later study in the same process."""
    from tiny_study import tiny_study

    from explorer.search import run_study
    from explorer.search.study_file import parse_study_text

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupt_on_signals()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):
                gc.collect()
        config = parse_study_text(tiny_study("after", objectives='test_accuracy = "maximize"',
                                             training="steps = 12"), "after.toml")
        outcome = run_study(config, storage=str(tmp_path / "a.db"), on_trial_event=lambda event: None)
        assert outcome.counts == {"COMPLETE": 1}
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
