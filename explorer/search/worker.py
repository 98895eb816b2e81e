"""A worker: the coordinator that claims trials within the study-wide budget and runs each one.

One trial, in one worker, each step in its own module:

1. **claim**: under the storage's claim lock, count the trials that hold a place in the budget
   (:func:`explorer.search.optuna_study.budget_counts`) and ask Optuna for a trial only when there is
   room. A waiting trial (an enqueued baseline, or the retry of a trial whose worker died or was
   interrupted) is taken before a new one is sampled. Its composition is drawn and parsed once
   under the same lock (:mod:`explorer.search.claiming`): the baseline's spec, or one sampled from
   the space (define-by-run); an invalid one is pruned with the reason.
2. **reuse**: a composition that computes what an earlier trial computed ends as that trial did
   (``reused_from``) instead of being computed again (:mod:`explorer.search.reuse`).
3. **evaluate** it (:mod:`explorer.search.evaluation`): screen it with the init predictors on every
   model of the study; past a threshold (explosion exponent, variance growth, NaN) it is pruned
   with the reason, never trained; the survivors train briefly on every model.
4. **record** the results and tell Optuna the objectives, aggregated over models (worst case by
   default): every way a trial ends goes through one sequence (:mod:`explorer.search.recording`).

Everything goes into the trial's user attributes as ``docs/trial-schema.md`` (and
:mod:`explorer.search.schema`) says. Ctrl-C marks the running trial ``interrupted`` (state FAIL),
enqueues its retry, and re-raises. The worker lists the space when the sampler keeps repeating
itself, and stops when the budget is spent or the space is exhausted.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage

from explorer.errors import NormxError
from explorer.search import claiming
from explorer.search.claiming import Claimed, draw, presets_only_and_done, unevaluated
from explorer.search.context import StudyContext
from explorer.search.evaluation import Evaluator, InvalidComposition
from explorer.search.events import TrialEvent, TrialEventHandler
from explorer.search.liveness import Heartbeat, WorkerLiveness, fail_lost_trials, liveness_dir
from explorer.search.recording import Recorder, failed, pruned
from explorer.search.reuse import reused_ending
from explorer.search.schema import Stage, StudyAttr, TrialAttr
from explorer.search.signals import deferred_interrupts, interruption_handled, raise_if_interrupted
from explorer.search.storage import StorageTarget, claim_lock, open_storage, storage_failure
from explorer.search.optuna_study import budget_counts, make_sampler

#: Seconds between two polls of an idle worker waiting for other workers' trials.
IDLE_POLL_S = 1.0
#: Consecutive repeats of known compositions after which a worker lists the space: it enqueues the
#: compositions the sampler has not found, or calls the space exhausted.
MAX_CONSECUTIVE_REPEATS = 30


def worker_name() -> str:
    """``host:pid``: the name a worker writes into its trials (``worker``) and its events."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker:
    """Runs trials of one study until the study-wide budget is spent."""

    ctx: StudyContext
    target: StorageTarget
    budget: int
    on_event: TrialEventHandler
    index: int = 0
    storage: BaseStorage | None = None
    study: optuna.Study | None = None
    name: str = field(default_factory=worker_name)
    #: trials this worker evaluated and completed (repeats of known compositions not counted)
    completed: int = 0
    #: the number of distinct compositions, when this worker found no new one to evaluate
    exhausted: int | None = None
    _unlisted: bool = False

    def connect(self) -> None:
        config = self.ctx.config
        heartbeat = config.workers.heartbeat_interval if self.target.supports_heartbeat else None
        self.storage = open_storage(self.target, heartbeat, config.workers.grace_period, config.workers.max_retry)
        self.study = optuna.load_study(study_name=config.name, storage=self.storage,
                                       sampler=make_sampler(config, self.index))

    def open_artifacts(self) -> None:
        """Policy "halving": the study's artifact store, where rung checkpoints live."""
        if self.ctx.config.screening.policy == "halving" and self.ctx.artifacts is None:
            from explorer.search.checkpoints import open_artifact_store

            self.ctx.artifacts = open_artifact_store(self.target, self.ctx.config)

    @property
    def heartbeat_interval(self) -> int | None:
        getter = getattr(self.storage, "get_heartbeat_interval", None)
        return getter() if getter else None

    @property
    def recorder(self) -> Recorder:
        """What ends this worker's trials (:mod:`explorer.search.recording`)."""
        return Recorder(self.study, self.target, self.emit)

    def emit(self, kind: str, **fields: Any) -> None:
        self.on_event(TrialEvent(kind=kind, study=self.ctx.config.name, worker=self.name, **fields))

    def claim(self) -> Claimed | None:
        """A trial within the budget with its composition drawn, or None when the budget is spent
        or the space is exhausted. While other workers' trials run and their workers can be watched
        (heartbeats, liveness files), waits: a worker that dies has its trial retried, and this
        worker runs the retry.

        Asking, the first heartbeat, the worker's name and the draw happen under the claim lock with
        Ctrl-C/SIGTERM held, so a RUNNING trial is never left without them (:mod:`liveness`)."""
        max_retry = self.ctx.config.workers.max_retry
        while True:
            if self.heartbeat_interval:
                optuna.storages.fail_stale_trials(self.study)
            claimed, done = None, False
            with deferred_interrupts() as held:
                with claim_lock(self.target, self.storage, self.ctx.config.name):
                    fail_lost_trials(self.study, self.target, max_retry)
                    taken, running, waiting = budget_counts(self.study)
                    if taken < self.budget:
                        if not waiting and presets_only_and_done(self.ctx, self.study):
                            self.exhausted, done = taken, True
                        else:
                            trial = self.study.ask()
                            if self.heartbeat_interval:
                                self.storage.record_heartbeat(trial._trial_id)
                            trial.set_user_attr(TrialAttr.WORKER, self.name)
                            claimed = draw(trial, self.ctx)
            if held.pending:
                if claimed is not None:
                    self.recorder.interrupt(claimed.trial, None)
                raise KeyboardInterrupt
            if claimed is not None:
                return claimed
            if done or not (running and (self.heartbeat_interval or liveness_dir(self.target))):
                return None
            time.sleep(IDLE_POLL_S)

    def _run_trials(self) -> int:
        """The trial loop: claim, run, and list the space when the sampler keeps repeating itself."""
        ran = repeats = 0
        while True:
            raise_if_interrupted()  # a signal swallowed between trials (in a destructor) stops the run here
            claimed = self.claim()
            if claimed is None:
                break
            ran += 1
            repeats = repeats + 1 if self.run_trial(claimed) else 0
            if repeats >= MAX_CONSECUTIVE_REPEATS:
                missing = unevaluated(self.ctx, self.study)
                if missing:  # the sampler keeps repeating itself, but the space has more: ask for those
                    room = self.budget - budget_counts(self.study)[0]
                    for params in missing[:max(0, room)]:
                        self.study.enqueue_trial(params)
                    repeats = 0
                    continue
                self.exhausted = budget_counts(self.study)[0]
                self._unlisted = missing is None
                break
        if self.exhausted is not None:
            message = f"space exhausted: {self.exhausted} distinct compositions"
            if self._unlisted:
                message += (f" (no new one in {MAX_CONSECUTIVE_REPEATS} consecutive draws; the space has more "
                            f"than {claiming.ENUMERATION_LIMIT} leaves to list)")
            self.study.set_user_attr(StudyAttr.SPACE_EXHAUSTED, self.exhausted)
            self.emit("space_exhausted", message=message)
        return ran

    def run(self) -> int:
        """Run trials until the budget is spent or the space is exhausted; returns the number of
        trials this worker ran (repeats of known compositions included).

        A storage that fails (full, read-only, its server gone) stops the worker at once with one
        :class:`StorageError` line; no trial is recorded as failed for it."""
        ran = 0
        interruption_handled()  # a signal whose interrupt an earlier run (or its caller) caught is not pending
        try:
            with WorkerLiveness(self.target, self.name):
                if self.study is None:
                    self.connect()
                self.open_artifacts()
                ran = self._run_trials()
        except NormxError:
            raise
        except Exception as err:
            failure = storage_failure(err, self.target)
            if failure is None:
                raise
            raise failure from None
        self.emit("worker_done", message=f"ran {ran} trial(s)")
        return ran

    def run_trial(self, claimed: Claimed | optuna.Trial) -> bool:
        """Evaluate and record one trial; whatever goes wrong ends this trial only. Returns whether
        it repeated a known composition (told to the sampler with the earlier result)."""
        if not isinstance(claimed, Claimed):
            claimed = draw(claimed, self.ctx)
        trial, recorder = claimed.trial, self.recorder
        try:
            with Heartbeat(self.storage, trial._trial_id, self.heartbeat_interval):
                trial.set_user_attr(TrialAttr.WORKER, self.name)
                trial.set_user_attr(TrialAttr.STAGE, Stage.SCREENING)
                spec_text = claimed.spec_text
                try:
                    self.emit("trial_started", trial=trial.number)
                    if claimed.error is not None:
                        raise claimed.error
                    if self._reused(trial, spec_text, claimed.composition.key):
                        return True
                    evaluation = Evaluator(self.ctx, self.study, self.emit).evaluate(trial, claimed.composition)
                    if recorder.record(trial, spec_text, evaluation, self.ctx.config):
                        self.completed += 1
                except InvalidComposition as err:
                    spec_text = err.spec or spec_text
                    if self._reused(trial, spec_text, spec_text):
                        return True
                    recorder.finish(trial, spec_text, pruned(str(err)))
                except KeyboardInterrupt:
                    recorder.interrupt(trial, spec_text)
                    raise
                except UpdateFinishedTrialError:
                    raise  # ended by another worker: below
                except SystemExit as err:  # sys.exit() in a plugin's code (a normalizer, a model) ends no study
                    recorder.finish(trial, spec_text, failed(err))
                except Exception as err:  # noqa: BLE001 - a broken composition or plugin fails one trial only
                    if storage_failure(err, self.target) is not None:
                        raise  # the storage, not the trial: Worker.run stops with one line
                    recorder.finish(trial, spec_text, failed(err))
        except UpdateFinishedTrialError:
            self._ended_elsewhere(trial, claimed.spec_text)
        return False

    def _ended_elsewhere(self, trial: optuna.Trial, spec_text: str | None) -> None:
        """``trial`` was ended by another worker while this one could not beat its heartbeat (the
        process stopped, SIGSTOP, a machine asleep): failed as stale, its retry queued. This
        worker's result is dropped, one line says so, and the worker goes on (or finds the budget met)."""
        state = self.study._storage.get_trial(trial._trial_id).state
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state=state.name,
                  message="ended by another worker while this one was paused (its heartbeat went stale; "
                          "its retry runs in its place): this worker's result is dropped")

    def _reused(self, trial: optuna.Trial, spec_text: str | None, key: str | None) -> bool:
        """Whether ``trial`` repeats an earlier composition, ended as such (:mod:`explorer.search.reuse`)."""
        ending = reused_ending(self.study, trial, spec_text, key)
        if ending is not None:
            self.recorder.finish(trial, spec_text, ending)
        return ending is not None
