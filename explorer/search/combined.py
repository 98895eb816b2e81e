"""The combined score: one number for the paper's speed-stability trade-off (Lubana et al., Fig. 9).

Low cosine similarity trains fast, a low gradient-explosion exponent trains stably, and in GN's
group-size sweep the best accuracy sits where the two curves cross, not at either end. Neither
predictor alone ranks candidates well (InstanceNorm has the lowest similarity and the worst
explosion), so the combined score is the mean of each candidate's percentile ranks on the
parts, each in its own direction: 0 is best on every part, 1 worst. Ranks need no tuning per
study (a similarity of 0.6 is low on one model and high on another) and weigh the parts alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from explorer.direction import Direction
from explorer.records import direction_of, predictor_value

#: The default parts: the two sides of the trade-off, both lower-is-better.
COMBINED_PREDICTORS: tuple[str, ...] = ("cosine_similarity", "grad_explosion_exponent")
COMBINED = "combined"


def percentile_ranks(values: Sequence[float | None], direction: Direction) -> list[float]:
    """Each value's rank among ``values`` scaled to [0, 1] (0 best), ties sharing their mean rank."""
    keys = [direction.badness(v) for v in values]
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


def combined_rank_score(records: Sequence[Mapping[str, Any]],
                        predictors: Sequence[str] = COMBINED_PREDICTORS) -> list[float]:
    """Each record's combined score among ``records``, in [0, 1], **lower is better**.

    ``records`` are stored ``predictors`` records (docs/trial-schema.md: numbers may be the
    strings "nan"/"inf"; a dict-valued predictor is named by its ``_rate``). For each name in
    ``predictors``, every record gets its percentile rank (0 best, ties share their mean rank, a
    missing or NaN value ranks worst) in the predictor's direction (the record's ``directions``,
    else the built-in one, else lower-is-better); the score is the mean over the predictors.
    One record scores 0.
    """
    if not predictors:
        raise ValueError("the combined score needs at least one predictor")
    if not records:
        return []
    parts = []
    for name in predictors:
        direction = next((d for d in (direction_of(dict(r), name) for r in records) if d), Direction.LOWER)
        values = [predictor_value(dict(r), name) for r in records]
        parts.append(percentile_ranks(values, direction))
    return [sum(p[i] for p in parts) / len(parts) for i in range(len(records))]
