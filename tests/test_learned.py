"""The learned screening score: its features and targets by hand, a model that learns a known rule
on one hand-made table and ranks another, its fallback, its refit schedule, its prior, and the
replay and leave-one-table-out surfaces built on it."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from scipy import stats

from explorer.cli import main
from explorer.direction import Direction
from explorer.normbench import Row, Table
from explorer.normbench.replay import Replay, default_strategies, iter_screening_decisions, screening_decisions
from explorer.normbench.transfer import held_out_scores, leave_one_table_out
from explorer.search import learned
from explorer.search.learned import (DEFAULT_OBJECTIVES, Example, LearnedModel, Prior, cross_validated_scores,
                                     feature_ranks, fit_size, learned_scores, load_prior, outcome_targets,
                                     pool_examples, table_examples, train_outcomes)
from explorer.search.screening import RelativePolicy, candidate_values, combined_rank_score, relative_decision

from test_normbench import TINY

ACCURACY = (("test_accuracy", Direction.HIGHER),)


def test_features_are_percentile_ranks_within_the_pool_with_nan_and_missing_at_one_half():
    pool = [{"a": 3.0, "b": math.inf}, {"a": 1.0, "b": -math.inf}, {"a": math.nan, "b": 0.0}, {"b": 5.0},
            {"a": 1.0, "b": None}]
    ranks = feature_ranks(pool, ["a", "b", "c"])
    # a: 3 known values (1, 1, 3): the tie shares its mean rank; NaN and missing are 0.5
    assert ranks[:, 0].tolist() == [1.0, 0.25, 0.5, 0.5, 0.25]
    # b: ±inf are the extremes, 0 and 5 between them; None is 0.5
    assert ranks[:, 1].tolist() == [1.0, 0.0, 1 / 3, 2 / 3, 0.5]
    assert ranks[:, 2].tolist() == [0.5] * 5  # nobody has c
    assert feature_ranks([{"a": 7.0}], ["a"]).tolist() == [[0.5]]  # one value says nothing
    assert feature_ranks([], ["a"]).shape == (0, 1)


def test_targets_are_direction_aware_ranks_averaged_over_the_training_objectives():
    outcomes = [{"test_accuracy": 0.9, "final_loss": 0.3}, {"test_accuracy": 0.5, "final_loss": 0.1},
                {"test_accuracy": math.nan, "final_loss": math.inf}]
    assert outcome_targets(outcomes, ACCURACY) == [0.0, 0.5, 1.0]  # NaN accuracy ranks worst
    both = (("test_accuracy", Direction.HIGHER), ("final_loss", Direction.LOWER))
    assert outcome_targets(outcomes, both) == pytest.approx([0.25, 0.25, 1.0])
    # an objective nobody measured is left out; none measured: no target
    assert outcome_targets(outcomes, (*ACCURACY, ("wall_time_s", Direction.LOWER))) == [0.0, 0.5, 1.0]
    assert outcome_targets(outcomes, (("wall_time_s", Direction.LOWER),)) is None
    # a stored train record's measures: a diverged run's final loss is the worst
    record = {"test_accuracy": 0.5, "mean_train_accuracy": "0.4", "wall_time_s": 2.0, "diverged": True,
              "loss_curve": [[0, 2.0], [5, "nan"]]}
    assert train_outcomes(record) == {"test_accuracy": 0.5, "mean_train_accuracy": 0.4, "final_loss": math.inf,
                                      "wall_time_s": 2.0}
    assert train_outcomes(None) is None


def test_pool_examples_rank_features_within_the_pool_and_targets_among_the_trained():
    pool = [{"p": 10.0}, {"p": 30.0}, {"p": 20.0}]
    rows = pool_examples(pool, [{"test_accuracy": 0.2}, None, {"test_accuracy": 0.8}], ACCURACY)
    assert [(r.features, r.target) for r in rows] == [({"p": 0.0}, 1.0), ({"p": 0.5}, 0.0)]
    assert pool_examples(pool, [None, None, None], ACCURACY) == []


def rule_table(name: str, n: int, scale: float, seed: int) -> Table:
    """A table whose final accuracy falls with its ``rule`` predictor (on any scale: ``scale``),
    with two predictors of noise beside it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rule = scale * rng.random()
        accuracy = 1.0 - rule / scale
        rows.append(Row(spec=f"{name}{i}", key=f"{name}{i}", trial=i,
                        predictors={"rule": rule, "noise": rng.gauss(0, scale), "other": rng.random()},
                        directions={"rule": "lower", "noise": "higher", "other": "higher"},
                        checkpoints=[{"step": 5, "train_loss": rule, "mean_train_accuracy": accuracy,
                                      "test_accuracy": accuracy, "train_s": 1.0}],
                        test_accuracy=accuracy, mean_train_accuracy=accuracy, train_s=1.0, steps=5))
    return Table(name, {"study_file": TINY.replace("STEPS", "5"), "checkpoints": [5]}, rows)


