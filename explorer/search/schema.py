"""What a study stores, in code: ``docs/trial-schema.md`` as names and records.

The search writes these attributes and the viewer, the report and ``normx study`` read them, so
every stage name and attribute key is written once, here (a test checks that the document and
this module name the same keys). The measurements themselves (:class:`Predictors`,
:class:`TrainResult`) and the one encoder/decoder for non-finite floats are core
(:mod:`explorer.records`): ``explorer.score`` and training write them without the search layer,
and readers (the viewer) get them without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from explorer.records import (
    LAYER_PREDICTORS,
    PAPER_PREDICTORS,
    PREDICTOR_KEYS,
    SCALAR_PREDICTORS,
    VARIANCE_GROWTH_KINDS,
    Predictors,
    TrainResult,
    json_safe,
    to_float,
)

__all__ = [
    "LAYER_PREDICTORS", "PAPER_PREDICTORS", "PREDICTOR_KEYS", "RESULT_ATTRS", "SCALAR_PREDICTORS", "STAGES",
    "STUDY_ATTRS", "TRAIN_KEYS", "TRIAL_ATTRS",
    "VARIANCE_GROWTH_KINDS", "Predictors", "Stage", "StudyAttr", "TrainResult", "TrialAttr", "TrialRecord",
    "json_safe", "to_float", "trial_outcome",
]


class Stage:
    """Where a trial is: the values of the ``stage`` attribute."""

    SCREENING = "screening"
    TRAINING = "training"
    DONE = "done"
    PRUNED = "pruned"
    #: an error: a result that holds its place in the budget (state FAIL)
    FAILED = "failed"
    #: Ctrl-C or SIGTERM: not a result, retried (state FAIL)
    INTERRUPTED = "interrupted"


class StudyAttr:
    """The study's user attributes."""

    NORMX_VERSION = "normx_version"
    STUDY_FILE = "study_file"
    OBJECTIVES = "objectives"
    MODELS = "models"
    DATA = "data"
    SETTINGS = "settings"
    N_TRIALS = "n_trials"
    SPACE_EXHAUSTED = "space_exhausted"


class TrialAttr:
    """A trial's user attributes."""

    SPEC = "spec"
    EQUIVALENCE_KEY = "equivalence_key"
    STAGE = "stage"
    STEP = "step"
    STEPS = "steps"
    PREDICTORS = "predictors"
    PREDICTORS_BY_MODEL = "predictors_by_model"
    PRUNE_REASON = "prune_reason"
    SCREENING = "screening"
    TRAIN = "train"
    TRAIN_BY_MODEL = "train_by_model"
    REUSED_FROM = "reused_from"
    ERROR = "error"
    WORKER = "worker"
    BASELINE = "baseline"
    RETRY_OF = "retry_of"
    SCREENING_S = "screening_s"
    #: policy "halving": each training rung reached, with the objectives measured there and the decision
    RUNGS = "rungs"
    #: the latest training checkpoint: {"artifact_id", "step", "rung"} (explorer.search.checkpoints)
    CHECKPOINT = "checkpoint"


def trial_outcome(state: str, attrs: dict[str, Any]) -> str:
    """What a trial is to every count (the runner's last line, the progress, ``report``, ``list``):
    complete, pruned, running, waiting, failed (an error: a result that holds its place), or
    interrupted: a FAIL that is not a result (Ctrl-C, a worker that died or was found stale, a
    trial asked for and never claimed), which is retried and is not finished.

    ``state`` is Optuna's state name (``"FAIL"``). A FAIL without a stage is interrupted when normx
    claimed it (it has a ``worker``) or found it lost; one from outside normx stays failed."""
    if state != "FAIL":
        return {"COMPLETE": "complete", "RUNNING": "running", "PRUNED": "pruned", "WAITING": "waiting"}.get(
            state, state.lower())
    stage = attrs.get(TrialAttr.STAGE) or ""
    if stage == Stage.FAILED:
        return "failed"
    if stage or TrialAttr.WORKER in attrs or str(attrs.get(TrialAttr.ERROR) or "").startswith("lost:"):
        return "interrupted"
    return "failed"


# Plain strings, not enum members: they go to every storage driver (sqlite3, psycopg2, journal
# files) as they are.


def _names(namespace: type) -> tuple[str, ...]:
    return tuple(value for name, value in vars(namespace).items() if name.isupper())


STAGES: tuple[str, ...] = _names(Stage)
STUDY_ATTRS: tuple[str, ...] = _names(StudyAttr)
TRIAL_ATTRS: tuple[str, ...] = _names(TrialAttr)

