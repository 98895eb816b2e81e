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
from explorer.scoring import score
from explorer.search.context import StudyContext
from explorer.search.events import TrialEvent, TrialEventHandler
from explorer.search.policy import aggregate_predictors, aggregate_training, objective_values, screening_verdict
from explorer.search.schema import PREDICTOR_KEYS, RESULT_ATTRS, Stage, TrialAttr, json_safe
from explorer.search.storage import StorageTarget, claim_lock, open_storage
from explorer.search.study import budget_counts, make_sampler
from explorer.spec import parse_spec
from explorer.training import TrainConfig, train

#: Minimum seconds between two writes of a trial's ``step`` to the storage.
PROGRESS_WRITE_EVERY_S = 2.0
#: Seconds between two polls of an idle worker waiting for other workers' trials.
IDLE_POLL_S = 1.0

#: model name -> a stored record (predictors or train), as ``docs/trial-schema.md`` describes it
ByModel = dict[str, dict[str, Any]]


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

    def claim(self) -> optuna.Trial | None:
        """A trial within the budget, or None when the budget is spent (waits for running trials
        of other workers on RDB storages, whose worker may die and whose trial is then retried)."""
        while True:
            if self.heartbeat_interval:
                optuna.storages.fail_stale_trials(self.study)
            with claim_lock(self.target, self.storage, self.ctx.config.name):
                taken, running, _ = budget_counts(self.study)
                if taken < self.budget:
                    return self.study.ask()
            if not (self.heartbeat_interval and running):
                return None
            time.sleep(IDLE_POLL_S)

    def run(self) -> int:
        """Run trials until the budget is spent; returns the number of trials this worker ran."""
        if self.study is None:
            self.connect()
        ran = 0
        while True:
            trial = self.claim()
            if trial is None:
                break
            ran += 1
            self.run_trial(trial)
        self.emit("worker_done", message=f"ran {ran} trial(s)")
        return ran

    # ------------------------------------------------------------------ one trial

    def run_trial(self, trial: optuna.Trial) -> None:
        """Build, evaluate and record one trial; whatever goes wrong ends this trial only."""
        with _Heartbeat(self.storage, trial._trial_id, self.heartbeat_interval):
            trial.set_user_attr(TrialAttr.WORKER, self.name)
            trial.set_user_attr(TrialAttr.STAGE, Stage.SCREENING)
            self.emit("trial_started", trial=trial.number)
            spec_text: str | None = None
            try:
                spec_text, key = self.build(trial)
                if not self._reuse(trial, spec_text, key):
                    self.record(trial, spec_text, self.evaluate(trial, spec_text))
            except _InvalidComposition as err:
                self._prune(trial, str(err), err.spec or spec_text)
            except KeyboardInterrupt:
                trial.set_user_attr(TrialAttr.STAGE, Stage.INTERRUPTED)
                self.study.tell(trial, state=TrialState.FAIL)
                self._enqueue_retry(trial)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="FAIL", message="interrupted")
                raise
            except Exception as err:  # noqa: BLE001 - a broken composition or plugin fails one trial only
                message = " ".join(f"{type(err).__name__}: {err}".split())[:500]
                if isinstance(err, (NormxError, _TrialError)):
                    message = " ".join(str(err).split())[:500]
                trial.set_user_attr(TrialAttr.STAGE, Stage.FAILED)
                trial.set_user_attr(TrialAttr.ERROR, message)
                self.study.tell(trial, state=TrialState.FAIL)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="FAIL", message=message)

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
        predictors_by_model = self._screen(spec_text)
        trial.set_user_attr(TrialAttr.PREDICTORS_BY_MODEL, json_safe(predictors_by_model))
        trial.set_user_attr(TrialAttr.PREDICTORS, json_safe(aggregate_predictors(predictors_by_model)))
        reason = screening_verdict(config.screening, predictors_by_model)
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
        trial.set_user_attr(TrialAttr.STAGE, Stage.DONE)
        self.study.tell(trial, values)
        self.completed += 1
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="COMPLETE", values=values)

    def _enqueue_retry(self, trial: optuna.Trial) -> None:
        attrs = {k: v for k, v in trial.user_attrs.items() if k == TrialAttr.BASELINE}
        attrs[TrialAttr.RETRY_OF] = trial.number
        self.study.enqueue_trial(dict(trial.params), user_attrs=attrs)

    def _prune(self, trial: optuna.Trial, reason: str, spec_text: str | None) -> None:
        trial.set_user_attr(TrialAttr.PRUNE_REASON, reason)
        trial.set_user_attr(TrialAttr.STAGE, Stage.PRUNED)
        self.study.tell(trial, state=TrialState.PRUNED)
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="PRUNED", message=reason)

    def _reuse(self, trial: optuna.Trial, spec_text: str, key: str) -> bool:
        """Reuse the results of an earlier finished trial that computes the same thing: the same
        equivalence key (the spec resolved at the models' widths), or the same canonical spec."""
        for earlier in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            attrs = earlier.user_attrs
            same = (attrs.get(TrialAttr.SPEC) == spec_text
                    or attrs.get(TrialAttr.EQUIVALENCE_KEY, attrs.get(TrialAttr.SPEC)) == key)
            if earlier.number == trial.number or not same:
                continue
            source = attrs.get(TrialAttr.REUSED_FROM, earlier.number)
            for name in RESULT_ATTRS:
                if name in attrs:
                    trial.set_user_attr(name, attrs[name])
            trial.set_user_attr(TrialAttr.REUSED_FROM, source)
            if earlier.state == TrialState.PRUNED:
                trial.set_user_attr(TrialAttr.STAGE, Stage.PRUNED)
                self.study.tell(trial, state=TrialState.PRUNED)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="PRUNED",
                          message=f"same as trial {source}: {attrs.get(TrialAttr.PRUNE_REASON, '')}")
            else:
                trial.set_user_attr(TrialAttr.STAGE, Stage.DONE)
                self.study.tell(trial, list(earlier.values))
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="COMPLETE",
                          values=list(earlier.values), message=f"same as trial {source}")
            return True
        return False

    def _screen(self, spec_text: str) -> ByModel:
        s, config = self.ctx.config.screening, self.ctx.config
        by_model: ByModel = {}
        for model in config.models:
            batches = list(iter_batches(self.ctx.train_data, s.batch_size, s.batches, seed=config.seed))
            try:
                result = score(spec_text, model=model, inputs=batches, seeds=s.seeds, device=self.ctx.device,
                               num_classes=self.ctx.train_data.num_classes, compile=s.compile)
            except NormxError as err:
                raise _InvalidComposition(f"invalid composition on {model}: {err}") from None
            by_model[model] = {k: result[k] for k in PREDICTOR_KEYS if k in result}
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
