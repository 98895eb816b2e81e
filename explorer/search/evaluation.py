"""One trial's life: its composition screened on every model of the study and, when it passes,
trained on every model.

Kept apart from the worker's claiming and recording so that what a trial measures (and stores
while it measures: the predictors as soon as they are known, the training step) reads in one
place. A composition arrives parsed (:class:`Composition`): the models are built from that
:class:`~explorer.spec.Spec`, never from its text again. How the evaluation ends the trial is
:mod:`explorer.search.recording`'s business.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
import torch

from explorer.data import iter_batches
from explorer.errors import NormxError
from explorer.models import create_model
from explorer.scoring import ScoreRequest, predictor_record, score
from explorer.search.context import StudyContext
from explorer.search.events import Emit
from explorer.search.policy import aggregate_predictors, screening_verdict
from explorer.search.schema import Stage, TrialAttr, json_safe
from explorer.search.screening import Decision, RelativePolicy, candidate_values, relative_decision
from explorer.search.signals import raise_if_interrupted
from explorer.search.optuna_study import holds_a_place
from explorer.spec import Spec
from explorer.training import TrainConfig, train

#: Minimum seconds between two writes of a trial's ``step`` to the storage.
PROGRESS_WRITE_EVERY_S = 2.0

#: model name -> a stored record (predictors or train), as ``docs/trial-schema.md`` describes it
ByModel = dict[str, dict[str, Any]]


class InvalidComposition(Exception):
    """A composition that cannot be built (on a model, or at all): pruned with the reason."""

    def __init__(self, reason: str, spec: str | None = None):
        super().__init__(reason)
        self.spec = spec


@dataclass(frozen=True)
class Composition:
    """A trial's composition, parsed once: the spec the models are built from, its canonical text
    (the trial's ``spec`` attribute, the events' ``spec``) and its equivalence key."""

    spec: Spec
    text: str
    key: str


@dataclass
class Evaluation:
    """What screening and training measured for one composition, per model."""

    predictors_by_model: ByModel
    #: why screening rejected it; None when it passed (and trained, if the study trains)
    prune_reason: str | None = None
    train_by_model: ByModel = field(default_factory=dict)


@dataclass
class Evaluator:
    """Screens and trains the compositions of one study's trials, in one worker."""

    ctx: StudyContext
    study: optuna.Study
    emit: Emit

    def evaluate(self, trial: optuna.Trial, composition: Composition) -> Evaluation:
        """Screen the composition on every model and, when it passes, train it on every model.

        The predictors are recorded as soon as they are measured: the viewer shows them while the
        trial trains."""
        config, text = self.ctx.config, composition.text
        self.emit("stage", trial=trial.number, spec=text, stage=Stage.SCREENING)
        train_batch = min(config.training.batch_size, len(self.ctx.train_data))
        if config.needs_training() and train_batch < 2 \
                and composition.spec.uses_batch_statistics(self.ctx.registry):
            return Evaluation({}, prune_reason=f"uses batch statistics, which need a training batch of at least 2 "
                                               f"samples (training.batch_size = {config.training.batch_size})")
        started = time.perf_counter()
        predictors_by_model = self._screen(composition.spec)
        trial.set_user_attr(TrialAttr.SCREENING_S, time.perf_counter() - started)
        raise_if_interrupted()  # one swallowed while screening: the trial is interrupted, not trained
        trial.set_user_attr(TrialAttr.PREDICTORS_BY_MODEL, json_safe(predictors_by_model))
        trial.set_user_attr(TrialAttr.PREDICTORS, json_safe(aggregate_predictors(predictors_by_model)))
        reason = screening_verdict(config.screening, predictors_by_model, config.objectives)
        if reason is None and config.screening.policy == "relative" and config.needs_training():
            decision = self._relative_decision(trial)
            trial.set_user_attr(TrialAttr.SCREENING, decision.to_attrs())
            reason = decision.prune_reason
        if reason is not None:
            return Evaluation(predictors_by_model, prune_reason=reason)
        train_by_model = self._train(trial, composition) if config.needs_training() else {}
        return Evaluation(predictors_by_model, train_by_model=train_by_model)

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
                                 screened, trained, mine.get("missing"))

    def _screen(self, spec: Spec) -> ByModel:
        s, config = self.ctx.config.screening, self.ctx.config
        by_model: ByModel = {}
        for model in config.models:
            batches = list(iter_batches(self.ctx.train_data, s.batch_size, s.batches, seed=config.seed))
            try:
                request = ScoreRequest.create(spec, model=model, predictors=config.predictor_names(), seeds=s.seeds,
                                              device=self.ctx.device, compile=s.compile, registry=self.ctx.registry)
                result = score(request, inputs=batches, num_classes=self.ctx.train_data.num_classes)
            except NormxError as err:
                raise InvalidComposition(f"invalid composition on {model}: {err}") from None
            by_model[model] = predictor_record(result)
        return by_model

    def _train(self, trial: optuna.Trial, composition: Composition) -> ByModel:
        config, text = self.ctx.config, composition.text
        train_config = TrainConfig(**{**asdict(config.training), "device": self.ctx.device, "seed": config.seed})
        per_model = train_config.total_steps(len(self.ctx.train_data))
        total = per_model * len(config.models)
        trial.set_user_attr(TrialAttr.STAGE, Stage.TRAINING)
        trial.set_user_attr(TrialAttr.STEPS, total)
        trial.set_user_attr(TrialAttr.STEP, 0)
        self.emit("stage", trial=trial.number, spec=text, stage=Stage.TRAINING, step=0, steps=total)
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
                self.emit("progress", trial=trial.number, spec=text, stage=Stage.TRAINING,
                          step=offset + step, steps=total, loss=loss)

            torch.manual_seed(config.seed)
            try:
                model = create_model(model_name, composition.spec, num_classes=data.num_classes,
                                     in_channels=int(data.x.shape[1]), registry=self.ctx.registry)
            except NormxError as err:
                raise InvalidComposition(f"invalid composition on {model_name}: {err}") from None
            result = train(model, data, self.ctx.test_data, train_config, progress=progress)
            results[model_name] = result.as_dict()
        trial.set_user_attr(TrialAttr.STEP, total)
        return results
