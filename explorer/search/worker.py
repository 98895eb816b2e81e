"""A worker: claims trials within the study-wide budget and runs each one.

One trial, in one worker:

1. **claim**: under the storage's claim lock, count the trials that hold a place in the budget
   (:func:`explorer.search.study.budget_counts`) and ask Optuna for a trial only when there is
   room. A waiting trial (an enqueued baseline, or the retry of a trial whose worker died or was
   interrupted) is taken before a new one is sampled.
2. **build** the composition: the baseline's spec, or one sampled from the space (define-by-run);
   an invalid one is pruned with the reason. A composition that computes what an earlier finished
   trial computed reuses that trial's results (``reused_from``) instead of recomputing them.
3. **evaluate** it: screen it with the init predictors on every model of the study; past a
   threshold (explosion exponent, variance growth, NaN) it is pruned with the reason, never
   trained; the survivors train briefly on every model.
4. **record** the results and tell Optuna the objectives, aggregated over models (worst case by
   default).

Everything goes into the trial's user attributes as ``docs/trial-schema.md`` (and
:mod:`explorer.search.schema`) says. Ctrl-C marks the running trial ``interrupted`` (state FAIL),
enqueues its retry, and re-raises.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

import optuna
import torch
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from explorer.data import iter_batches
from explorer.errors import NormxError
from explorer.models import create_model
from explorer.scoring import predictor_record, score
from explorer.search.context import StudyContext
from explorer.search.events import TrialEvent, TrialEventHandler
from explorer.search.policy import aggregate_predictors, aggregate_training, objective_values, screening_verdict
from explorer.search.liveness import WorkerLiveness, fail_lost_trials, liveness_dir
from explorer.search.schema import RESULT_ATTRS, Stage, StudyAttr, TrialAttr, json_safe
from explorer.search.screening import Decision, RelativePolicy, candidate_values, relative_decision
from explorer.search.signals import deferred_interrupts, interruption_handled, raise_if_interrupted
from explorer.search.storage import StorageTarget, claim_lock, open_storage, storage_failure
from explorer.search.optuna_study import budget_counts, composition_key, holds_a_place, make_sampler
from explorer.spec import parse_spec
from explorer.training import TrainConfig, train

#: Minimum seconds between two writes of a trial's ``step`` to the storage.
PROGRESS_WRITE_EVERY_S = 2.0
#: Seconds between two polls of an idle worker waiting for other workers' trials.
IDLE_POLL_S = 1.0
#: Consecutive repeats of known compositions after which a worker lists the space: it enqueues the
#: compositions the sampler has not found, or calls the space exhausted.
MAX_CONSECUTIVE_REPEATS = 30
#: Spaces with more leaves than this are not listed (30 repeats in a row then end the study).
ENUMERATION_LIMIT = 5000
#: Tries to record an interruption on a busy storage before leaving the trial to the next run.
INTERRUPT_RECORD_ATTEMPTS = 5

#: model name -> a stored record (predictors or train), as ``docs/trial-schema.md`` describes it
ByModel = dict[str, dict[str, Any]]


#: The Optuna constraint set on a trial whose training diverged (> 0: infeasible).
DIVERGED_CONSTRAINT = "diverged"


def diverged_note(train_by_model: ByModel) -> str:
    """``"diverged at step 12 (cnn10)"`` when a model's training diverged, else ``""``."""
    notes = [f"step {r.get('diverged_step')} ({model})" for model, r in train_by_model.items() if r.get("diverged")]
    return f"diverged at {', '.join(notes)}" if notes else ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _InvalidComposition(Exception):
    """A composition that cannot be built (on a model, or at all): pruned with the reason."""

    def __init__(self, reason: str, spec: str | None = None):
        super().__init__(reason)
        self.spec = spec


class _TrialError(Exception):
    """A trial that cannot produce results (NaN objectives)."""


@dataclass
class Evaluation:
    """What screening and training measured for one composition, per model."""

    predictors_by_model: ByModel
    #: why screening rejected it; None when it passed (and trained, if the study trains)
    prune_reason: str | None = None
    train_by_model: ByModel = field(default_factory=dict)


