"""One worker in this process on real storages: what each trial ends as, what it stores, what it says.

Every test runs a real study (``run_study``, or a :class:`Worker` on a storage opened here) on a
real SQLite file, with real plugins (one that breaks, one that gives NaN) and a real second
connection holding SQLite's lock where a busy storage is the point. In-process on purpose: the
mutation benchmark's stats run cannot see ``normx`` subprocesses (``docs/mutation.md``).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import threading
import time

import optuna
import pytest
import torch
from optuna.trial import TrialState
from tiny_study import tiny_study
from torch import nn

from explorer import Primitive, hookimpl
from explorer.errors import NormxError, SpecError
from explorer.search import claiming, evaluation, recording, run_study
from explorer.search import worker as worker_module
from explorer.search.context import prepare
from explorer.search.schema import RESULT_ATTRS
from explorer.search.screening import (
    RelativePolicy,
    candidate_values,
    relative_decision,
)
from explorer.search.storage import StorageError, open_storage, resolve_storage
from explorer.search.optuna_study import create_or_load_study, make_sampler
from explorer.search.study_file import parse_study_text
from explorer.search.worker import Worker
from explorer.spec import parse_spec

LN = "mean(cx) | std(cx) | affine | relu"
MODEL = "mlp(depth=2, width=16)"
#: two objectives, one of them from training
TRAINED = 'test_accuracy = "maximize"\ncosine_similarity = "minimize"'
#: a space of exactly two compositions: std(c) and mean(c) | std(c)
TWO = '[space.slots]\ncenter = ["none", "mean"]\nscale = ["std"]\n[space.params]\naxes = ["c"]'
#: four compositions: std(c), root_mean_square(c), and each after mean(c)
FOUR = '[space.slots]\ncenter = ["none", "mean"]\nscale = ["std", "root_mean_square"]\n[space.params]\naxes = ["c"]'


def config_of(name, n=1, space='presets = ["ln"]', objectives='cosine_similarity = "minimize"', screening="",
              training="steps = 0", extra="", models=None):
    text = tiny_study(name, n=n, objectives=objectives, space=space, screening=screening, training=training,
                      extra=extra)
    if models is not None:
        text = text.replace(f'models = ["{MODEL}"]', "models = [" + ", ".join(f'"{m}"' for m in models) + "]")
    return parse_study_text(text, f"{name}.toml")


def presets(*names):
    return "presets = [" + ", ".join(f'"{n}"' for n in names) + "]"


class Runaway(Exception):
    """A run that does not end: more trials than any test asks for, or a wait past the watchdog."""


#: seconds after which a test that hangs fails (the mutation benchmark's own timeout is minutes)
WATCHDOG_S = 30
#: trials after which a run is a runaway loop
MAX_TRIALS = 40


@pytest.fixture(autouse=True)
def _watchdog():
    """Fail a test that hangs (a worker waiting forever, as pytest-timeout's signal method does)."""
    def expire(signum, frame):
        raise Runaway(f"still running after {WATCHDOG_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, WATCHDOG_S)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


class Events(list):
    """An event handler that keeps the events, and stops a runaway run at its trial_started."""

    def __bool__(self):  # a handler, even before its first event (``on_trial_event or PlainLines()``)
        return True

    def __call__(self, event):
        self.append(event)
        if event.kind == "trial_started" and sum(e.kind == "trial_started" for e in self) > MAX_TRIALS:
            raise Runaway(f"more than {MAX_TRIALS} trials")


def run(config, store, **kwargs):
    """The study run in this process; its events."""
    events = Events()
    run_study(config, storage=store, on_trial_event=events, **kwargs)
    return events


def load(store, name):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{store}")


def trials(store, name):
    return load(store, name).get_trials(deepcopy=False)


def ends(events):
    """(trial, state, message) of every trial that finished, in order."""
    return [(e.trial, e.state, e.message) for e in events if e.kind == "trial_finished"]


def worker_on(config, store, events, budget=None, busy_timeout=None, name=None, heartbeat=None):
    """A worker of ``config`` on the SQLite file ``store`` (the study created there first). With
    ``busy_timeout``, its storage waits that long for SQLite's lock instead of normx's 60 s."""
    target = resolve_storage(store)
    if busy_timeout is None:
        storage = open_storage(target, heartbeat)
    else:
        storage = optuna.storages.RDBStorage(f"sqlite:///{store}",
                                             engine_kwargs={"connect_args": {"timeout": busy_timeout}})
    study, _ = create_or_load_study(config, storage, make_sampler(config))
    extra = {"name": name} if name else {}
    handler = events if isinstance(events, Events) else events.append
    return Worker(prepare(config), target, budget or config.n_trials, handler, storage=storage, study=study,
                  **extra)


class Locked:
    """A second connection holding SQLite's exclusive lock on ``store`` (as another process would)."""

    def __init__(self, store):
        self.connection = sqlite3.connect(store, isolation_level=None, timeout=30, check_same_thread=False)
        self.connection.execute("BEGIN EXCLUSIVE")

    def release(self):
        self.connection.execute("ROLLBACK")
        self.connection.close()


# ----------------------------------------------------------------------------- plugins that break


class Broken:
    """A third-party plugin with scale steps that fail: at once, with NaN, or only while training."""

    #: set while ``flaky`` refuses to be built
    flaky_refuses = False

    @hookimpl
    def register_primitives(self, register):
        class Boom(nn.Module):
            def __init__(self, channels):
                super().__init__()

            def forward(self, x3):
                raise RuntimeError("the plugin\n   broke " + "x" * 600)

        class NanScale(nn.Module):
            def __init__(self, channels):
                super().__init__()

            def forward(self, x3):
                return torch.full_like(x3.mean(dim=(1, 2), keepdim=True), float("nan"))

        class TrainBoom(nn.Module):  # screening batches hold 32 samples, training batches 16
            def __init__(self, channels):
                super().__init__()

            def forward(self, x3):
                if x3.shape[0] == 16:
                    raise NormxError("training\n  broke   here " + "y" * 600)
                return x3.abs().mean(dim=(1, 2), keepdim=True) + 1e-5

        class Flaky(nn.Module):
            def __init__(self, channels):
                super().__init__()
                if Broken.flaky_refuses:
                    raise SpecError("flaky is gone")

            def forward(self, x3):
                return x3.abs().mean(dim=(1, 2), keepdim=True) + 1e-5

        register(Primitive(name="boom", slot="scale", factory=Boom))
        register(Primitive(name="nanscale", slot="scale", factory=NanScale))
        register(Primitive(name="trainboom", slot="scale", factory=TrainBoom))
        register(Primitive(name="flaky", slot="scale", factory=Flaky))


@pytest.fixture
def broken_plugin():
    from explorer.plugins import register, unregister

    register(Broken(), name="broken-plugin")
    yield
    Broken.flaky_refuses = False
    unregister("broken-plugin")


# ----------------------------------------------------------------------------- repeats (_reuse)


def test_a_repeat_of_a_complete_trial_is_told_its_values_and_results_and_takes_no_place(tmp_path):
    """``gn(groups=1)`` is LN by its spec, ``gn(group_size=16)`` by its equivalence key on 16-wide
    layers: both are told trial 0's values and copy its results; the budget of 2 then still
    evaluates ``rms``, and ``bn`` waits."""
    store = str(tmp_path / "r.db")
    config = config_of("r", n=2, objectives=TRAINED, training="steps = 2\nbatch_size = 32",
                       space=presets("ln", "gn(groups=1)", "gn(group_size=16)", "rms", "bn"))
    events = run(config, store)
    t = trials(store, "r")
    assert [x.state for x in t] == [TrialState.COMPLETE] * 4 + [TrialState.WAITING]
    original = t[0]
    assert original.user_attrs["spec"] == LN and "reused_from" not in original.user_attrs
    assert t[1].user_attrs["spec"] == LN and t[2].user_attrs["spec"] != LN
    assert t[2].user_attrs["equivalence_key"] == LN
    for repeat in (t[1], t[2]):
        attrs = repeat.user_attrs
        assert attrs["reused_from"] == 0 and attrs["stage"] == "done" and repeat.values == original.values
        assert {k: attrs[k] for k in RESULT_ATTRS if k in attrs} == \
            {k: original.user_attrs[k] for k in RESULT_ATTRS if k in original.user_attrs}
        assert {"predictors", "predictors_by_model", "train", "screening"} <= set(attrs)
        assert "step" not in attrs and "constraints:diverged" not in repeat.system_attrs
    assert "reused_from" not in t[3].user_attrs and t[3].user_attrs["baseline"] == "rms"
    assert ends(events) == [(0, "COMPLETE", ""), (1, "COMPLETE", "same as trial 0"),
                            (2, "COMPLETE", "same as trial 0"), (3, "COMPLETE", "")]
    finished = {e.trial: e for e in events if e.kind == "trial_finished"}
    assert finished[1].values == original.values and finished[1].spec == LN
    assert finished[2].spec == t[2].user_attrs["spec"]
    # repeats are not screened again
    assert [e.trial for e in events if e.kind == "stage" and e.stage == "screening"] == [0, 3]
    assert [e.trial for e in events if e.kind == "trial_started"] == [0, 1, 2, 3]
    mine = [e for e in events if e.kind not in ("study", "study_done")]
    assert {(e.study, e.worker) for e in mine} == {("r", worker_module.worker_name())}


def test_a_repeat_of_a_diverged_trial_stays_infeasible(tmp_path):
    store = str(tmp_path / "d.db")
    config = config_of("d", n=2, objectives=TRAINED, space=presets("identity", "identity"),
                       screening="prune_overflow = false",
                       training='steps = 20\nbatch_size = 32\nbase_lr = 30\nlr_rule = "constant"')
    events = run(config, store)
    first, repeat = trials(store, "d")
    assert first.user_attrs["train"]["diverged"] and first.system_attrs["constraints:diverged"] == 1.0
    assert repeat.state == TrialState.COMPLETE and repeat.values == first.values
    assert repeat.system_attrs["constraints:diverged"] == 1.0 and repeat.user_attrs["reused_from"] == 0
    assert load(store, "d").best_trials == []  # neither is on the front
    step = first.user_attrs["train"]["diverged_step"]
    assert ends(events) == [(0, "COMPLETE", f"diverged at step {step} ({MODEL})"), (1, "COMPLETE", "same as trial 0")]


def test_a_repeat_of_a_pruned_trial_is_pruned_with_its_reason(tmp_path):
    store = str(tmp_path / "p.db")
    config = config_of("p", n=2, space=presets("ln", "gn(groups=1)"), screening="max_cosine_similarity = 0.0")
    events = run(config, store)
    first, repeat = trials(store, "p")
    reason = first.user_attrs["prune_reason"]
    assert first.state == repeat.state == TrialState.PRUNED and "screening.max_cosine_similarity" in reason
    assert repeat.user_attrs["prune_reason"] == reason and repeat.user_attrs["stage"] == "pruned"
    assert repeat.user_attrs["predictors"] == first.user_attrs["predictors"]
    assert repeat.user_attrs["reused_from"] == 0 and "screening" not in repeat.user_attrs
    assert ends(events) == [(0, "PRUNED", reason), (1, "PRUNED", f"same as trial 0: {reason}")]
    assert [e.spec for e in events if e.kind == "trial_finished"] == [LN, LN]


def test_the_earlier_of_two_draws_of_one_composition_is_evaluated_while_the_later_runs(tmp_path):
    """Two workers (on other machines) draw the same composition, trials 0 and 1, before either
    runs. Trial 0 checks first, while 1 is running: it is evaluated anyway (the earlier draw; on
    the old code both were pruned as each other's repeat), and trial 1 then reuses it."""
    store = str(tmp_path / "race.db")
    config = config_of("race", n=2, space=presets("ln", "gn(groups=1)"))
    events = Events()
    one = worker_on(config, store, events, name="elsewhere:1")
    two = worker_on(config, store, events, name="elsewhere:2")
    first, second = one.claim(), two.claim()
    assert (first.trial.number, second.trial.number) == (0, 1) and first.spec_text == second.spec_text == LN
    assert one.run_trial(first) is False  # evaluated: not a repeat
    assert two.run_trial(second) is True
    t = trials(store, "race")
    assert [x.state for x in t] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert "reused_from" not in t[0].user_attrs and "predictors" in t[0].user_attrs
    assert t[1].user_attrs["reused_from"] == 0 and t[1].values == t[0].values
    assert (one.completed, two.completed) == (1, 0)
    assert ends(events) == [(0, "COMPLETE", ""), (1, "COMPLETE", "same as trial 0")]


def test_a_repeat_drawn_while_the_original_runs_is_pruned_and_later_repeats_reuse_the_original(tmp_path):
    """Trial 1 checks while trial 0 (the same composition, another worker's) runs: pruned with
    trial 0's number. Trial 0 is still evaluated (the pruned repeat holds no result), and a third
    draw reuses trial 0, not the pruned repeat it meets on the way."""
    store = str(tmp_path / "run.db")
    config = config_of("run", n=3, space=presets("ln", "gn(groups=1)", "ln"))
    events = Events()
    one = worker_on(config, store, events, name="elsewhere:1")
    two = worker_on(config, store, events, name="elsewhere:2")
    first = one.claim()
    assert two.run_trial(two.claim()) is True  # while trial 0 is still running
    repeat = trials(store, "run")[1]
    assert repeat.state == TrialState.PRUNED and repeat.user_attrs["reused_from"] == 0
    assert repeat.user_attrs["prune_reason"] == "same composition as trial 0, still running"
    assert repeat.user_attrs["stage"] == "pruned" and "predictors" not in repeat.user_attrs
    assert ends(events) == [(1, "PRUNED", "same composition as trial 0, still running")]
    assert events[-1].spec == LN
    assert one.run_trial(first) is False
    assert two.run_trial(two.claim()) is True
    t = trials(store, "run")
    assert [x.state for x in t] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert "reused_from" not in t[0].user_attrs and "predictors" in t[0].user_attrs
    assert t[2].user_attrs["reused_from"] == 0 and t[2].values == t[0].values and t[2].user_attrs["stage"] == "done"
    assert ends(events)[1:] == [(0, "COMPLETE", ""), (2, "COMPLETE", "same as trial 0")]
    assert (one.completed, two.completed) == (1, 0)


def test_an_invalid_composition_is_pruned_with_its_text_and_its_repeats_say_so(tmp_path, monkeypatch):
    """The only composition of the space is invalid: trial 0 is pruned with the reason and the
    text, the sampler's repeats with "same as trial 0", and the space is then exhausted."""
    monkeypatch.setattr(worker_module, "MAX_CONSECUTIVE_REPEATS", 2)
    store = str(tmp_path / "inv.db")
    config = config_of("inv", n=3, space='[space.slots]\ncenter = ["mean"]\n[space.params]\naxes = ["g"]\n'
                                           'group_size = [1]')
    events = run(config, store)
    t = trials(store, "inv")
    assert [x.state for x in t] == [TrialState.PRUNED] * 3
    reason = t[0].user_attrs["prune_reason"]
    assert reason.startswith("invalid composition 'mean(axes=g, group_size=1)': ")
    assert "nothing to normalize over" in reason
    assert [x.user_attrs["spec"] for x in t] == ["mean(axes=g, group_size=1)"] * 3
    assert all("equivalence_key" not in x.user_attrs and x.user_attrs["stage"] == "pruned" for x in t)
    assert [x.user_attrs.get("reused_from") for x in t] == [None, 0, 0]
    assert [x.user_attrs["prune_reason"] for x in t] == [reason] * 3
    assert ends(events) == [(0, "PRUNED", reason), (1, "PRUNED", f"same as trial 0: {reason}"),
                            (2, "PRUNED", f"same as trial 0: {reason}")]
    assert [e.message for e in events if e.kind == "space_exhausted"] == ["space exhausted: 1 distinct compositions"]
    assert not [e for e in events if e.kind == "stage"]


# ----------------------------------------------------------------------------- failures (run_trial)


def test_failing_compositions_fail_alone_with_one_line_messages(tmp_path, broken_plugin):
    """A step that raises fails its trial with ``Type: message`` on one line, at most 500
    characters; a NormxError says its message alone; an objective measured NaN at screening prunes
    the trial there, untrained (issue 24, item 14); a repeat of a failed trial fails with its
    error; and the study goes on to evaluate ``ln``."""
    store = str(tmp_path / "f.db")
    config = config_of("f", n=5, objectives=TRAINED, screening="prune_overflow = false",
                       training="steps = 2\nbatch_size = 16",
                       space=presets("boom", "boom", "nanscale", "trainboom", "ln"))
    events = run(config, store)
    t = trials(store, "f")
    assert [x.state for x in t] == [TrialState.FAIL] * 2 + [TrialState.PRUNED, TrialState.FAIL, TrialState.COMPLETE]
    boom = ("RuntimeError: the plugin broke " + "x" * 600)[:500]
    nan = f"objective cosine_similarity is NaN on {config.models[0]}: no reason was recorded"
    broke = ("training broke here " + "y" * 600)[:500]
    assert [x.user_attrs.get("error") for x in t[:4]] == [boom, boom, None, broke]
    assert t[2].user_attrs["prune_reason"] == nan and "train" not in t[2].user_attrs
    assert [x.user_attrs["stage"] for x in t[:4]] == ["failed", "failed", "pruned", "failed"]
    assert t[1].user_attrs["reused_from"] == 0 and "reused_from" not in t[2].user_attrs
    assert ends(events) == [(0, "FAIL", boom), (1, "FAIL", f"same as trial 0: {boom}"), (2, "PRUNED", nan),
                            (3, "FAIL", broke), (4, "COMPLETE", "")]
    specs = [(e.trial, e.spec) for e in events if e.kind == "trial_finished"]
    assert specs == [(0, "boom"), (1, "boom"), (2, "nanscale"), (3, "trainboom"), (4, LN)]
    # failed with an error, each holds its place: the presets hold four distinct compositions
    assert [e.message for e in events if e.kind == "space_exhausted"] == ["space exhausted: 4 distinct compositions"]


def test_a_step_that_cannot_be_built_for_training_prunes_the_trial(tmp_path, broken_plugin):
    """A plugin that builds for screening and refuses when training starts: pruned as invalid on
    the model, with the plugin's reason."""
    store = str(tmp_path / "fl.db")
    config = config_of("fl", n=1, objectives=TRAINED, training="steps = 1\nbatch_size = 32", space=presets("flaky"))

    def refuse_once_training(event):
        events(event)
        if event.kind == "stage" and event.stage == "training":
            Broken.flaky_refuses = True

    events = Events()
    run_study(config, storage=store, on_trial_event=refuse_once_training)
    (trial,) = trials(store, "fl")
    reason = f"invalid composition on {MODEL}: {MODEL} with flaky: flaky is gone"
    assert trial.state == TrialState.PRUNED and trial.user_attrs["prune_reason"] == reason
    assert trial.user_attrs["stage"] == "pruned" and "train" not in trial.user_attrs
    assert ends(events) == [(0, "PRUNED", reason)]


def test_a_composition_that_cannot_be_built_on_a_model_is_pruned_at_screening(tmp_path):
    store = str(tmp_path / "g3.db")
    config = config_of("g3", n=2, space=presets("gn(groups=3)", "ln"))
    events = run(config, store)
    bad, good = trials(store, "g3")
    reason = bad.user_attrs["prune_reason"]
    assert bad.state == TrialState.PRUNED and reason.startswith(f"invalid composition on {MODEL}: ")
    assert bad.user_attrs["stage"] == "pruned" and "predictors" not in bad.user_attrs
    assert good.state == TrialState.COMPLETE
    assert ends(events) == [(0, "PRUNED", reason), (1, "COMPLETE", "")]
    assert [e.spec for e in events if e.kind == "trial_finished"] == [bad.user_attrs["spec"], LN]


def test_a_storage_that_fails_during_a_trial_stops_the_run_with_one_line(tmp_path):
    """Another connection holds the database while trial 0 screens: the worker stops with one
    StorageError line, and the trial is left running (the next run finds it), not failed."""
    store = str(tmp_path / "busy.db")
    config = config_of("busy", n=2, space=presets("ln", "rms"))
    events = Events()
    worker = worker_on(config, store, events, busy_timeout=0.05)
    lock = []

    def on_event(event):
        events(event)
        if event.kind == "stage" and not lock:
            lock.append(Locked(store))

    worker.on_event = on_event
    try:
        with pytest.raises(StorageError) as caught:
            worker.run()
    finally:
        lock[0].release()
    message = str(caught.value)
    assert message.startswith(f"storage {resolve_storage(store).display} failed (") and "database is locked" in message
    assert message.endswith("); no trial was recorded as failed for it: run the same command again to resume")
    assert "\n" not in message
    t = trials(store, "busy")
    assert [x.state for x in t] == [TrialState.RUNNING, TrialState.WAITING]
    assert t[0].user_attrs["stage"] == "screening" and "error" not in t[0].user_attrs
    assert ends(events) == [] and not [e for e in events if e.kind == "worker_done"]


def test_a_read_only_storage_stops_the_worker_before_any_trial(tmp_path):
    store = str(tmp_path / "ro.db")
    config = config_of("ro", n=1)
    events = Events()
    worker_on(config, store, events)  # the study, created writable
    target = resolve_storage(store)
    storage = optuna.storages.RDBStorage(f"sqlite:///file:{store}?mode=ro&uri=true")
    study = optuna.load_study(study_name="ro", storage=storage)
    worker = Worker(prepare(config), target, 1, events.append, storage=storage, study=study)
    with pytest.raises(StorageError) as caught:
        worker.run()
    assert str(caught.value).startswith(f"storage {target.display} is read-only (attempt to write a readonly database")
    assert [x.state for x in trials(store, "ro")] == [TrialState.WAITING] and events == []


# ----------------------------------------------------------------------------- interruptions


def test_an_interruption_the_storage_refuses_to_record_leaves_the_trial_running(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "INTERRUPT_RECORD_ATTEMPTS", 2)  # one retry, 0.2 s later
    store = str(tmp_path / "intr.db")
    config = config_of("intr", n=1)
    events = Events()
    worker = worker_on(config, store, events, busy_timeout=0.05)
    lock = []

    def on_event(event):
        events(event)
        if event.kind == "stage":
            lock.append(Locked(store))
            raise KeyboardInterrupt

    worker.on_event = on_event
    try:
        with pytest.raises(KeyboardInterrupt):
            worker.run()
        try:  # what the storage says to the same write, still locked
            worker.storage.set_trial_user_attr(worker.study.trials[0]._trial_id, "stage", "interrupted")
        except Exception as err:  # noqa: BLE001 - whatever the storage raises is what the line quotes
            refusal = " ".join(str(err).split())[:200]
    finally:
        lock[0].release()
    line = f"interrupted, but the storage refused to record it ({refusal}); the next run finds it lost and retries it"
    assert ends(events) == [(0, "RUNNING", line)]
    assert refusal and [e.spec for e in events if e.kind == "trial_finished"] == [LN]
    (trial,) = trials(store, "intr")
    assert trial.state == TrialState.RUNNING and trial.user_attrs["stage"] == "screening"


def test_an_interruption_is_recorded_once_a_busy_storage_frees_up(tmp_path, monkeypatch):
    """The lock is released 0.15 s later: the one retry (of 2 tries), 0.2 s after the first try,
    gets through, the trial is recorded interrupted and its retry is queued with the same baseline."""
    monkeypatch.setattr(recording, "INTERRUPT_RECORD_ATTEMPTS", 2)
    store = str(tmp_path / "late.db")
    config = config_of("late", n=1)
    events = Events()
    worker = worker_on(config, store, events, busy_timeout=0.05)

    def on_event(event):
        events(event)
        if event.kind == "stage":
            lock = Locked(store)
            threading.Timer(0.15, lock.release).start()
            raise KeyboardInterrupt

    worker.on_event = on_event
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        worker.run()
    assert time.monotonic() - start >= 0.2
    assert ends(events) == [(0, "FAIL", "interrupted")]
    assert [e.spec for e in events if e.kind == "trial_finished"] == [LN]
    first, retry = trials(store, "late")
    assert first.state == TrialState.FAIL and first.user_attrs["stage"] == "interrupted"
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs == {"baseline": "ln", "retry_of": 0}


# ----------------------------------------------------------------------------- evaluate, screening


def test_batch_statistics_need_a_training_batch_of_two(tmp_path):
    """With training.batch_size = 1, BN is pruned unscreened with the reason; LN trains; a
    screening-only study screens BN at any batch size; a batch of 2 trains BN."""
    store = str(tmp_path / "bs.db")
    events = run(config_of("one", n=2, objectives=TRAINED, training="steps = 1\nbatch_size = 1",
                           space=presets("bn", "ln")), store)
    bn, ln = trials(store, "one")
    reason = "uses batch statistics, which need a training batch of at least 2 samples (training.batch_size = 1)"
    assert bn.state == TrialState.PRUNED and bn.user_attrs["prune_reason"] == reason
    assert "predictors" not in bn.user_attrs and "train" not in bn.user_attrs
    assert ln.state == TrialState.COMPLETE and "train" in ln.user_attrs
    assert ends(events) == [(0, "PRUNED", reason), (1, "COMPLETE", "")]
    assert [e.spec for e in events if e.kind == "trial_finished"] == [bn.user_attrs["spec"], LN]
    run(config_of("screen", n=1, training="steps = 1\nbatch_size = 1", space=presets("bn")), store)
    assert [x.state for x in trials(store, "screen")] == [TrialState.COMPLETE]
    run(config_of("two", n=1, objectives=TRAINED, training="steps = 1\nbatch_size = 2", space=presets("bn")), store)
    (two,) = trials(store, "two")
    assert two.state == TrialState.COMPLETE and "train" in two.user_attrs


def test_the_relative_policy_ranks_each_candidate_against_the_distinct_ones_screened(tmp_path):
    """Each trial's ``screening`` decision is the policy's for the predictors of every earlier
    distinct composition (repeats and pruned-at-threshold candidates as they count) and the
    trials trained so far; a pruned one carries the rank as its reason and never trains."""
    store = str(tmp_path / "rel.db")
    config = config_of("rel", n=9, objectives=TRAINED, training="steps = 1\nbatch_size = 32",
                       screening="warmup = 2\ntop_fraction = 0.2\nkeep_nondominated = false",
                       space=presets("identity", "ln", "ln", "bn", "rms", "in", "gn(groups=4)", "vn", "lmbv", "dyt"))
    events = run(config, store)
    t = trials(store, "rel")
    policy = RelativePolicy.of(config.screening)
    screened, trained, decisions = [], 0, []
    for trial in t:
        attrs = trial.user_attrs
        if "reused_from" in attrs:
            assert attrs["screening"] == t[attrs["reused_from"]].user_attrs["screening"]
            continue
        if "predictors" not in attrs:  # in (x) on features: invalid on the model, never screened
            assert attrs["prune_reason"].startswith(f"invalid composition on {MODEL}: ") and "screening" not in attrs
            continue
        mine = candidate_values(attrs["predictors"])
        expected = relative_decision(policy, mine, screened, trained).to_attrs()
        assert attrs["screening"] == expected
        decisions.append(expected["decision"])
        if expected["decision"] == "prune":
            assert trial.state == TrialState.PRUNED and attrs["prune_reason"] == expected["why"]
            assert "train" not in attrs
        else:
            assert trial.state == TrialState.COMPLETE and "train" in attrs
            trained += 1
        screened.append(mine)
    assert decisions[:2] == ["train", "train"] and "prune" in decisions and decisions.count("train") >= 3
    assert t[2].user_attrs["reused_from"] == 1
    pruned = [e for e in events if e.kind == "trial_finished" and e.state == "PRUNED"]
    assert [e.message for e in pruned] == [t[e.trial].user_attrs["prune_reason"] for e in pruned]


def test_threshold_policy_and_screening_only_studies_record_no_decision(tmp_path):
    store = str(tmp_path / "th.db")
    run(config_of("th", n=1, objectives=TRAINED, training="steps = 1\nbatch_size = 32",
                  screening='policy = "thresholds"'), store)
    run(config_of("so", n=1), store)
    for name in ("th", "so"):
        (trial,) = trials(store, name)
        assert trial.state == TrialState.COMPLETE and "screening" not in trial.user_attrs
    assert "train" in trials(store, "th")[0].user_attrs and "train" not in trials(store, "so")[0].user_attrs


# ----------------------------------------------------------------------------- build, the space


def test_a_sampled_composition_records_its_canonical_spec_and_key(tmp_path):
    store = str(tmp_path / "s.db")
    config = config_of("s", n=2, space=TWO)
    run(config, store)
    ctx = prepare(config)
    t = trials(store, "s")
    assert {x.user_attrs["spec"] for x in t if "reused_from" not in x.user_attrs} == {"std(c)", "mean(c) | std(c)"}
    for x in t:
        assert "baseline" not in x.user_attrs
        assert x.user_attrs["equivalence_key"] == ctx.equivalence_key(x.user_attrs["spec"])
        assert x.user_attrs["spec"] == ("mean(c) | std(c)" if x.params["center"] == "mean" else "std(c)")


def test_a_baseline_records_its_canonical_spec_and_key(tmp_path):
    store = str(tmp_path / "b.db")
    run(config_of("b", n=1, space=presets("gn(group_size=16)")), store)
    (trial,) = trials(store, "b")
    ctx = prepare(config_of("b", n=1))
    assert trial.user_attrs["baseline"] == "gn(group_size=16)" and trial.params == {}
    assert trial.user_attrs["spec"] == str(parse_spec("gn(group_size=16)", ctx.registry)) != LN
    assert trial.user_attrs["equivalence_key"] == LN


def test_repeats_make_the_worker_list_the_space_and_enqueue_what_is_missing(tmp_path, monkeypatch):
    """The preset drawn three times: after two repeats in a row (the limit lowered to 2) the
    worker lists the space and enqueues the compositions not evaluated, in the space's order, as
    many as the budget leaves room for; once all four are known, two more repeats end the study
    with the space exhausted."""
    monkeypatch.setattr(worker_module, "MAX_CONSECUTIVE_REPEATS", 2)
    store = str(tmp_path / "m.db")
    space = 'presets = ["mean(c) | std(c)", "mean(c) | std(c)", "mean(c) | std(c)"]\n' + FOUR
    repeated = ["mean(c) | std(c)"] * 3
    events = run(config_of("one", n=2, space=space), store)  # room for one more
    t = trials(store, "one")
    assert [x.state for x in t] == [TrialState.COMPLETE] * 4
    assert [x.user_attrs["spec"] for x in t] == repeated + ["std(c)"]
    assert [x.user_attrs.get("reused_from") for x in t] == [None, 0, 0, None]
    assert t[3].params == {"center": "none", "scale": "std"} and "baseline" not in t[3].user_attrs
    assert not [e for e in events if e.kind == "space_exhausted"]
    assert [e.message for e in events if e.kind == "worker_done"] == ["ran 4 trial(s)"]
    run(config_of("all", n=4, space=space), store)  # room for the three
    t = trials(store, "all")
    assert [x.state for x in t] == [TrialState.COMPLETE] * 6
    assert [x.user_attrs["spec"] for x in t] == repeated + [
        "std(c)", "root_mean_square(c)", "mean(c) | root_mean_square(c)"]
    events = run(config_of("all", n=6, space=space), store)
    t = trials(store, "all")
    assert [x.user_attrs.get("reused_from") is not None for x in t[6:]] == [True, True]
    assert [e.message for e in events if e.kind == "space_exhausted"] == ["space exhausted: 4 distinct compositions"]
    assert load(store, "all").user_attrs["space_exhausted"] == 4


def test_repeated_presets_of_a_space_without_slots_list_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_module, "MAX_CONSECUTIVE_REPEATS", 2)
    store = str(tmp_path / "po.db")
    events = run(config_of("po", n=5, space=presets("ln", "ln", "ln")), store)
    assert [x.user_attrs["spec"] for x in trials(store, "po")] == [LN] * 3
    assert [e.message for e in events if e.kind == "space_exhausted"] == ["space exhausted: 1 distinct compositions"]


def test_a_space_too_large_to_list_ends_after_the_repeats(tmp_path, monkeypatch):
    monkeypatch.setattr(worker_module, "MAX_CONSECUTIVE_REPEATS", 1)
    monkeypatch.setattr(claiming, "ENUMERATION_LIMIT", 1)
    store = str(tmp_path / "big.db")
    space = 'presets = ["mean(c) | std(c)", "mean(c) | std(c)"]\n' + TWO
    events = run(config_of("big", n=3, space=space), store)
    assert len(trials(store, "big")) == 2
    assert [e.message for e in events if e.kind == "space_exhausted"] == [
        ("space exhausted: 1 distinct compositions (no new one in 1 consecutive draws; the space has more than "
         "1 leaves to list)")]


def test_a_fixed_space_is_done_once_its_one_composition_is_evaluated(tmp_path):
    store = str(tmp_path / "fx.db")
    events = run(config_of("fx", n=4, space='presets = ["ln"]\nfixed = "mean(c) | std(c)"'), store)
    t = trials(store, "fx")
    assert [(x.state, x.user_attrs["spec"]) for x in t] == [(TrialState.COMPLETE, LN),
                                                           (TrialState.COMPLETE, "mean(c) | std(c)")]
    assert [e.message for e in events if e.kind == "space_exhausted"] == ["space exhausted: 2 distinct compositions"]
    run(config_of("fx", n=4, space='presets = ["ln"]\nfixed = "mean(c) | std(c)"'), store)
    assert len(trials(store, "fx")) == 2  # resumed: nothing new to sample


# ----------------------------------------------------------------------------- heartbeats, claims


def test_a_trial_beats_its_heartbeat_while_it_runs(tmp_path):
    store = str(tmp_path / "hb.db")
    config = config_of("hb", n=1, extra="[workers]\nheartbeat_interval = 1\n")
    seen = []

    def beats():
        with sqlite3.connect(store) as connection:
            return connection.execute("SELECT t.number, h.heartbeat FROM trial_heartbeats h "
                                      "JOIN trials t ON t.trial_id = h.trial_id").fetchall()

    def on_event(event):
        events(event)
        if event.kind == "stage":
            first = beats()
            threads = [t for t in threading.enumerate() if t.name == "normx-heartbeat"]
            time.sleep(1.6)  # past the next beat (a second after the first), with room for a busy machine
            seen.append((first, beats(), [t.daemon for t in threads]))

    events = Events()
    run_study(config, storage=store, on_trial_event=on_event)
    ((first, later, daemons),) = seen
    assert [n for n, _ in first] == [0] and [n for n, _ in later] == [0] and later[0][1] > first[0][1]
    assert daemons == [True]
    assert not [t for t in threading.enumerate() if t.name == "normx-heartbeat"]  # stopped with the trial
    (trial,) = trials(store, "hb")
    (end,) = [e for e in events if e.kind == "trial_finished"]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["worker"] == end.worker == f"{socket.gethostname()}:{os.getpid()}"


# ----------------------------------------------------------------------------- training progress


def test_training_progress_is_written_to_the_trial_at_most_every_interval(tmp_path, monkeypatch):
    """Two models of 3 steps each: the progress events count 3 then 6 of 6; with writes allowed at
    every event the trial's stored step follows them, with an interval longer than the run it stays
    at 0 until the end (6)."""
    store = str(tmp_path / "pg.db")
    models = [MODEL, "mlp(depth=2, width=8)"]

    def study_run(name):
        config = config_of(name, n=1, objectives=TRAINED, training="steps = 3\nbatch_size = 32", models=models)
        stored = []

        def on_event(event):
            events(event)
            if event.kind == "progress":
                stored.append((event.step, event.steps, trials(store, name)[0].user_attrs["step"]))

        events = Events()
        run_study(config, storage=store, on_trial_event=on_event)
        return stored, events

    # an interval no run reaches, however busy the machine (the default's 2 s is reached under load)
    monkeypatch.setattr(evaluation, "PROGRESS_WRITE_EVERY_S", 3600.0)
    stored, events = study_run("slow")
    assert stored == [(3, 6, 0), (6, 6, 0)]
    monkeypatch.setattr(evaluation, "PROGRESS_WRITE_EVERY_S", 0.0)
    stored, events = study_run("fast")
    assert stored == [(3, 6, 3), (6, 6, 6)]
    (trial,) = trials(store, "fast")
    assert trial.user_attrs["step"] == trial.user_attrs["steps"] == 6
    assert set(trial.user_attrs["train_by_model"]) == set(models)
    assert [(e.kind, e.stage, e.step, e.steps) for e in events if e.kind == "stage"] == [
        ("stage", "screening", None, None), ("stage", "training", 0, 6)]
    slow, fast = trials(store, "slow")[0], trial
    for m in models:  # each model trained from the study's seed: the same run twice
        assert slow.user_attrs["train_by_model"][m]["loss_curve"] == fast.user_attrs["train_by_model"][m]["loss_curve"]


def test_a_single_model_study_stores_no_per_model_training(tmp_path):
    """Trained one epoch of the 64 samples in batches of 32: two steps."""
    store = str(tmp_path / "one.db")
    run(config_of("one", n=1, objectives=TRAINED, training="epochs = 1\nbatch_size = 32"), store)
    (trial,) = trials(store, "one")
    attrs = trial.user_attrs
    assert "train_by_model" not in attrs and attrs["steps"] == attrs["step"] == 2
    assert trial.values == [attrs["train"]["test_accuracy"], attrs["predictors"]["cosine_similarity"]]
    assert "constraints:diverged" not in trial.system_attrs


@pytest.mark.parametrize("max_retry", [0, 1])
def test_a_trial_whose_local_worker_is_gone_is_failed_and_retried_within_max_retry(tmp_path, max_retry):
    """Trial 0 (ln) names a worker of this host that holds no liveness lock: the next claim fails
    it as lost, and retries it only when ``workers.max_retry`` allows."""
    import socket

    store = str(tmp_path / f"lost{max_retry}.db")
    config = config_of("lost", n=2, space=presets("ln", "rms"), extra=f"[workers]\nmax_retry = {max_retry}\n")
    events = Events()
    worker = worker_on(config, store, events)
    gone = worker.study.ask()
    dead = f"{socket.gethostname()}:999999999"
    gone.set_user_attr("worker", dead)
    worker.run()
    t = trials(store, "lost")
    assert t[0].state == TrialState.FAIL
    assert t[0].user_attrs["error"] == f"lost: its worker {dead} stopped without finishing it; retried"
    done = [(x.user_attrs["baseline"], x.system_attrs.get("failed_trial")) for x in t[1:]]
    assert done == ([("rms", None)] if max_retry == 0 else [("rms", None), ("ln", 0)])
    assert all(x.state == TrialState.COMPLETE for x in t[1:]) and worker.completed == len(done)


def test_a_worker_stops_once_the_presets_are_drawn_while_another_worker_runs_one(tmp_path):
    """Nothing is left to sample: the worker does not wait for the other worker's running trial."""
    store = str(tmp_path / "pd.db")
    config = config_of("pd", n=5, space=presets("ln", "rms"))
    events = Events()
    other = worker_on(config, store, events, name="elsewhere:1")
    running = other.claim()
    worker = worker_on(config, store, events)
    assert worker.run() == 1 and worker.exhausted == 2
    t = trials(store, "pd")
    assert [x.state for x in t] == [TrialState.RUNNING, TrialState.COMPLETE] and running.trial.number == 0
    assert [e.message for e in events if e.kind == "space_exhausted"] == ["space exhausted: 2 distinct compositions"]


def test_a_signal_while_waiting_for_the_claim_lock_records_the_claimed_trial_interrupted(tmp_path):
    """SIGINT arrives while another worker holds the claim lock: the claim completes (asked,
    drawn) with the signal held, then the trial is recorded interrupted, its retry queued, and the
    interrupt raised."""
    import fcntl
    import os
    import signal

    store = str(tmp_path / "sig.db")
    config = config_of("sig", n=1)
    events = Events()
    worker = worker_on(config, store, events)
    handle = open(store + ".normx-claim", "a+")  # noqa: SIM115 - closed by the timer that unlocks it
    fcntl.flock(handle, fcntl.LOCK_EX)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    threading.Timer(0.5, lambda: (fcntl.flock(handle, fcntl.LOCK_UN), handle.close())).start()
    with pytest.raises(KeyboardInterrupt):
        worker.run()
    first, retry = trials(store, "sig")
    assert first.state == TrialState.FAIL and first.user_attrs["stage"] == "interrupted"
    assert first.user_attrs["spec"] == LN and first.user_attrs["worker"] == worker.name
    assert retry.state == TrialState.WAITING and retry.user_attrs == {"baseline": "ln", "retry_of": 0}
    assert ends(events) == [(0, "FAIL", "interrupted")] and not [e for e in events if e.kind == "trial_started"]


def test_a_candidate_screened_while_another_trains_counts_it_as_trained(tmp_path):
    """Worker 2 screens trial 1 while worker 1's trial 0 trains (stage ``training``, no results
    yet): past the warm-up of 1, trial 1 is ranked against trial 0."""
    store = str(tmp_path / "conc.db")
    config = config_of("conc", n=2, objectives=TRAINED, training="steps = 1\nbatch_size = 32",
                       screening="warmup = 1\ntop_fraction = 0.5\nkeep_nondominated = false",
                       space=presets("ln", "vn"))
    events = Events()
    one = worker_on(config, store, events, name="elsewhere:1")
    two = worker_on(config, store, events, name="elsewhere:2")

    def on_event(event):
        events(event)
        if event.kind == "stage" and event.stage == "training" and event.trial == 0:
            two.run_trial(two.claim())

    one.on_event = on_event
    one.run_trial(one.claim())
    first, second = trials(store, "conc")
    expected = relative_decision(RelativePolicy.of(config.screening), candidate_values(second.user_attrs["predictors"]),
                                 [candidate_values(first.user_attrs["predictors"])], 1).to_attrs()
    assert expected["rank"] is not None and second.user_attrs["screening"] == expected
    assert first.user_attrs["screening"]["why"] == "warm-up: 0 of 1 trained before ranking starts"


def test_screening_and_training_are_the_compositions_own_on_each_model(tmp_path):
    """The stored predictors are the composition's, scored on the study's batches and seeds (and
    its chosen predictors), and its training is the model trained from the study's seed, on every
    model and the study's data (recomputed here)."""
    import json
    from dataclasses import asdict

    from explorer.data import iter_batches
    from explorer.models import create_model
    from explorer.records import json_safe
    from explorer.scoring import predictor_record, score
    from explorer.search.policy import aggregate_predictors, aggregate_training
    from explorer.training import TrainConfig, train

    store = str(tmp_path / "ref.db")
    models = [MODEL, "mlp(depth=2, width=8)"]
    config = config_of("ref", n=1, objectives=TRAINED, training="steps = 2\nbatch_size = 16", models=models,
                       screening='seeds = 2\npredictors = ["forward_flops"]')
    text = config.text.replace("n_trials = 1\n", "n_trials = 1\nseed = 3\n").replace('name = "gaussian"', 'name = "digits"')
    config = parse_study_text(text, "ref.toml")  # digits: one input channel, not the models' default 3
    events = run(config, store)
    (trial,) = trials(store, "ref")
    ctx = prepare(config)
    s, data = config.screening, ctx.train_data
    by_model, train_by_model = {}, {}
    for model in models:
        batches = list(iter_batches(data, s.batch_size, s.batches, seed=3))
        scored = score(LN, model=model, inputs=batches, seeds=2, device="cpu", num_classes=data.num_classes,
                       predictors=config.predictor_names(), compile=s.compile)
        by_model[model] = predictor_record(scored)
        assert trial.user_attrs["predictors_by_model"][model] == json.loads(json.dumps(json_safe(by_model[model])))
        assert "forward_flops" in by_model[model]
        torch.manual_seed(3)
        net = create_model(model, LN, num_classes=data.num_classes, in_channels=int(data.x.shape[1]))
        trained = train(net, data, ctx.test_data, TrainConfig(**{**asdict(config.training), "device": "cpu", "seed": 3}))
        train_by_model[model] = trained.as_dict()
        expected = json.loads(json.dumps(json_safe(trained.as_dict())))
        stored = trial.user_attrs["train_by_model"][model]
        assert {k: v for k, v in stored.items() if k != "wall_time_s"} == \
            {k: v for k, v in expected.items() if k != "wall_time_s"}
    assert trial.user_attrs["predictors"] == json.loads(json.dumps(json_safe(aggregate_predictors(by_model))))
    aggregated = json.loads(json.dumps(json_safe(aggregate_training(train_by_model))))
    assert {k: v for k, v in trial.user_attrs["train"].items() if k != "wall_time_s"} == \
        {k: v for k, v in aggregated.items() if k != "wall_time_s"}
    assert [(e.stage, e.spec) for e in events if e.kind == "stage"] == [("screening", LN), ("training", LN)]
    assert {e.spec for e in events if e.kind == "progress"} == {LN}


def test_a_worker_that_connects_itself_watches_heartbeats_and_retries_as_the_study_says(tmp_path, monkeypatch):
    """A worker handed no storage (as in a worker process) opens it with the study's heartbeat,
    grace period and max_retry: another machine's silent trial goes stale and, with
    ``max_retry = 0``, is not retried; the worker runs the other preset."""
    monkeypatch.setattr(worker_module, "IDLE_POLL_S", 0.2)
    store = str(tmp_path / "cn.db")
    config = config_of("cn", n=2, space=presets("ln", "rms"),
                       extra="[workers]\nheartbeat_interval = 1\ngrace_period = 1\nmax_retry = 0\n")
    target = resolve_storage(store)
    storage = open_storage(target, 1, 1, 0)
    study, _ = create_or_load_study(config, storage, make_sampler(config))
    gone = study.ask()
    storage.record_heartbeat(gone._trial_id)
    gone.set_user_attr("worker", "elsewhere:1")
    events = Events()
    worker = Worker(prepare(config), target, 2, events)
    assert worker.run() == 1 and worker.heartbeat_interval == 1
    t = trials(store, "cn")
    assert [x.state for x in t] == [TrialState.FAIL, TrialState.COMPLETE]
    assert t[1].user_attrs["baseline"] == "rms" and "failed_trial" not in t[1].system_attrs
    assert ends(events) == [(1, "COMPLETE", "")]


def test_a_worker_process_on_a_journal_draws_from_its_own_seed(tmp_path):
    """Worker 1 of a study (as in a worker process: handed no storage) opens the journal without
    heartbeats, finds its study among others, and samples from the study's seed + 1000, the
    draws of ``RandomSampler(seed=1000)`` (recomputed here)."""
    store = str(tmp_path / "j.journal")
    run(config_of("other", n=1), store)
    space = ('[space.slots]\ncenter = ["none", "mean"]\nscale = ["std", "root_mean_square"]\n[space.params]\n'
             'axes = ["c", "b", "cx", "bx"]')
    config = config_of("j", n=3, space=space)
    config = parse_study_text(config.text.replace("n_trials = 3\n", 'n_trials = 3\nsampler = "random"\n'), "j.toml")
    target = resolve_storage(store)
    create_or_load_study(config, open_storage(target))
    events = Events()
    worker = Worker(prepare(config), target, 3, events, index=1)
    ran = worker.run()
    assert worker.heartbeat_interval is None and worker.study.study_name == "j"
    drawn = optuna.load_study(study_name="j", storage=open_storage(target)).get_trials()
    assert len(drawn) == ran >= 3
    reference = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1000))
    for trial in drawn:  # the same draws, in order (a random sampler ignores the history)
        expected = reference.ask()
        assert str(worker.ctx.space.sample(expected).spec) == trial.user_attrs["spec"]
        assert trial.params == expected.params
    assert [e.message for e in events if e.kind == "worker_done"] == [f"ran {ran} trial(s)"]