def test_a_model_learned_on_one_table_ranks_another_nearly_perfectly(tmp_path):
    """The rule holds on both tables, on scales a thousand times apart: ranks make them alike."""
    first, second = rule_table("first", 60, 1.0, 0), rule_table("second", 50, 1000.0, 1)
    model = LearnedModel(["noise", "other", "rule"], table_examples(first, ACCURACY))
    scores = model.score([candidate_values(r.record()) for r in second.rows])
    tau = stats.kendalltau(scores, [r.test_accuracy for r in second.rows])[0]
    assert tau < -0.9  # lower score, higher accuracy

    paths = [first.save(tmp_path / "first.jsonl"), second.save(tmp_path / "second.jsonl")]
    result = leave_one_table_out([str(p) for p in paths], n_boot=20)
    assert [e["table"] for e in result] == ["first", "second"]
    for entry in result:
        assert entry["trained_on"] == [str(p) for p in paths if p.stem != entry["table"]]
        assert entry["learned"]["kendall_tau"]["value"] > 0.9  # signed: positive ranks as claimed
        assert entry["best_single"] == "rule" and entry["scores"][0]["score"] in ("rule", "learned")
        assert {e["score"] for e in entry["scores"]} >= {"rule", "noise", "other", "learned"}
    # on its own a table has nothing to learn from, and says so
    alone, note = held_out_scores(first, [])
    assert alone is None and note == "learned score: no other table to learn from"