@dataclass
class Claimed:
    """A trial taken within the budget, its composition already drawn (under the claim lock, so
    that two workers never start the same composition unknowingly)."""

    trial: optuna.Trial
    spec: str | None = None
    key: str | None = None
    #: what drawing the composition raised (an invalid composition, a broken plugin)
    error: Exception | None = None


class _Heartbeat:
    """Record the trial's heartbeat every interval in a thread (RDB storages)."""

    def __init__(self, storage: BaseStorage, trial_id: int, interval: float | None):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
            self._thread = threading.Thread(target=self._run, daemon=True, name="normx-heartbeat")
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
                pass

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


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

    @property
    def heartbeat_interval(self) -> int | None:
        getter = getattr(self.storage, "get_heartbeat_interval", None)
        return getter() if getter else None

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
                        if not waiting and self._presets_only_and_done():
                            self.exhausted, done = taken, True
                        else:
                            trial = self.study.ask()
                            if self.heartbeat_interval:
                                self.storage.record_heartbeat(trial._trial_id)
                            trial.set_user_attr(TrialAttr.WORKER, self.name)
                            claimed = self._draw(trial)
            if held.pending:
                if claimed is not None:
                    self._record_interruption(claimed.trial, None)
                raise KeyboardInterrupt
            if claimed is not None:
                return claimed
            if done or not (running and (self.heartbeat_interval or liveness_dir(self.target))):
                return None
            time.sleep(IDLE_POLL_S)

    def _draw(self, trial: optuna.Trial) -> Claimed:
        claimed = Claimed(trial)
        try:
            claimed.spec, claimed.key = self.build(trial)
        except Exception as err:  # noqa: BLE001 - handled in run_trial like any failure of the trial
            claimed.error = err
        return claimed

    def _presets_only_and_done(self) -> bool:
        """A space without slots holds its presets (and its fixed steps): nothing new to sample
        once they are evaluated."""
        space = self.ctx.space
        if space.is_searchable():
            return False
        if not self.ctx.config.space.fixed.strip():
            return True
        fixed = self.ctx.equivalence_key(str(space.fixed))
        return any(composition_key(t.user_attrs) == fixed for t in self.study.get_trials(deepcopy=False)
                   if holds_a_place(t))

    def _missing(self) -> list[dict[str, Any]] | None:
        """The parameters of one leaf per composition of the space not evaluated yet (None when the
        space is too large to list)."""
        leaves = self.ctx.space.enumerate(ENUMERATION_LIMIT) if self.ctx.space.is_searchable() else []
        if leaves is None:
            return None
        known = {composition_key(t.user_attrs) for t in self.study.get_trials(deepcopy=False) if holds_a_place(t)}
        missing: dict[str, dict[str, Any]] = {}
        for params, candidate in leaves:
            key = candidate.text if candidate.spec is None else self.ctx.equivalence_key(str(candidate.spec))
            if key not in known:
                missing.setdefault(key, params)
        return list(missing.values())

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
                missing = self._missing()
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
                            f"than {ENUMERATION_LIMIT} leaves to list)")
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

    # ------------------------------------------------------------------ one trial

    def run_trial(self, claimed: Claimed | optuna.Trial) -> bool:
        """Evaluate and record one trial; whatever goes wrong ends this trial only. Returns whether
        it repeated a known composition (told to the sampler with the earlier result)."""
        if not isinstance(claimed, Claimed):
            claimed = self._draw(claimed)
        trial = claimed.trial
        with _Heartbeat(self.storage, trial._trial_id, self.heartbeat_interval):
            trial.set_user_attr(TrialAttr.WORKER, self.name)
            trial.set_user_attr(TrialAttr.STAGE, Stage.SCREENING)
            self.emit("trial_started", trial=trial.number)
            spec_text = claimed.spec
            try:
                if claimed.error is not None:
                    raise claimed.error
                if self._reuse(trial, spec_text, claimed.key):
                    return True
                self.record(trial, spec_text, self.evaluate(trial, spec_text))
            except _InvalidComposition as err:
                spec_text = err.spec or spec_text
                if self._reuse(trial, spec_text, spec_text):
                    return True
                self._prune(trial, str(err), spec_text)
            except KeyboardInterrupt:
                self._record_interruption(trial, spec_text)
                raise
            except Exception as err:  # noqa: BLE001 - a broken composition or plugin fails one trial only
                if storage_failure(err, self.target) is not None:
                    raise  # the storage, not the trial: Worker.run stops with one line
                message = " ".join(f"{type(err).__name__}: {err}".split())[:500]
                if isinstance(err, (NormxError, _TrialError)):
                    message = " ".join(str(err).split())[:500]
                trial.set_user_attr(TrialAttr.STAGE, Stage.FAILED)
                trial.set_user_attr(TrialAttr.ERROR, message)
                self.study.tell(trial, state=TrialState.FAIL)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="FAIL", message=message)
        return False

    def build(self, trial: optuna.Trial) -> tuple[str, str]:
        """The trial's composition: (canonical spec, equivalence key), both recorded in the trial.

        Raises _InvalidComposition when the sampled composition is not a valid one."""
        baseline = trial.user_attrs.get(TrialAttr.BASELINE)
        if baseline is not None:
            spec_text = str(parse_spec(baseline, self.ctx.registry))
        else:
            candidate = self.ctx.space.sample(trial)
            if candidate.invalid:
                trial.set_user_attr(TrialAttr.SPEC, candidate.text)
                raise _InvalidComposition(candidate.invalid, spec=candidate.text)
            spec_text = str(candidate.spec)
        trial.set_user_attr(TrialAttr.SPEC, spec_text)
        key = self.ctx.equivalence_key(spec_text)
        trial.set_user_attr(TrialAttr.EQUIVALENCE_KEY, key)
        return spec_text, key

    def evaluate(self, trial: optuna.Trial, spec_text: str) -> Evaluation:
        """Screen the composition on every model and, when it passes, train it on every model.

        The predictors are recorded as soon as they are measured: the viewer shows them while the
        trial trains."""
        config = self.ctx.config
        self.emit("stage", trial=trial.number, spec=spec_text, stage=Stage.SCREENING)
        train_batch = min(config.training.batch_size, len(self.ctx.train_data))
        if config.needs_training() and train_batch < 2 \
                and parse_spec(spec_text, self.ctx.registry).uses_batch_statistics(self.ctx.registry):
            return Evaluation({}, prune_reason=f"uses batch statistics, which need a training batch of at least 2 "
                                               f"samples (training.batch_size = {config.training.batch_size})")
        predictors_by_model = self._screen(spec_text)
        raise_if_interrupted()  # one swallowed while screening: the trial is interrupted, not trained
        trial.set_user_attr(TrialAttr.PREDICTORS_BY_MODEL, json_safe(predictors_by_model))
        trial.set_user_attr(TrialAttr.PREDICTORS, json_safe(aggregate_predictors(predictors_by_model)))
        reason = screening_verdict(config.screening, predictors_by_model)
        if reason is None and config.screening.policy == "relative" and config.needs_training():
            decision = self._relative_decision(trial)
            trial.set_user_attr(TrialAttr.SCREENING, decision.to_attrs())
            reason = decision.prune_reason
        if reason is not None:
            return Evaluation(predictors_by_model, prune_reason=reason)
        train_by_model = self._train(trial, spec_text) if config.needs_training() else {}
        return Evaluation(predictors_by_model, train_by_model=train_by_model)

    def record(self, trial: optuna.Trial, spec_text: str, evaluation: Evaluation) -> None:
        """Store the evaluation and tell Optuna: pruned with the reason, or complete with the objectives."""
        if evaluation.prune_reason is not None:
            self._prune(trial, evaluation.prune_reason, spec_text)
            return
        train_by_model = evaluation.train_by_model
        if train_by_model:
            trial.set_user_attr(TrialAttr.TRAIN, json_safe(aggregate_training(train_by_model)))
            if len(train_by_model) > 1:
                trial.set_user_attr(TrialAttr.TRAIN_BY_MODEL, json_safe(train_by_model))
        values = objective_values(self.ctx.config, evaluation.predictors_by_model, train_by_model)
        if any(math.isnan(v) for v in values):
            raise _TrialError(f"an objective is NaN: {values}")
        diverged = diverged_note(train_by_model)
        if diverged:  # infeasible for Optuna: off study.best_trials (and optuna-dashboard's front)
            trial.set_constraint(DIVERGED_CONSTRAINT, 1.0)
        trial.set_user_attr(TrialAttr.STAGE, Stage.DONE)
        self.study.tell(trial, values)
        self.completed += 1
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="COMPLETE", values=values,
                  message=diverged)

    def _record_interruption(self, trial: optuna.Trial, spec_text: str | None) -> None:
        """Record ``trial`` as interrupted and queue its retry, with further signals held. A storage
        that stays busy or fails is said in one line: the trial stays RUNNING and the next run
        finds it lost or stale and retries it."""
        interruption_handled()
        steps = (lambda: trial.set_user_attr(TrialAttr.STAGE, Stage.INTERRUPTED),
                 lambda: self.study.tell(trial, state=TrialState.FAIL),
                 lambda: self._enqueue_retry(trial))
        with deferred_interrupts():
            for step in steps:
                for attempt in range(INTERRUPT_RECORD_ATTEMPTS):
                    try:
                        step()
                        break
                    except Exception as err:  # noqa: BLE001 - "database is locked" under contention
                        if attempt + 1 < INTERRUPT_RECORD_ATTEMPTS and storage_failure(err, self.target) is not None:
                            time.sleep(0.2 * (attempt + 1))
                            continue
                        why = " ".join(str(err).split())[:200]
                        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="RUNNING",
                                  message=f"interrupted, but the storage refused to record it ({why}); "
                                          "the next run finds it lost and retries it")
                        return
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="FAIL", message="interrupted")

    def _enqueue_retry(self, trial: optuna.Trial) -> None:
        attrs = {k: v for k, v in trial.user_attrs.items() if k == TrialAttr.BASELINE}
        attrs[TrialAttr.RETRY_OF] = trial.number
        self.study.enqueue_trial(dict(trial.params), user_attrs=attrs)

    def _prune(self, trial: optuna.Trial, reason: str, spec_text: str | None) -> None:
        trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
        trial.set_user_attr(TrialAttr.STAGE, Stage.PRUNED)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="PRUNED", message=reason)

    def _reuse(self, trial: optuna.Trial, spec_text: str | None, key: str | None) -> bool:
        """Tell the sampler the earlier result of a trial with the same composition (the same
        equivalence key, the spec resolved at the models' widths, or the same canonical spec) instead
        of recomputing it; such a repeat does not use the budget. A repeat of a composition that
        another worker is still evaluating is pruned with that trial's number."""
        if spec_text is None:
            return False
        for earlier in self.study.get_trials(deepcopy=False):
            attrs = earlier.user_attrs
            if earlier.number == trial.number or not holds_a_place(earlier):
                continue
            # A repeat holds no results of its own (its source does, or is being retried), and a
            # later draw still running defers to this one: of two draws of one composition, the
            # earlier is evaluated, never both pruned as each other's repeat.
            if TrialAttr.REUSED_FROM in attrs or (earlier.state == TrialState.RUNNING and earlier.number > trial.number):
                continue
            if attrs.get(TrialAttr.SPEC) != spec_text and composition_key(attrs) != key:
                continue
            source = earlier.number
            trial.set_user_attr(TrialAttr.REUSED_FROM, source)
            if earlier.state == TrialState.RUNNING:
                reason = f"same composition as trial {source}, still running"
                trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
                trial.set_user_attr(TrialAttr.STAGE, Stage.PRUNED)
                self.study.tell(trial, state=TrialState.PRUNED)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="PRUNED", message=reason)
                return True
            for name in RESULT_ATTRS:
                if name in attrs:
                    trial.set_user_attr(name, attrs[name])
            if earlier.state == TrialState.PRUNED:
                trial.set_user_attr(TrialAttr.STAGE, Stage.PRUNED)
                self.study.tell(trial, state=TrialState.PRUNED)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="PRUNED",
                          message=f"same as trial {source}: {attrs.get(TrialAttr.PRUNE_REASON, '')}")
            elif earlier.state == TrialState.FAIL:
                trial.set_user_attr(TrialAttr.STAGE, Stage.FAILED)
                trial.set_user_attr(TrialAttr.ERROR, attrs.get(TrialAttr.ERROR, ""))
                self.study.tell(trial, state=TrialState.FAIL)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="FAIL",
                          message=f"same as trial {source}: {attrs.get(TrialAttr.ERROR, '')}")
            else:
                for name, value in earlier.constraints.items():  # a diverged run stays off the front
                    trial.set_constraint(name, value)
                trial.set_user_attr(TrialAttr.STAGE, Stage.DONE)
                self.study.tell(trial, list(earlier.values))
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="COMPLETE",
                          values=list(earlier.values), message=f"same as trial {source}")
            return True
        return False

    def _relative_decision(self, trial: optuna.Trial) -> Decision:
        """The relative policy's decision for ``trial`` (its predictors already stored) against
        every other distinct composition screened so far, in any worker."""
        screened, trained = [], 0
        mine: dict[str, Any] = {}
        for t in self.study.get_trials(deepcopy=False):
            attrs = t.user_attrs
            predictors = attrs.get(TrialAttr.PREDICTORS)
            if not isinstance(predictors, dict) or TrialAttr.REUSED_FROM in attrs:
                continue
            if t.number == trial.number:
                mine = predictors
            elif holds_a_place(t):
                screened.append(candidate_values(predictors))
                trained += TrialAttr.TRAIN in attrs or attrs.get(TrialAttr.STAGE) == Stage.TRAINING
        return relative_decision(RelativePolicy.of(self.ctx.config.screening), candidate_values(mine),
                                 screened, trained)

    def _screen(self, spec_text: str) -> ByModel:
        s, config = self.ctx.config.screening, self.ctx.config
        by_model: ByModel = {}
        for model in config.models:
            batches = list(iter_batches(self.ctx.train_data, s.batch_size, s.batches, seed=config.seed))
            try:
                result = score(spec_text, model=model, inputs=batches, seeds=s.seeds, device=self.ctx.device,
                               num_classes=self.ctx.train_data.num_classes, predictors=config.predictor_names(),
                               compile=s.compile)
            except NormxError as err:
                raise _InvalidComposition(f"invalid composition on {model}: {err}") from None
            by_model[model] = predictor_record(result)
        return by_model

    def _train(self, trial: optuna.Trial, spec_text: str) -> ByModel:
        config = self.ctx.config
        train_config = TrainConfig(**{**asdict(config.training), "device": self.ctx.device, "seed": config.seed})
        per_model = train_config.total_steps(len(self.ctx.train_data))
        total = per_model * len(config.models)
        trial.set_user_attr(TrialAttr.STAGE, Stage.TRAINING)
        trial.set_user_attr(TrialAttr.STEPS, total)
        trial.set_user_attr(TrialAttr.STEP, 0)
        self.emit("stage", trial=trial.number, spec=spec_text, stage=Stage.TRAINING, step=0, steps=total)
        results: ByModel = {}
        last_write = [time.monotonic()]
        data = self.ctx.train_data
        for i, model_name in enumerate(config.models):
            offset = i * per_model

            def progress(step: int, steps: int, loss: float, offset: int = offset) -> None:
                raise_if_interrupted()  # a Ctrl-C swallowed inside a weakref callback still stops the run
                now = time.monotonic()
                if now - last_write[0] >= PROGRESS_WRITE_EVERY_S:
                    last_write[0] = now
                    trial.set_user_attr(TrialAttr.STEP, offset + step)
                self.emit("progress", trial=trial.number, spec=spec_text, stage=Stage.TRAINING,
                          step=offset + step, steps=total, loss=loss)

            torch.manual_seed(config.seed)
            try:
                model = create_model(model_name, spec_text, num_classes=data.num_classes,
                                     in_channels=int(data.x.shape[1]), registry=self.ctx.registry)
            except NormxError as err:
                raise _InvalidComposition(f"invalid composition on {model_name}: {err}") from None
            result = train(model, data, self.ctx.test_data, train_config, progress=progress)
            results[model_name] = result.as_dict()
        trial.set_user_attr(TrialAttr.STEP, total)
        return results
