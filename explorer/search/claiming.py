"""What a worker claims: a trial's composition drawn (and parsed once), and what is left of the
space to draw.

The worker asks Optuna for a trial under the storage's claim lock (:meth:`Worker.claim`); drawing
its composition happens under the same lock, so two workers never start one composition
unknowingly. This module holds that draw, the baseline's spec or one sampled from the space
(define-by-run), and the listing of the space a worker falls back on when the sampler keeps
repeating itself: the compositions nobody has evaluated yet, or none when the space is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from explorer.search.context import StudyContext
from explorer.search.evaluation import Composition, InvalidComposition
from explorer.search.schema import TrialAttr
from explorer.search.optuna_study import composition_key, holds_a_place
from explorer.spec import parse_spec

#: Spaces with more leaves than this are not listed (the repeats in a row then end the study).
ENUMERATION_LIMIT = 5000


@dataclass
class Claimed:
    """A trial taken within the budget, its composition already drawn (under the claim lock, so
    that two workers never start the same composition unknowingly)."""

    trial: optuna.Trial
    composition: Composition | None = None
    #: what drawing the composition raised (an invalid composition, a broken plugin)
    error: Exception | None = None

    @property
    def spec_text(self) -> str | None:
        """The composition's canonical spec, None when it could not be drawn."""
        return self.composition.text if self.composition is not None else None


def build(trial: optuna.Trial, ctx: StudyContext) -> Composition:
    """The trial's composition, parsed once; its canonical spec and equivalence key recorded in the trial.

    Raises InvalidComposition when the sampled composition is not a valid one."""
    baseline = trial.user_attrs.get(TrialAttr.BASELINE)
    if baseline is not None:
        spec = parse_spec(baseline, ctx.registry)
    else:
        candidate = ctx.space.sample(trial)
        if candidate.invalid:
            trial.set_user_attr(TrialAttr.SPEC, candidate.text)
            raise InvalidComposition(candidate.invalid, spec=candidate.text)
        spec = candidate.spec
    text = str(spec)
    trial.set_user_attr(TrialAttr.SPEC, text)
    key = ctx.equivalence_key(spec)
    trial.set_user_attr(TrialAttr.EQUIVALENCE_KEY, key)
    return Composition(spec, text, key)


def draw(trial: optuna.Trial, ctx: StudyContext) -> Claimed:
    """``trial`` with its composition built, or with what building it raised (the trial's failure,
    handled when it runs)."""
    claimed = Claimed(trial)
    try:
        claimed.composition = build(trial, ctx)
    except Exception as err:  # noqa: BLE001 - handled in run_trial like any failure of the trial
        claimed.error = err
    return claimed


def presets_only_and_done(ctx: StudyContext, study: optuna.Study) -> bool:
    """A space without slots holds its presets (and its fixed steps): nothing new to sample once
    they are evaluated."""
    space = ctx.space
    if space.is_searchable():
        return False
    if not ctx.config.space.fixed.strip():
        return True
    fixed = ctx.equivalence_key(space.fixed)
    return any(composition_key(t.user_attrs) == fixed for t in study.get_trials(deepcopy=False) if holds_a_place(t))


def unevaluated(ctx: StudyContext, study: optuna.Study) -> list[dict[str, Any]] | None:
    """The parameters of one leaf per composition of the space not evaluated yet (None when the
    space has more than :data:`ENUMERATION_LIMIT` leaves to list)."""
    leaves = ctx.space.enumerate(ENUMERATION_LIMIT) if ctx.space.is_searchable() else []
    if leaves is None:
        return None
    known = {composition_key(t.user_attrs) for t in study.get_trials(deepcopy=False) if holds_a_place(t)}
    missing: dict[str, dict[str, Any]] = {}
    for params, candidate in leaves:
        key = candidate.text if candidate.spec is None else ctx.equivalence_key(candidate.spec)
        if key not in known:
            missing.setdefault(key, params)
    return list(missing.values())
