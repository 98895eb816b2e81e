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