def test_run_trial_draws_the_composition_of_a_trial_it_is_handed(tmp_path):
    """``Worker.run_trial`` also takes a bare Optuna trial: it draws the composition itself, and
    the trial's first heartbeat is recorded before it screens."""
    store = str(tmp_path / "rt.db")
    config = config_of("rt", n=1, space=presets("rms"))
    events = Events()
    worker = worker_on(config, store, events, name="elsewhere:7", heartbeat=60)
    beats = []

    def on_event(event):
        events(event)
        if event.kind == "stage":
            with sqlite3.connect(store) as connection:
                beats.extend(connection.execute("SELECT t.number FROM trial_heartbeats h "
                                                "JOIN trials t ON t.trial_id = h.trial_id").fetchall())

    worker.on_event = on_event
    assert worker.run_trial(worker.study.ask()) is False
    assert beats == [(0,)]
    (trial,) = trials(store, "rt")
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["worker"] == "elsewhere:7"
    assert trial.user_attrs["spec"] == str(parse_spec("rms", worker.ctx.registry)) and worker.completed == 1
    assert [e.kind for e in events] == ["trial_started", "stage", "trial_finished"]


def test_an_interrupted_sampled_trial_is_retried_with_its_parameters(tmp_path):
    store = str(tmp_path / "si.db")
    config = config_of("si", n=1, space=TWO)
    events = Events()

    def interrupt(event):
        events(event)
        if event.kind == "stage":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(config, storage=store, on_trial_event=interrupt)
    first, retry = trials(store, "si")
    assert first.state == TrialState.FAIL and first.user_attrs["stage"] == "interrupted" and first.params
    assert retry.state == TrialState.WAITING and retry.system_attrs["fixed_params"] == first.params
    assert retry.user_attrs == {"retry_of": 0}
    assert ends(events) == [(0, "FAIL", "interrupted")]
    assert [e.spec for e in events if e.kind == "trial_finished"] == [first.user_attrs["spec"]]


