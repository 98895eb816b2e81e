"""Reusing an earlier result: a composition that an earlier trial already computed is not computed
again.

The sampler draws compositions it has drawn before, and two spellings can compute the same thing
(``gn(group_size=16)`` on 16-wide layers is LN: the same equivalence key). Such a repeat ends as
its source ended, with the source's results copied and ``reused_from`` naming it, so the sampler
learns the result without paying for it again; a repeat does not use the budget. Deciding which
earlier trial is the source, under concurrent workers, is this module's job; ending the trial is
:mod:`explorer.search.recording`'s.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from explorer.search.recording import Ending, pruned
from explorer.search.schema import RESULT_ATTRS, Stage, TrialAttr
from explorer.search.optuna_study import composition_key, holds_a_place


def reuse_source(study: optuna.Study, trial: optuna.Trial, spec_text: str, key: str | None) -> FrozenTrial | None:
    """The earlier trial with the same composition (the same equivalence key, the spec resolved at
    the models' widths, or the same canonical spec) whose result ``trial`` reuses, or None."""
    for earlier in study.get_trials(deepcopy=False):
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
        return earlier
    return None


def reused_ending(study: optuna.Study, trial: optuna.Trial, spec_text: str | None, key: str | None) -> Ending | None:
    """How ``trial`` ends as a repeat: as its source ended (its results, state, values and
    constraints copied), or pruned with the source's number while the source still runs; None
    when no earlier trial computed its composition."""
    if spec_text is None:
        return None
    earlier = reuse_source(study, trial, spec_text, key)
    if earlier is None:
        return None
    source, attrs = earlier.number, earlier.user_attrs
    copied: dict[str, Any] = {TrialAttr.REUSED_FROM: source}
    if earlier.state == TrialState.RUNNING:
        return pruned(f"same composition as trial {source}, still running", copied)
    copied.update({name: attrs[name] for name in RESULT_ATTRS if name in attrs})
    if earlier.state == TrialState.PRUNED:
        return Ending(TrialState.PRUNED, Stage.PRUNED, f"same as trial {source}: {attrs.get(TrialAttr.PRUNE_REASON, '')}",
                      attrs=copied)
    if earlier.state == TrialState.FAIL:
        error = attrs.get(TrialAttr.ERROR, "")
        return Ending(TrialState.FAIL, Stage.FAILED, f"same as trial {source}: {error}",
                      attrs={**copied, TrialAttr.ERROR: error})
    # a diverged run's constraint keeps the repeat off the front too
    return Ending(TrialState.COMPLETE, Stage.DONE, f"same as trial {source}", values=list(earlier.values),
                  attrs=copied, constraints=dict(earlier.constraints))