def test_the_table_learned_command_prints_json_and_a_table(tmp_path, capsys):
    paths = [str(rule_table(n, 30, 1.0, s).save(tmp_path / f"{n}.jsonl")) for n, s in (("a", 0), ("b", 1))]
    assert main(["table", "learned", *paths, "--json", "--resamples", "100"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [e["table"] for e in result] == ["a", "b"] and result[0]["learned"]["note"].startswith("fitted on 30 rows")
    assert main(["table", "learned", paths[0], "--resamples", "100"]) == 0
    text = capsys.readouterr().out
    assert "a, held out" in text and "rule (best single)" in text and "no other table to learn from" in text
    assert main(["table", "learned", paths[0], "--resamples", "0"]) == 2
    assert "--resamples must be at least 100" in capsys.readouterr().err


def test_the_fast_walk_predicts_what_scikit_learn_predicts():
    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    for n in (4, 40, 300):
        rows = [Example(dict(zip(names, rng.random(3).tolist())), float(rng.random())) for _ in range(n)]
        model = LearnedModel(names, rows)
        x = rng.random((25, 3))
        assert np.allclose(model.predict(x), model.forest.predict(x), rtol=0, atol=1e-12)
    assert model.predict(np.zeros((0, 3))) == []


def test_too_few_trained_trials_fall_back_to_the_combined_score_and_say_so():
    pool = [{"cosine_similarity": 0.1 * i, "grad_explosion_exponent": 0.3 - 0.05 * i} for i in range(6)]
    outcomes = [{"test_accuracy": 0.5}, None, {"test_accuracy": 0.7}, {"test_accuracy": 0.6}, None]
    policy = RelativePolicy(warmup=2, top_fraction=0.5, score="learned", keep_nondominated=False)
    decision = relative_decision(policy, pool[-1], pool[:-1], 3, outcomes)
    assert decision.why.endswith("; learned score: 3 trained trials, fewer than 8; combined score used")
    assert decision.why.startswith(f"rank {decision.rank} of 6 by combined score")
    combined = combined_rank_score(pool)
    assert decision.rank == 1 + sum(c < combined[-1] for c in combined[:-1])
    # a prior counts toward the minimum: with 5 prior rows the 3 trained are enough
    prior = Prior(("p",), ACCURACY, tuple(Example({"cosine_similarity": i / 4}, i / 4) for i in range(5)))
    learned_decision = relative_decision(policy, pool[-1], pool[:-1], 3, outcomes, prior)
    assert "by learned score (fitted on 3 trained trials and 5 prior)" in learned_decision.why
    assert "combined score used" not in learned_decision.why


def test_the_model_is_refitted_only_when_its_rows_grew_by_a_quarter():
    assert [fit_size(0, k) for k in (7, 8, 9, 10, 12, 13, 16, 17)] == [None, 8, 8, 10, 10, 13, 13, 17]
    assert fit_size(100, 0) == 0 and fit_size(100, 24) == 0 and fit_size(100, 25) == 25  # a prior: 125 ≥ 1.25·100
    assert fit_size(3, 4) is None and fit_size(3, 5) == 5 and fit_size(3, 7) == 7  # 10 ≥ 1.25·8

    rng = random.Random(0)
    pool = [{"x": rng.random(), "y": rng.random()} for _ in range(40)]
    outcomes = [{"test_accuracy": 1 - c["x"]} for c in pool]
    fitted_before = learned.fits()
    sizes = []
    for k in range(8, 21):  # the first k candidates trained, the next one decided
        result = learned_scores(pool[:k + 1], outcomes[:k], ACCURACY)
        sizes.append((k, result.own, learned.fits() - fitted_before))
    fits_at = sorted({own for _, own, _ in sizes})
    assert fits_at == [8, 10, 13, 17]
    assert sizes[-1][2] == 4  # one fit per size: 8, 10, 13 and 17 rows
    # the same rows again: the cached model, the same scores
    again = learned_scores(pool[:21], outcomes[:20], ACCURACY)
    assert learned.fits() - fitted_before == 4
    assert again.scores == learned_scores(pool[:21], outcomes[:20], ACCURACY).scores
    # the model of 17 rows scores 21 candidates: lower for the candidates the rule says are better
    tau = stats.kendalltau(again.scores, [c["x"] for c in pool[:21]])[0]
    assert tau > 0.6


def test_the_prior_is_each_tables_own_ranks_and_counts_from_the_first_decision():
    prior = load_prior(["digits"], ACCURACY)
    from explorer.normbench import load

    digits = load("digits")
    assert len(prior.examples) == len(digits.trained)
    assert all(0.0 <= e.target <= 1.0 and all(0.0 <= v <= 1.0 for v in e.features.values()) for e in prior.examples)
    best = max(digits.trained, key=lambda r: r.test_accuracy)
    index = [r for r in digits.rows if r.invalid is None and r.trained].index(best)
    assert prior.examples[index].target == min(e.target for e in prior.examples) < 0.01  # ties share their rank
    result = learned_scores([{"cosine_similarity": 0.2, "snip": 1.0}, {"cosine_similarity": 0.9, "snip": 2.0}], [],
                            ACCURACY, prior)
    assert result.scores is not None and result.describe == f"learned score (fitted on 0 trained trials and " \
                                                            f"{len(prior.examples)} prior)"


def test_cross_validation_scores_each_trained_trial_out_of_fold():
    rng = random.Random(1)
    pool = [{"x": rng.random()} for _ in range(30)]
    outcomes = [{"test_accuracy": 1 - c["x"]} if i % 3 else None for i, c in enumerate(pool)]
    scores, note = cross_validated_scores(pool, outcomes, ACCURACY)
    assert note == "out of fold: 5-fold cross-validation over 20 trained trials"
    assert [s is None for s in scores] == [o is None for o in outcomes]
    trained = [(s, c["x"]) for s, c in zip(scores, pool) if s is not None]
    assert stats.kendalltau([t[0] for t in trained], [t[1] for t in trained])[0] > 0.7
    few, why = cross_validated_scores(pool[:5], outcomes[:5], ACCURACY)
    assert few is None and why == "learned score: 3 trained trials, fewer than 8"


def test_the_replay_offers_the_learned_score_with_and_without_a_prior_and_decides_lazily():
    table = rule_table("ruled", 40, 1.0, 3)
    replay = Replay(table)
    strategies = default_strategies(replay)
    assert {"relative:learned", "relative:learned-prior"} <= set(strategies)
    from dataclasses import replace

    screening = replace(replay.config.screening, score="learned", learned_min_trials=4)
    order = list(table.rows)
    every = screening_decisions(replay, screening, order)
    lazy = iter_screening_decisions(replay, screening, order)
    assert [next(lazy) for _ in range(10)] == every[:10]
    # the decisions are the worker's function's, fed the outcomes of the rows trained before
    policy = RelativePolicy.of(screening, replay.config.objectives)
    screened, outcomes, trained = [], [], 0
    for row, decided in zip(order, every):
        values = candidate_values(row.record())
        train = relative_decision(policy, values, screened, trained, outcomes).train
        assert train == decided
        screened.append(values)
        outcomes.append(row.outcomes() if train else None)
        trained += train
    trace = strategies["relative:learned"](replay, 0)
    assert trace.done


def test_a_study_screened_by_the_learned_score_decides_as_the_policy_does(tmp_path, capsys):
    """A real study on SQLite, ranked by the learned score after 2 trained trials; each stored
    decision is the policy's for the trials before it (their predictors and training measures),
    the first ones say they fell back to the combined score, later ones that the model decided.
    A second study learns from the first as its prior; an unknown study is one line, did-you-mean."""
    import optuna
    from optuna.trial import TrialState

    from explorer.search import run_study
    from explorer.search.study_file import StudyFileError
    from test_screening_study import PRESETS, study

    storage = f"sqlite:///{tmp_path / 'learned.db'}"
    screening = 'score = "learned"\nlearned_min_trials = 3\nwarmup = 2\ntop_fraction = 0.5\nkeep_nondominated = false'
    config = study("learns", 9, screening=screening)
    run_study(config, storage=storage, on_trial_event=lambda event: None)
    done = sorted(optuna.load_study(study_name="learns", storage=storage).get_trials(), key=lambda t: t.number)
    policy = RelativePolicy.of(config.screening, config.objectives)
    assert policy.objectives == (("test_accuracy", Direction.HIGHER),) and policy.min_trials == 3
    screened, outcomes, trained, reasons = [], [], 0, []
    for t in done:
        attrs = t.user_attrs
        if "reused_from" in attrs or "predictors" not in attrs:
            continue
        values = candidate_values(attrs["predictors"])
        expected = relative_decision(policy, values, screened, trained, outcomes).to_attrs()
        assert attrs["screening"] == expected
        reasons.append(expected["why"])
        assert (t.state == TrialState.PRUNED) == (expected["decision"] == "prune")
        screened.append(values)
        outcomes.append(train_outcomes(attrs.get("train")))
        trained += "train" in attrs
    assert any(r.endswith("fewer than 3; combined score used") for r in reasons)
    assert any("by learned score (fitted on " in r for r in reasons)

    second = study("again", 3, screening=screening + '\nprior = ["study:learns"]')
    run_study(second, storage=storage, on_trial_event=lambda event: None)
    later = [t for t in optuna.load_study(study_name="again", storage=storage).get_trials()
             if (t.user_attrs.get("screening") or {}).get("rank")]
    assert later and all("prior)" in t.user_attrs["screening"]["why"] for t in later)  # the prior is enough

    wrong = study("wrong", 1, screening=screening + '\nprior = ["study:learn"]')
    with pytest.raises(StudyFileError) as err:
        run_study(wrong, storage=storage, on_trial_event=lambda event: None)
    assert str(err.value) == ("wrong.toml:23: screening.prior: unknown study 'learn' in the study's storage; "
                              "closest: learns")
    assert "wrong" not in optuna.get_all_study_names(storage)  # nothing created


def test_validate_correlates_the_learned_score_out_of_fold(tmp_path):
    """The learned row of ``normx study validate``: each trained trial scored by the fold model
    that did not see it, features ranked among every distinct screened trial (recomputed here
    from the raw trials)."""
    import optuna

    from explorer.search.results import load_study
    from explorer.search.storage import open_storage, resolve_storage
    from explorer.search.validation import trained_trials, validate_study
    from test_tui_model import write_study

    url = f"sqlite:///{tmp_path / 'v.db'}"
    write_study(url, n=40, running=0)
    data = load_study(open_storage(resolve_storage(url)), "demo")
    result = validate_study(data, n_boot=20)
    numbers = [n for n, _, _ in trained_trials(data)]
    pool, outcomes, accuracy = [], [], {}
    for t in sorted(optuna.load_study(study_name="demo", storage=url).trials, key=lambda t: t.number):
        if isinstance(t.user_attrs.get("predictors"), dict) and "reused_from" not in t.user_attrs:
            pool.append(candidate_values(t.user_attrs["predictors"]))
            outcomes.append(train_outcomes(t.user_attrs["train"]) if t.number in numbers else None)
            if t.number in numbers:
                accuracy[len(pool) - 1] = t.user_attrs["train"]["test_accuracy"]
    scores, note = cross_validated_scores(pool, outcomes, ACCURACY)
    assert result["learned"]["note"] == note == f"out of fold: 5-fold cross-validation over {len(numbers)} trained trials"
    pair = next(p for p in result["pairs"] if p["predictor"] == "learned" and p["measure"] == "test_accuracy")
    expected = stats.kendalltau([scores[i] for i in accuracy], list(accuracy.values()))[0]
    assert pair["kendall_tau"]["value"] == pytest.approx(expected) and pair["n"] == len(numbers)
