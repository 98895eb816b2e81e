"""One trial's life: its composition screened on every model of the study and, when it passes,
trained on every model.

Kept apart from the worker's claiming and recording so that what a trial measures (and stores
while it measures: the predictors as soon as they are known, the training step) reads in one
place. A composition arrives parsed (:class:`Composition`): the models are built from that
:class:`~explorer.spec.Spec`, never from its text again. How the evaluation ends the trial is
:mod:`explorer.search.recording`'s business.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import optuna
import torch

from explorer.data import iter_batches
from explorer.direction import Direction
from explorer.errors import NormxError
from explorer.models import create_model
from explorer.records import to_float
from explorer.scoring import ScoreRequest, predictor_record, score
from explorer.search.context import StudyContext
from explorer.search.events import Emit
from explorer.search.halving import HalvingPolicy, promotion_decision, rung_objective_values
from explorer.search.policy import aggregate_predictors, screening_verdict
from explorer.search.schema import Stage, TrialAttr, json_safe
from explorer.search.screening import (RANKING_POLICIES, Decision, RelativePolicy, candidate_values,
                                       relative_decision)
from explorer.search.signals import raise_if_interrupted
from explorer.search.optuna_study import holds_a_place
from explorer.spec import Spec
from explorer.training import TrainConfig, TrainState, train

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
    #: why screening (or a halving rung) stopped it; None when it passed (and trained, if the study trains)
    prune_reason: str | None = None
    train_by_model: ByModel = field(default_factory=dict)


@dataclass
class Rungs:
    """Successive halving's state for one trial: the policy, the rungs recorded so far (the
    ``rungs`` attribute, inherited by a retry) and the training states to continue from."""

    policy: HalvingPolicy
    records: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, TrainState] = field(default_factory=dict)
    #: the rung the states are at (0: none, train from step 0)
    resumed_rung: int = 0


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
        resumed = self._resumed(trial)
        if resumed is not None:  # a retry of a halving candidate: it continues at its rung, screened already
            predictors_by_model = trial.user_attrs.get(TrialAttr.PREDICTORS_BY_MODEL) or {}
            train_by_model, stop = self._train(trial, composition, resumed)
            return Evaluation(predictors_by_model, prune_reason=stop, train_by_model=train_by_model)
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
        if reason is None and config.screening.policy in RANKING_POLICIES and config.needs_training():
            decision = self._relative_decision(trial)
            if config.screening.policy == "halving":  # its rung 0
                decision = replace(decision, policy="halving")
            trial.set_user_attr(TrialAttr.SCREENING, decision.to_attrs())
            reason = decision.prune_reason
        if reason is not None:
            return Evaluation(predictors_by_model, prune_reason=reason)
        if not config.needs_training():
            return Evaluation(predictors_by_model)
        rungs = Rungs(self.halving_policy()) if config.screening.policy == "halving" else None
        train_by_model, stop = self._train(trial, composition, rungs)
        return Evaluation(predictors_by_model, prune_reason=stop, train_by_model=train_by_model)

    def halving_policy(self) -> HalvingPolicy:
        config = self.ctx.config
        per_model = TrainConfig(**asdict(config.training)).total_steps(len(self.ctx.train_data))
        return HalvingPolicy.of(config.screening, per_model)

    def _resumed(self, trial: optuna.Trial) -> Rungs | None:
        """A halving trial that retries one stopped at a rung (its ``checkpoint`` attribute inherited):
        the training states at that rung, loaded from the artifact store; None otherwise, or when the
        checkpoint cannot be read (the retry then starts over, and says so)."""
        from explorer.search.checkpoints import load_checkpoints

        saved = trial.user_attrs.get(TrialAttr.CHECKPOINT)
        if self.ctx.config.screening.policy != "halving" or not isinstance(saved, dict) \
                or not isinstance(trial.user_attrs.get(TrialAttr.PREDICTORS_BY_MODEL), dict):
            return None
        try:
            states = load_checkpoints(self.ctx.artifacts, saved["artifact_id"])
        except NormxError as err:
            self.emit("stage", trial=trial.number, stage=Stage.SCREENING,
                      message=f"{err}; the candidate is screened and trained again from step 0")
            return None
        records = [r for r in trial.user_attrs.get(TrialAttr.RUNGS) or [] if int(r.get("rung", 0)) <= saved["rung"]]
        return Rungs(self.halving_policy(), records, states, int(saved["rung"]))

    def _relative_decision(self, trial: optuna.Trial) -> Decision:
        """The relative policy's decision for ``trial`` (its predictors already stored) against
        every other distinct composition screened so far, in any worker, in trial order; the
        learned score also reads the training measures of those that finished training."""
        from explorer.search.learned import LEARNED, NO_PRIOR, load_prior, train_outcomes

        screened, outcomes, trained = [], [], 0
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
                outcomes.append(train_outcomes(attrs.get(TrialAttr.TRAIN)))
                # trained: to the end, to a halving rung, or training now
                trained += TrialAttr.TRAIN in attrs or TrialAttr.RUNGS in attrs or attrs.get(TrialAttr.STAGE) == Stage.TRAINING
        policy = RelativePolicy.of(self.ctx.config.screening, self.ctx.config.objectives)
        # a study prior lives in this study's storage (Optuna names it only privately)
        prior = load_prior(policy.prior, policy.objectives, self.study._storage) \
            if policy.score == LEARNED and policy.prior else NO_PRIOR
        return relative_decision(policy, candidate_values(mine), screened, trained, outcomes, prior,
                                 mine.get("missing"))

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

    def _train(self, trial: optuna.Trial, composition: Composition,
               rungs: Rungs | None = None) -> tuple[ByModel, str | None]:
        """Train the composition on every model; with ``rungs`` (policy "halving"), rung by rung,
        each model up to the rung's step, then decide whether it goes on. Returns the training
        records by model (empty when a rung stopped it) and why a rung stopped it (None: it ran to
        the end)."""
        config, text = self.ctx.config, composition.text
        extra = rungs.policy.rungs[:-1] if rungs is not None else ()
        train_config = TrainConfig(**{**asdict(config.training), "device": self.ctx.device, "seed": config.seed,
                                      "checkpoints": tuple(sorted({*config.training.checkpoints, *extra}))})
        per_model = train_config.total_steps(len(self.ctx.train_data))
        total = per_model * len(config.models)
        trial.set_user_attr(TrialAttr.STAGE, Stage.TRAINING)
        trial.set_user_attr(TrialAttr.STEPS, total)
        start = rungs.policy.rungs[rungs.resumed_rung - 1] if rungs is not None and rungs.resumed_rung else 0
        trial.set_user_attr(TrialAttr.STEP, start * len(config.models))
        self.emit("stage", trial=trial.number, spec=text, stage=Stage.TRAINING, step=start * len(config.models),
                  steps=total)
        last_write = [time.monotonic()]
        data = self.ctx.train_data
        models: dict[str, Any] = {}
        for model_name in config.models:
            torch.manual_seed(config.seed)
            try:
                models[model_name] = create_model(model_name, composition.spec, num_classes=data.num_classes,
                                                  in_channels=int(data.x.shape[1]), registry=self.ctx.registry)
            except NormxError as err:
                raise InvalidComposition(f"invalid composition on {model_name}: {err}") from None

        def progress_of(offset: int) -> Any:
            def progress(step: int, steps: int, loss: float) -> None:
                raise_if_interrupted()  # a Ctrl-C swallowed inside a weakref callback still stops the run
                now = time.monotonic()
                if now - last_write[0] >= PROGRESS_WRITE_EVERY_S:
                    last_write[0] = now
                    trial.set_user_attr(TrialAttr.STEP, offset + step)
                self.emit("progress", trial=trial.number, spec=text, stage=Stage.TRAINING,
                          step=offset + step, steps=total, loss=loss)
            return progress

        results: ByModel = {}
        stops = [per_model] if rungs is None else [s for s in rungs.policy.rungs if s > start]
        for rung_step in stops:
            rung = rungs.policy.rungs.index(rung_step) + 1 if rungs is not None else 0
            final = rung_step >= per_model
            for i, (model_name, model) in enumerate(models.items()):
                resume = rungs.states.get(model_name) if rungs is not None else None
                on_checkpoint = None if final or rungs is None else self._stop_at(rung_step, rungs, model_name)
                result = train(model, data, self.ctx.test_data, train_config, progress=progress_of(i * per_model),
                               resume=resume, on_checkpoint=on_checkpoint)
                results[model_name] = result.as_dict()
            if final or any(r.get("diverged") for r in results.values()):
                break  # the end of the run (a diverged run has ended: it is recorded as such)
            decision = self._promotion(trial, rungs, rung, results)
            if not decision.train:
                self._discard_checkpoint(trial)
                return {}, f"stopped at {decision.why}"
            self._save_checkpoint(trial, rungs, rung)
        self._discard_checkpoint(trial)
        trial.set_user_attr(TrialAttr.STEP, total)
        return results, None

    @staticmethod
    def _stop_at(step: int, rungs: Rungs, model_name: str) -> Any:
        """The checkpoint callback that keeps the training state at ``step`` and stops the run there."""
        def on_checkpoint(record: dict[str, float], snapshot: Any) -> bool:
            if int(record["step"]) != step:
                return True
            rungs.states[model_name] = snapshot()
            return False
        return on_checkpoint

    def _promotion(self, trial: optuna.Trial, rungs: Rungs, rung: int, results: ByModel) -> Decision:
        """Record the objectives measured at ``rung`` and decide (:func:`promotion_decision`) against
        every other distinct candidate that reached the rung, in any worker."""
        config = self.ctx.config
        objectives = {name: Direction.of(d) for name, d in config.objectives.items()}
        step = rungs.policy.rungs[rung - 1]
        checkpoints = {m: next(c for c in r["checkpoints"] if int(c["step"]) == step) for m, r in results.items()}
        predictors = trial.user_attrs.get(TrialAttr.PREDICTORS) or {}
        values = rung_objective_values(objectives, checkpoints, predictors, config.aggregate)
        others = []
        for t in self.study.get_trials(deepcopy=False):
            if t.number == trial.number or not holds_a_place(t) or TrialAttr.REUSED_FROM in t.user_attrs:
                continue
            for record in t.user_attrs.get(TrialAttr.RUNGS) or []:
                if int(record.get("rung", -1)) == rung and isinstance(record.get("values"), dict):
                    others.append([to_float(record["values"].get(n)) for n in objectives])
        others = [[math.nan if v is None else v for v in o] for o in others]
        decision = promotion_decision(rungs.policy, rung, values, others, list(objectives.values()), list(objectives))
        rungs.records.append({"rung": rung, "step": step, "values": dict(zip(objectives, values)),
                              "checkpoints": checkpoints, "decision": "go on" if decision.train else "stop",
                              "why": decision.why, "rank": decision.rank, "of": decision.of})
        trial.set_user_attr(TrialAttr.RUNGS, json_safe(rungs.records))
        return decision

    def _save_checkpoint(self, trial: optuna.Trial, rungs: Rungs, rung: int) -> None:
        """The states at ``rung`` into the artifact store (replacing the trial's earlier checkpoint)."""
        from explorer.search.checkpoints import save_checkpoints

        save_checkpoints(trial, self.ctx.artifacts, rungs.states, rung)

    def _discard_checkpoint(self, trial: optuna.Trial) -> None:
        """A finished candidate needs no checkpoint: its file is removed (the attribute stays, naming it)."""
        saved = trial.user_attrs.get(TrialAttr.CHECKPOINT)
        if isinstance(saved, dict) and self.ctx.artifacts is not None:
            from explorer.search.checkpoints import remove_checkpoint

            remove_checkpoint(self.ctx.artifacts, saved.get("artifact_id"))
