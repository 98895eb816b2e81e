"""The relative screening policy: train a candidate only when its predicted score ranks high
among the candidates screened so far.

Absolute thresholds (``max_cosine_similarity = 0.6``) must be tuned per study: the same
similarity is low for one model and high for another. A rank needs no tuning. After a warm-up of
``warmup`` trained trials, a candidate is trained when its score ranks in the top
``top_fraction`` of every candidate screened so far (itself included), or when no screened
candidate dominates it on the predictors; otherwise it is pruned with its rank as the reason.

The default score is ``combined``: the mean of the candidate's percentile ranks on cosine
similarity and on the gradient-explosion exponent, both lower-is-better. That is the paper's
speed-stability trade-off (Lubana et al., Figure 9): low similarity trains fast, low explosion
trains stably, and the best normalizers sit where both are low. Any single stored predictor can
be the score instead (with its direction), or ``learned``: a model fitted on the candidates
already trained (and on prior tables or studies), :mod:`explorer.search.learned`.

Pure functions on plain numbers: the worker gathers what earlier trials stored and asks here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from explorer.direction import Direction
from explorer.records import DEFAULT_DIRECTIONS, PAPER_PREDICTORS, to_float
from explorer.search.combined import COMBINED, COMBINED_PREDICTORS, combined_rank_score
from explorer.search.learned import LEARNED, MIN_TRIALS, NO_PRIOR, Objectives, Outcome, Prior, learned_scores, \
    training_objectives

#: The predictors of the combined score and their directions.
COMBINED_PARTS: dict[str, Direction] = {name: PAPER_PREDICTORS[name] for name in COMBINED_PREDICTORS}
#: The names ``[screening] score`` accepts without asking the plugin registry (any registered
#: scalar predictor is accepted too: :func:`predictor_direction`).
SCORES: tuple[str, ...] = (COMBINED, LEARNED, *PAPER_PREDICTORS, "variance_growth_rate")


def predictor_direction(name: str) -> Direction | None:
    """Which way a predictor a study names (objective, screening score) is better, None when no
    such scalar predictor is registered. Built-in names are known without loading the plugins
    (reading a study file must stay cheap); any other name asks the plugin registry."""
    if name in DEFAULT_DIRECTIONS:
        return DEFAULT_DIRECTIONS[name]
    from explorer.plugins import get_registry  # a plugin's predictor: load the plugins once

    entry = get_registry().predictors.get(name)
    return Direction.of(entry.direction) if entry is not None and entry.scalar else None
def score_predictors(score: str) -> list[str]:
    """The stored predictors a ``[screening] score`` is computed from (the learned score: the
    combined score's, its fallback; it learns from whatever else is stored)."""
    if score in (COMBINED, LEARNED):
        return list(COMBINED_PREDICTORS)
    if score == "variance_growth_rate":
        return ["variance_growth"]
    return [score]


#: ``[screening] policy``: rank against the screened candidates, successive halving from
#: initialization (:mod:`explorer.search.halving`), or absolute thresholds only.
POLICIES: tuple[str, ...] = ("relative", "halving", "thresholds")
#: the policies that rank the screened candidates (halving's rung 0 is the relative rule with 1/eta)
RANKING_POLICIES: tuple[str, ...] = ("relative", "halving")


@dataclass(frozen=True)
class RelativePolicy:
    """Train after ``warmup`` trained trials only the top ``top_fraction`` by ``score``."""

    warmup: int = 4
    top_fraction: float = 0.34
    score: str = COMBINED
    #: the way ``score`` is better when it is a single predictor
    direction: Direction = Direction.LOWER
    #: also train a candidate that no screened candidate dominates on the combined parts
    keep_nondominated: bool = True
    #: the learned score: the tables and ``study:NAME`` whose rows it also learns from
    prior: tuple[str, ...] = ()
    #: the learned score: trained rows (prior ones included) below which the combined score is used
    min_trials: int = MIN_TRIALS
    #: the learned score's target: the study's training objectives and their directions
    objectives: Objectives = training_objectives(None)

    def __post_init__(self) -> None:  # any spelling of a direction ("maximize", "higher", a Direction)
        object.__setattr__(self, "direction", Direction.of(self.direction))
        object.__setattr__(self, "prior", tuple(self.prior))

    @classmethod
    def of(cls, screening: Any, objectives: Mapping[str, str] | None = None) -> RelativePolicy:
        """The policy of a study file's ``[screening]`` section (a ScreeningConfig) and its
        ``objectives`` (name -> "maximize"/"minimize": what the learned score learns); with policy
        "halving", its rung 0: the top 1/eta start training."""
        top = 1.0 / screening.eta if screening.policy == "halving" else screening.top_fraction
        return cls(warmup=screening.warmup, top_fraction=top, score=screening.score,
                   direction=predictor_direction(screening.score) or Direction.LOWER,
                   keep_nondominated=screening.keep_nondominated, prior=tuple(screening.prior),
                   min_trials=screening.learned_min_trials, objectives=training_objectives(objectives))

    def describe(self) -> str:
        """The score's name as reasons say it."""
        return {COMBINED: "combined score", LEARNED: "learned score"}.get(self.score, self.score)


@dataclass(frozen=True)
class Decision:
    """What the relative policy decided for one candidate, and why (stored as the trial's ``screening``)."""

    train: bool
    why: str
    rank: int | None = None
    of: int | None = None
    #: the policy that decided ("relative", or "halving" at its rungs)
    policy: str = "relative"

    @property
    def prune_reason(self) -> str | None:
        return None if self.train else self.why

    def to_attrs(self) -> dict[str, Any]:
        return {"policy": self.policy, "decision": "train" if self.train else "prune", "why": self.why,
                "rank": self.rank, "of": self.of}


def candidate_values(predictors: Mapping[str, Any]) -> dict[str, float | None]:
    """The rankable numbers of a stored ``predictors`` record (the growth rate unpacked)."""
    out = {key: to_float(value) for key, value in predictors.items()
           if key in SCORES or (isinstance(value, (int, float, str)) and to_float(value) is not None)}
    growth = predictors.get("variance_growth")
    if isinstance(growth, Mapping):
        out["variance_growth_rate"] = to_float(growth.get("rate"))
    return out


def scored(candidates: Sequence[Mapping[str, float | None]], policy: RelativePolicy,
           outcomes: Sequence[Outcome | None] = (), prior: Prior = NO_PRIOR) -> tuple[list[float], str, str]:
    """Each candidate's score (lower is better), the score's name as a reason says it, and a note
    for the reason (why the learned score fell back to the combined one; else empty).

    ``outcomes`` (the learned score's evidence) is aligned with the start of ``candidates``: each
    screened candidate's training measures (:func:`explorer.search.learned.train_outcomes`), None
    for one not trained (pruned, or still training); ``prior`` holds the rows of ``policy.prior``.
    """
    if policy.score == LEARNED:
        learned = learned_scores(candidates, outcomes, policy.objectives, prior, policy.min_trials)
        if learned.scores is not None:
            return learned.scores, learned.describe, ""
        return combined_rank_score(candidates), "combined score", learned.note
    if policy.score != COMBINED:
        return [policy.direction.badness(c.get(policy.score)) for c in candidates], policy.describe(), ""
    return combined_rank_score(candidates), policy.describe(), ""


def scores(candidates: Sequence[Mapping[str, float | None]], policy: RelativePolicy,
           outcomes: Sequence[Outcome | None] = (), prior: Prior = NO_PRIOR) -> list[float]:
    """Each candidate's score, lower is better: the combined rank, the chosen predictor, or the
    learned score (:func:`scored`)."""
    return scored(candidates, policy, outcomes, prior)[0]


def dominated(candidate: Mapping[str, float | None], others: Sequence[Mapping[str, float | None]]) -> bool:
    """Whether some other candidate is at least as good on every combined part and better on one."""
    mine = [d.badness(candidate.get(k)) for k, d in COMBINED_PARTS.items()]
    for other in others:
        theirs = [d.badness(other.get(k)) for k, d in COMBINED_PARTS.items()]
        if all(t <= m for t, m in zip(theirs, mine)) and any(t < m for t, m in zip(theirs, mine)):
            return True
    return False


def _nan(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _nan_why(parts: Sequence[str], missing: Mapping[str, str] | None) -> str:
    """Why the parts of a score have no value: the predictors' stored reasons (``missing``)."""
    reasons = []
    for part in parts:
        stored = part[:-len("_rate")] if part.endswith("_rate") else part  # variance_growth_rate
        reason = (missing or {}).get(stored)
        reasons.append(f"{part}: {reason}" if reason else f"{part}: no value")
    return "; ".join(reasons)


def relative_decision(policy: RelativePolicy, candidate: Mapping[str, float | None],
                      screened: Sequence[Mapping[str, float | None]], trained: int,
                      outcomes: Sequence[Outcome | None] = (), prior: Prior = NO_PRIOR,
                      missing: Mapping[str, str] | None = None) -> Decision:
    """Train or prune ``candidate``, with the reason.

    ``screened`` holds the predictors of every candidate screened before this one (trained or
    pruned), in screening order; ``trained`` counts the trials trained so far (running ones
    included). The learned score also reads ``outcomes``, aligned with ``screened``: each one's
    training measures, None when it is not (or not yet) trained, and ``prior``, the rows of
    ``policy.prior`` (:func:`explorer.search.learned.load_prior`). ``missing`` is the candidate's
    stored reasons for its missing predictors. A candidate whose score is NaN (every part of the
    combined score NaN, or the chosen predictor NaN or absent) ranks last, and the reason says so,
    with the predictors' reasons: NaN is no rank, and ranking every candidate first would train
    them all (the learned score ranks a missing predictor in the middle instead).
    """
    if trained < policy.warmup:
        return Decision(True, f"warm-up: {trained} of {policy.warmup} trained before ranking starts")
    pool = [*screened, candidate]
    n = len(pool)
    allowed = max(1, math.ceil(policy.top_fraction * n))
    top = f"top {100 * policy.top_fraction:.3g} % trained (the top {allowed} of {n})"
    parts = [] if policy.score == LEARNED else list(COMBINED_PARTS) if policy.score == COMBINED else [policy.score]
    if parts and all(_nan(candidate.get(p)) for p in parts):
        rank = n
        everyone = all(all(_nan(c.get(p)) for p in parts) for c in pool)
        where = (f"rank {n} of {n} by {policy.describe()}: score is NaN ({_nan_why(parts, missing)})"
                 f"{f', as for all {n} candidates screened so far' if everyone else ''}; {top}")
    else:
        ranked, name, note = scored(pool, policy, outcomes, prior)
        mine = ranked[-1]
        rank = sum(1 for s in ranked[:-1] if s < mine) + 1
        where = f"rank {rank} of {n} by {name}; {top}" + (f"; {note}" if note else "")
        dead = [p for p in parts if len(parts) > 1 and all(_nan(c.get(p)) for c in pool)]
        if dead:
            where += f"; {', '.join(dead)} NaN for all {n} candidates so far: ranked by the other part alone"
        if rank <= allowed:
            return Decision(True, where, rank, n)
    known = not any(_nan(candidate.get(k)) for k in COMBINED_PARTS)  # NaN is not "non-dominated"
    if policy.keep_nondominated and known and not dominated(candidate, screened):
        return Decision(True, f"{where}; non-dominated at initialization (cosine similarity, explosion exponent)",
                        rank, n)
    return Decision(False, where, rank, n)


def relative_verdict(policy: RelativePolicy, candidate: Mapping[str, float | None],
                     screened: Sequence[Mapping[str, float | None]], trained: int,
                     outcomes: Sequence[Outcome | None] = (), prior: Prior = NO_PRIOR,
                     missing: Mapping[str, str] | None = None) -> str | None:
    """Why the relative policy prunes ``candidate``, or None to train it."""
    return relative_decision(policy, candidate, screened, trained, outcomes, prior, missing).prune_reason