def test_a_worker_without_room_waits_for_another_workers_running_trial(tmp_path, monkeypatch):
    """The budget of 1 is taken by a trial another worker (on this machine's storage) runs: this
    worker waits, polling, until that trial ends, and then stops: no trial of its own."""
    monkeypatch.setattr(worker_module, "IDLE_POLL_S", 0.1)
    store = str(tmp_path / "wait.db")
    config = config_of("wait", n=1, space=presets("ln", "rms"))
    events = Events()
    other = worker_on(config, store, Events(), name="elsewhere:1")
    running = other.claim()
    worker = worker_on(config, store, events)
    threading.Timer(0.5, other.run_trial, (running,)).start()
    start = time.monotonic()
    assert worker.run() == 0
    assert time.monotonic() - start >= 0.5
    assert [x.state for x in trials(store, "wait")] == [TrialState.COMPLETE, TrialState.WAITING]
    assert [e.kind for e in events] == ["worker_done"]


def test_a_retry_reuses_a_repeat_evaluated_after_the_interrupted_original(tmp_path):
    """Trial 0 (ln) is interrupted; on resume ``gn(groups=1)`` (LN, trial 1) is evaluated first,
    past the interrupted trial 0, and the retry of trial 0 (trial 2) then reuses trial 1."""
    store = str(tmp_path / "ir.db")
    config = config_of("ir", n=2, space=presets("ln", "gn(groups=1)"))

    def interrupt(event):
        if event.kind == "stage":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(config, storage=store, on_trial_event=interrupt)
    events = run(config, store)
    t = trials(store, "ir")
    assert [x.state for x in t] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "reused_from" not in t[1].user_attrs and t[2].user_attrs["retry_of"] == 0
    assert t[2].user_attrs["reused_from"] == 1 and t[2].values == t[1].values
    assert ends(events) == [(1, "COMPLETE", ""), (2, "COMPLETE", "same as trial 1")]
