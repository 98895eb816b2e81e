"""How a trial ends: one :class:`Ending` (its attributes, its stage, what Optuna is told, what the
event says) and one sequence that applies it, :meth:`Recorder.finish`.

Every way a trial ends (complete, pruned by screening or as an invalid composition, failed, a
repeat reusing an earlier result, interrupted) goes through that sequence: set the attributes,
set the stage, tell Optuna, emit ``trial_finished``. Written once, the stored trial and the event
cannot drift apart between the ways. An interruption runs the same steps, each retried on a busy
storage, with its retry enqueued before the event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import optuna
from optuna.trial import TrialState

from explorer.errors import NormxError
from explorer.search.evaluation import ByModel, Evaluation
from explorer.search.events import Emit
from explorer.search.policy import aggregate_training, objective_values
from explorer.search.schema import RESUMED_ATTRS, Stage, TrialAttr, json_safe
from explorer.search.signals import deferred_interrupts, interruption_handled
from explorer.search.storage import StorageTarget, storage_failure
from explorer.search.study_file import StudyConfig

#: Tries to record an interruption on a busy storage before leaving the trial to the next run.
INTERRUPT_RECORD_ATTEMPTS = 5
#: The Optuna constraint set on a trial whose training diverged (> 0: infeasible).
DIVERGED_CONSTRAINT = "diverged"


class TrialError(Exception):
    """A trial that cannot produce results (NaN objectives)."""


@dataclass(frozen=True)
class Ending:
    """How one trial ends: the attributes and constraints set first, then its ``stage``, then the
    state (and values) told to Optuna; ``message`` is the ``trial_finished`` event's."""

    state: TrialState
    stage: str
    message: str = ""
    values: list[float] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, float] = field(default_factory=dict)


def pruned(reason: str, attrs: dict[str, Any] | None = None) -> Ending:
    """Pruned with ``reason``, stored as the ``prune_reason`` (after ``attrs``) and said in the event."""
    return Ending(TrialState.PRUNED, Stage.PRUNED, reason, attrs={**(attrs or {}), TrialAttr.PRUNE_REASON: reason})


def failed(err: Exception) -> Ending:
    """Failed by ``err``: its message on one line (the exception's type named unless it is one of
    normx's own), stored as the ``error`` and said in the event."""
    text = str(err) if isinstance(err, (NormxError, TrialError)) else f"{type(err).__name__}: {err}"
    message = one_line(text, 500)
    return Ending(TrialState.FAIL, Stage.FAILED, message, attrs={TrialAttr.ERROR: message})


#: An interrupted trial: FAIL, its retry enqueued (:meth:`Recorder.interrupt`).
INTERRUPTED = Ending(TrialState.FAIL, Stage.INTERRUPTED, "interrupted")


def one_line(text: str, limit: int) -> str:
    """``text`` with its whitespace runs made single spaces, cut to ``limit`` characters."""
    return " ".join(text.split())[:limit]


def diverged_note(train_by_model: ByModel) -> str:
    """``"diverged at step 12 (cnn10)"`` when a model's training diverged, else ``""``."""
    notes = [f"step {r.get('diverged_step')} ({model})" for model, r in train_by_model.items() if r.get("diverged")]
    return f"diverged at {', '.join(notes)}" if notes else ""


