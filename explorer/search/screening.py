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
be the score instead (with its direction).

Pure functions on plain numbers: the worker gathers what earlier trials stored and asks here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The predictors of the combined score and their directions.
COMBINED_PARTS: dict[str, str] = {"cosine_similarity": "minimize", "grad_explosion_exponent": "minimize"}
COMBINED = "combined"


@dataclass(frozen=True)
class RelativePolicy:
    """Train after ``warmup`` trained trials only the top ``top_fraction`` by ``score``."""

    warmup: int = 4
    top_fraction: float = 0.34
    score: str = COMBINED
    #: direction of ``score`` when it is a single predictor ("minimize" or "maximize")
    direction: str = "minimize"
    #: also train a candidate that no screened candidate dominates on the combined parts
    keep_nondominated: bool = True


def _badness(value: float | None, direction: str) -> float:
    """A value turned into "lower is better", missing and NaN values worst."""
    if value is None or math.isnan(value):
        return math.inf
    return value if direction == "minimize" else -value


def percentile_ranks(values: Sequence[float | None], direction: str) -> list[float]:
    """Each value's rank among ``values`` scaled to [0, 1] (0 best), ties sharing their mean rank."""
    keys = [_badness(v, direction) for v in values]
    n = len(keys)
    if n == 1:
        return [0.0]
    order = sorted(range(n), key=lambda i: keys[i])
    ranks = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and keys[order[end + 1]] == keys[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 / (n - 1)
        start = end + 1
    return ranks


def scores(candidates: Sequence[Mapping[str, float | None]], policy: RelativePolicy) -> list[float]:
    """Each candidate's score, lower is better: the combined rank, or the chosen predictor."""
    if policy.score != COMBINED:
        return [_badness(c.get(policy.score), policy.direction) for c in candidates]
    parts = [percentile_ranks([c.get(name) for c in candidates], direction)
             for name, direction in COMBINED_PARTS.items()]
    return [sum(p[i] for p in parts) / len(parts) for i in range(len(candidates))]


def dominated(candidate: Mapping[str, float | None], others: Sequence[Mapping[str, float | None]]) -> bool:
    """Whether some other candidate is at least as good on every combined part and better on one."""
    mine = [_badness(candidate.get(k), d) for k, d in COMBINED_PARTS.items()]
    for other in others:
        theirs = [_badness(other.get(k), d) for k, d in COMBINED_PARTS.items()]
        if all(t <= m for t, m in zip(theirs, mine)) and any(t < m for t, m in zip(theirs, mine)):
            return True
    return False


def relative_verdict(policy: RelativePolicy, candidate: Mapping[str, float | None],
                     screened: Sequence[Mapping[str, float | None]], trained: int) -> str | None:
    """Why the relative policy prunes ``candidate``, or None to train it.

    ``screened`` holds the predictors of every candidate screened before this one (trained or
    pruned); ``trained`` counts the trials trained so far.
    """
    if trained < policy.warmup:
        return None
    pool = [*screened, candidate]
    mine = scores(pool, policy)[-1]
    better = sum(1 for s in scores(pool, policy)[:-1] if s < mine)
    rank, n = better + 1, len(pool)
    allowed = max(1, math.ceil(policy.top_fraction * n))
    if rank <= allowed:
        return None
    if policy.keep_nondominated and not dominated(candidate, screened):
        return None
    what = "combined score (cosine similarity + explosion ranks)" if policy.score == COMBINED else policy.score
    return (f"rank {rank} of {n} screened by {what}; the top {allowed} "
            f"(screening.top_fraction = {policy.top_fraction:g}) are trained")