#: The keys of the ``train`` attribute: one training run (:class:`TrainResult`).
TRAIN_KEYS: tuple[str, ...] = tuple(f.name for f in fields(TrainResult))

#: The results a trial that computes the same thing as an earlier one copies from it.
RESULT_ATTRS: tuple[str, ...] = (TrialAttr.PREDICTORS, TrialAttr.PREDICTORS_BY_MODEL, TrialAttr.TRAIN,
                                 TrialAttr.TRAIN_BY_MODEL, TrialAttr.PRUNE_REASON, TrialAttr.SCREENING,
                                 TrialAttr.SCREENING_S, TrialAttr.RUNGS)


#: What the retry of an interrupted halving candidate inherits, to continue at its rung instead of
#: from step 0 (a retry by Optuna's heartbeat callback inherits every attribute).
RESUMED_ATTRS: tuple[str, ...] = (TrialAttr.PREDICTORS, TrialAttr.PREDICTORS_BY_MODEL, TrialAttr.SCREENING,
                                  TrialAttr.SCREENING_S, TrialAttr.RUNGS, TrialAttr.CHECKPOINT)


@dataclass
class TrialRecord:
    """Everything norm-explorer knows about one trial; ``None`` (or empty) is an attribute not set."""

    spec: str | None = None
    equivalence_key: str | None = None
    stage: str | None = None
    step: int | None = None
    steps: int | None = None
    predictors: Predictors | None = None
    predictors_by_model: dict[str, Predictors] = field(default_factory=dict)
    prune_reason: str | None = None
    screening: dict[str, Any] | None = None
    train: TrainResult | None = None
    train_by_model: dict[str, TrainResult] = field(default_factory=dict)
    reused_from: int | None = None
    error: str | None = None
    worker: str | None = None
    baseline: str | None = None
    retry_of: int | None = None
    screening_s: float | None = None
    #: policy "halving": the training rungs reached (rung, step, values by objective, decision, why)
    rungs: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None

    def to_attrs(self) -> dict[str, Any]:
        """The attributes to store: JSON-safe, without those that are not set."""
        out: dict[str, Any] = {}
        for key in TRIAL_ATTRS:
            value = getattr(self, key)
            if value is None or value == {} or value == []:
                continue
            if isinstance(value, (Predictors, TrainResult)):
                value = value.to_attrs()
            elif isinstance(value, dict):
                value = {model: record.to_attrs() for model, record in value.items()}
            out[key] = json_safe(value)
        return out

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TrialRecord:
        """The record of a trial's stored user attributes (a study made by hand may lack any of them)."""
        def text(key: str) -> str | None:
            value = attrs.get(key)
            return None if value is None else str(value)

        def integer(key: str) -> int | None:
            value = attrs.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        def by_model(key: str, record: type[Any]) -> dict[str, Any]:
            table = attrs.get(key)
            if not isinstance(table, dict):
                return {}
            return {str(m): record.from_attrs(v) for m, v in table.items() if isinstance(v, dict)}

        stage = attrs.get(TrialAttr.STAGE)
        predictors = attrs.get(TrialAttr.PREDICTORS)
        train = attrs.get(TrialAttr.TRAIN)
        return cls(
            spec=text(TrialAttr.SPEC),
            equivalence_key=text(TrialAttr.EQUIVALENCE_KEY),
            stage=stage if stage in STAGES else None,
            step=integer(TrialAttr.STEP),
            steps=integer(TrialAttr.STEPS),
            predictors=Predictors.from_attrs(predictors) if isinstance(predictors, dict) else None,
            predictors_by_model=by_model(TrialAttr.PREDICTORS_BY_MODEL, Predictors),
            prune_reason=text(TrialAttr.PRUNE_REASON),
            screening=attrs.get(TrialAttr.SCREENING) if isinstance(attrs.get(TrialAttr.SCREENING), dict) else None,
            train=TrainResult.from_attrs(train) if isinstance(train, dict) else None,
            train_by_model=by_model(TrialAttr.TRAIN_BY_MODEL, TrainResult),
            reused_from=integer(TrialAttr.REUSED_FROM),
            error=text(TrialAttr.ERROR),
            worker=text(TrialAttr.WORKER),
            baseline=text(TrialAttr.BASELINE),
            retry_of=integer(TrialAttr.RETRY_OF),
            screening_s=to_float(attrs.get(TrialAttr.SCREENING_S)),
            rungs=[r for r in attrs.get(TrialAttr.RUNGS) or [] if isinstance(r, dict)]
            if isinstance(attrs.get(TrialAttr.RUNGS), list) else [],
            checkpoint=attrs.get(TrialAttr.CHECKPOINT) if isinstance(attrs.get(TrialAttr.CHECKPOINT), dict) else None,
        )