@dataclass
class Recorder:
    """Ends the trials of one worker's study, and says so through ``emit``."""

    study: optuna.Study
    target: StorageTarget
    emit: Emit

    def finish(self, trial: optuna.Trial, spec_text: str | None, ending: Ending) -> None:
        """Store ``ending`` in the trial, tell Optuna, emit ``trial_finished``."""
        for step in self._steps(trial, ending):
            step()
        self._announce(trial, spec_text, ending)

    def record(self, trial: optuna.Trial, spec_text: str, evaluation: Evaluation, config: StudyConfig) -> bool:
        """Store the evaluation and end the trial: pruned with the reason, or complete with the
        objectives (aggregated over models). Returns whether it completed; raises
        :class:`TrialError` (its training stored) when an objective is NaN."""
        if evaluation.prune_reason is not None:
            self.finish(trial, spec_text, pruned(evaluation.prune_reason))
            return False
        train_by_model = evaluation.train_by_model
        if train_by_model:
            trial.set_user_attr(TrialAttr.TRAIN, json_safe(aggregate_training(train_by_model)))
            if len(train_by_model) > 1:
                trial.set_user_attr(TrialAttr.TRAIN_BY_MODEL, json_safe(train_by_model))
        values = objective_values(config, evaluation.predictors_by_model, train_by_model)
        if any(math.isnan(v) for v in values):
            raise TrialError(f"an objective is NaN: {values}")
        diverged = diverged_note(train_by_model)
        # infeasible for Optuna when diverged: off study.best_trials (and optuna-dashboard's front)
        constraints = {DIVERGED_CONSTRAINT: 1.0} if diverged else {}
        self.finish(trial, spec_text, Ending(TrialState.COMPLETE, Stage.DONE, diverged, values=values,
                                             constraints=constraints))
        return True

    def interrupt(self, trial: optuna.Trial, spec_text: str | None) -> None:
        """Record ``trial`` as interrupted and queue its retry, with further signals held. A storage
        that stays busy or fails is said in one line: the trial stays RUNNING and the next run
        finds it lost or stale and retries it."""
        # held from the start: a second signal (the parent's SIGINT after a SIGTERM to the whole
        # group) landing before the first write left the trial RUNNING with nothing said
        with deferred_interrupts():
            interruption_handled()
            if self._finished(trial):  # it ended before the interruption (its last line could not be written)
                return
            steps = [*self._steps(trial, INTERRUPTED), partial(self._enqueue_retry, trial)]
            for step in steps:
                for attempt in range(INTERRUPT_RECORD_ATTEMPTS):
                    try:
                        step()
                        break
                    except Exception as err:  # noqa: BLE001 - "database is locked" under contention
                        if attempt + 1 < INTERRUPT_RECORD_ATTEMPTS and storage_failure(err, self.target) is not None:
                            time.sleep(0.2 * (attempt + 1))
                            continue
                        why = one_line(str(err), 200)
                        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="RUNNING",
                                  message=f"interrupted, but the storage refused to record it ({why}); "
                                          "the next run finds it lost and retries it")
                        return
        self._announce(trial, spec_text, INTERRUPTED)

    def _finished(self, trial: optuna.Trial) -> bool:
        """Whether the stored trial has ended already (told by this worker, or failed by another)."""
        try:
            return self.study._storage.get_trial(trial._trial_id).state.is_finished()
        except Exception:  # noqa: BLE001 - a storage that fails here is said by the steps that follow
            return False

    def _steps(self, trial: optuna.Trial, ending: Ending) -> list[Callable[[], Any]]:
        """The writes that end ``trial``, in order: attributes, constraints, stage, Optuna's state."""
        steps: list[Callable[[], Any]] = [partial(trial.set_user_attr, k, v) for k, v in ending.attrs.items()]
        steps += [partial(trial.set_constraint, k, v) for k, v in ending.constraints.items()]
        steps.append(partial(trial.set_user_attr, TrialAttr.STAGE, ending.stage))
        steps.append(partial(self.study.tell, trial, ending.values, state=ending.state))
        return steps

    def _announce(self, trial: optuna.Trial, spec_text: str | None, ending: Ending) -> None:
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state=ending.state.name,
                  values=ending.values, message=ending.message)

    def _enqueue_retry(self, trial: optuna.Trial) -> None:
        attrs = {k: v for k, v in trial.user_attrs.items() if k == TrialAttr.BASELINE}
        if TrialAttr.CHECKPOINT in trial.user_attrs:  # a halving candidate: the retry continues at its rung
            attrs.update({k: v for k, v in trial.user_attrs.items() if k in RESUMED_ATTRS})
        attrs[TrialAttr.RETRY_OF] = trial.number
        self.study.enqueue_trial(dict(trial.params), user_attrs=attrs)
