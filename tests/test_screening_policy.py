"""The relative screening policy's decisions on hand-made predictor values."""

from __future__ import annotations

import math

import pytest

from explorer.direction import Direction
from explorer.search.combined import percentile_ranks
from explorer.search.screening import RelativePolicy, dominated, relative_verdict, scores


def c(cos, expl):
    return {"cosine_similarity": cos, "grad_explosion_exponent": expl}


def test_percentile_ranks_share_ties_and_put_missing_values_last():
    assert percentile_ranks([0.3, 0.1, 0.2], Direction.LOWER) == [1.0, 0.0, 0.5]
    assert percentile_ranks([0.3, 0.1, 0.2], Direction.HIGHER) == [0.0, 1.0, 0.5]
    assert percentile_ranks([0.1, 0.1, 0.5], Direction.LOWER) == [0.25, 0.25, 1.0]
    assert percentile_ranks([math.nan, 0.2, None], Direction.LOWER)[1] == 0.0


def test_the_combined_score_averages_both_ranks():
    pool = [c(0.1, 0.9), c(0.9, 0.1), c(0.5, 0.5), c(0.95, 0.95)]
    assert scores(pool, RelativePolicy()) == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    assert scores(pool, RelativePolicy(score="cosine_similarity")) == [0.1, 0.9, 0.5, 0.95]
    assert scores([{"stable_rank": 3.0}], RelativePolicy(score="stable_rank", direction=Direction.HIGHER)) == [-3.0]


def test_warm_up_trains_everything_first():
    policy = RelativePolicy(warmup=3, top_fraction=0.1)
    assert relative_verdict(policy, c(0.99, 0.99), [c(0.1, 0.1)] * 5, trained=2) is None


def test_after_warm_up_only_the_top_fraction_or_the_non_dominated_train():
    policy = RelativePolicy(warmup=1, top_fraction=0.25, keep_nondominated=True)
    screened = [c(0.1, 0.1), c(0.2, 0.2), c(0.3, 0.3)]
    reason = relative_verdict(policy, c(0.9, 0.9), screened, trained=3)
    assert reason is not None and reason.startswith("rank 4 of 4") and "top 1" in reason
    assert relative_verdict(policy, c(0.05, 0.05), screened, trained=3) is None  # best so far
    # worse on cosine, best on explosion: nothing dominates it, so it trains despite its rank
    assert relative_verdict(policy, c(0.9, 0.0), screened, trained=3) is None
    strict = RelativePolicy(warmup=1, top_fraction=0.25, keep_nondominated=False)
    assert relative_verdict(strict, c(0.9, 0.0), screened, trained=3) is not None


def test_dominance_needs_one_strictly_better_part():
    assert dominated(c(0.5, 0.5), [c(0.4, 0.5)])
    assert not dominated(c(0.5, 0.5), [c(0.5, 0.5)])
    assert not dominated(c(0.5, 0.5), [c(0.4, 0.6)])
    assert dominated(c(math.nan, 0.5), [c(0.9, 0.5)])  # a NaN similarity is the worst similarity


# ----------------------------------------------------------------------------- issue 24, item 13: NaN scores


def test_a_nan_score_ranks_last_and_says_why_instead_of_ranking_first():
    """Every value NaN used to tie every candidate at rank 1: all of them trained."""
    from explorer.search.screening import relative_decision

    snip = RelativePolicy(warmup=1, top_fraction=0.25, score="snip", direction=Direction.HIGHER,
                          keep_nondominated=False)
    nan = {"snip": math.nan, **c(0.1, 0.1)}
    decision = relative_decision(snip, nan, [{"snip": math.nan, **c(0.2, 0.2)}] * 3, trained=3,
                                 missing={"snip": "m: RuntimeError: no weights"})
    assert not decision.train and (decision.rank, decision.of) == (4, 4)
    assert decision.why == ("rank 4 of 4 by snip: score is NaN (snip: m: RuntimeError: no weights), as for all 4 "
                            "candidates screened so far; top 25 % trained (the top 1 of 4)")
    # a candidate without the value at all, among candidates that have it: last, "no value"
    decision = relative_decision(snip, c(0.1, 0.1), [{"snip": 3.0}, {"snip": 1.0}], trained=3)
    assert decision.why.startswith("rank 3 of 3 by snip: score is NaN (snip: no value); top 25 %")
    # the one with a value among NaNs is ranked, first
    assert relative_decision(snip, {"snip": 2.0}, [{"snip": math.nan}] * 3, trained=3).train
    # the non-dominated rule still applies to a NaN score (its parts are numbers)...
    keep = RelativePolicy(warmup=1, top_fraction=0.25, score="snip", direction=Direction.HIGHER)
    assert relative_decision(keep, {"snip": math.nan, **c(0.0, 0.0)}, [c(0.5, 0.5)] * 3, trained=3).train
    # ...but NaN parts are never "non-dominated": with every combined part NaN, nothing trains
    combined = RelativePolicy(warmup=1, top_fraction=0.25)
    decision = relative_decision(combined, c(math.nan, math.nan), [c(math.nan, math.nan)] * 3, trained=3,
                                 missing={"cosine_similarity": "needs batches of at least 2 samples, got 1"})
    assert not decision.train and decision.why == (
        "rank 4 of 4 by combined score: score is NaN (cosine_similarity: needs batches of at least 2 samples, got "
        "1; grad_explosion_exponent: no value), as for all 4 candidates screened so far; top 25 % trained (the top "
        "1 of 4)")


def test_a_combined_part_nan_for_everyone_is_said_and_the_other_part_ranks():
    from explorer.search.screening import relative_decision

    policy = RelativePolicy(warmup=1, top_fraction=0.25, keep_nondominated=False)
    screened = [c(math.nan, 0.1), c(math.nan, 0.2), c(math.nan, 0.3)]
    best = relative_decision(policy, c(math.nan, 0.0), screened, trained=3)
    worst = relative_decision(policy, c(math.nan, 0.9), screened, trained=3)
    assert best.train and best.rank == 1 and not worst.train and worst.rank == 4
    assert worst.why.endswith("; cosine_similarity NaN for all 4 candidates so far: ranked by the other part alone")
