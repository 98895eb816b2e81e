"""Successive halving from initialization: rungs, Pareto ranks on hand-made values, promotion."""

from __future__ import annotations

import math

import pytest

from explorer.direction import Direction
from explorer.search.halving import (HalvingPolicy, crowding_distances, nondominated_fronts, pareto_ranks,
                                     promotion_decision, rung_objective_values, rung_steps)

UP, DOWN = Direction.HIGHER, Direction.LOWER


def test_rungs_are_the_run_divided_by_powers_of_eta():
    assert rung_steps(300) == (33, 100, 300)  # NormBench's checkpoints: steps // 9, // 3, steps
    assert rung_steps(200) == (22, 66, 200)
    assert rung_steps(60, 3, 20) == (20, 60)  # min_steps drops the rungs below it
    assert rung_steps(100, 2, 20) == (25, 50, 100)
    assert rung_steps(4) == (1, 4)
    assert rung_steps(1) == (1,)
    with pytest.raises(ValueError, match="eta"):
        rung_steps(10, 1)


def test_fronts_and_crowding_on_hand_made_points():
    # lower is better on both: a, b, c trade off (front 0), d is dominated by c, e by everyone
    points = [[0, 4], [4, 0], [2, 2], [3, 3], [5, 5]]
    assert nondominated_fronts(points) == [0, 0, 0, 1, 2]
    # the extremes of a front are infinitely far; the middle point lies between them
    assert crowding_distances(points[:3]) == [math.inf, math.inf, pytest.approx(2.0)]
    assert pareto_ranks(points) == [1, 1, 3, 4, 5]
    assert nondominated_fronts([[math.nan, 0], [1, 1]]) == [0, 0]  # NaN is worst on its objective only
    assert nondominated_fronts([[math.nan, 2], [1, 1]]) == [1, 0]


def test_a_rung_with_fewer_than_eta_results_lets_everyone_go_on():
    policy = HalvingPolicy(3, (10, 30, 90))
    decision = promotion_decision(policy, 1, [0.1], [[0.9]], [UP], ["test_accuracy"])
    assert decision.train and "fewer than η = 3" in decision.why and decision.policy == "halving"
    # with eta results the rung halves: only the best of three goes on
    assert not promotion_decision(policy, 1, [0.1], [[0.9], [0.5]], [UP]).train
    assert promotion_decision(policy, 1, [0.95], [[0.9], [0.5]], [UP]).train


def test_the_top_third_by_pareto_rank_goes_on():
    policy = HalvingPolicy(3, (10, 30, 90))
    others = [[0.5], [0.6], [0.7], [0.8], [0.2], [0.3], [0.4], [0.1]]
    best = promotion_decision(policy, 2, [0.9], others, [UP], ["test_accuracy"])
    third = promotion_decision(policy, 2, [0.7], [o for o in others if o != [0.7]] + [[0.95]], [UP])
    fourth = promotion_decision(policy, 2, [0.6], others[:1] + others[2:] + [[0.95]], [UP])
    assert best.train and best.rank == 1 and best.of == 9
    assert third.train and third.rank == 3  # 9 // 3 = 3 go on
    assert not fourth.train and fourth.rank == 4
    assert "rung 2 (30 of 90 steps): Pareto rank 4 of 9 on the objectives; the top 3 (1/3) go on" == fourth.why


def test_several_objectives_rank_by_front_then_crowding():
    # accuracy up, similarity down: the candidate with the best similarity but poor accuracy is on
    # the front and goes on; one dominated by two others does not
    policy = HalvingPolicy(3, (10, 90))
    others = [[0.9, 0.5], [0.8, 0.4], [0.7, 0.3], [0.6, 0.9], [0.5, 0.8]]
    low_similarity = promotion_decision(policy, 1, [0.2, 0.1], others, [UP, DOWN])
    dominated = promotion_decision(policy, 1, [0.75, 0.45], others, [UP, DOWN])
    assert low_similarity.train and low_similarity.rank == 1  # an extreme of the front
    assert not dominated.train


def test_a_rung_measures_each_objective_where_it_is_made():
    objectives = {"test_accuracy": UP, "final_loss": DOWN, "cosine_similarity": DOWN}
    checkpoints = {"a": {"step": 10, "test_accuracy": 0.8, "train_loss": 0.5, "mean_train_accuracy": 0.6},
                   "b": {"step": 10, "test_accuracy": 0.7, "train_loss": "nan", "mean_train_accuracy": 0.5}}
    values = rung_objective_values(objectives, checkpoints, {"cosine_similarity": 0.3})
    # the worst model per objective; a NaN loss (diverged) is the worst loss
    assert values == [0.7, math.inf, 0.3]
    assert rung_objective_values(objectives, checkpoints, {"cosine_similarity": 0.3}, "mean")[0] == pytest.approx(0.75)


@pytest.mark.parametrize("training", ["epochs = 2", "", "steps = 0"])
def test_halving_without_a_number_of_steps_is_one_line(training):
    from explorer.search.study_file import StudyFileError, parse_study_text

    text = ('name = "h"\nmodels = ["mlp(depth=2, width=8)"]\n[objectives]\ntest_accuracy = "maximize"\n'
            f'[space]\npresets = ["bn"]\n[screening]\npolicy = "halving"\n[training]\n{training}\n')
    with pytest.raises(StudyFileError, match=r"h.toml:\d+: screening.policy: halving counts its rungs in steps"):
        parse_study_text(text, "h.toml")
