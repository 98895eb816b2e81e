"""The study's judgement of one composition: aggregation over models and screening thresholds."""

from __future__ import annotations

import math

import pytest

from explorer.search.policy import aggregate_predictors, aggregate_training, objective_values, screening_verdict
from explorer.search.study_file import ScreeningConfig, StudyConfig


def predictors(cos=0.1, explosion=0.0, rank=5.0, kind="flat", rate=0.0, overflow=False, layers=(1.0, 1.0)):
    return {"cosine_similarity": cos, "grad_explosion_exponent": explosion, "stable_rank": rank,
            "activation_variance": list(layers), "grad_norm": list(layers),
            "variance_growth": {"kind": kind, "rate": rate}, "overflow": overflow,
            "spread": {"cosine_similarity": 0.0}}


def training(acc=0.5, train_acc=0.4, losses=(2.0, 1.0), diverged=False, diverged_step=None, wall=1.0):
    return {"loss_curve": [[i + 1, v] for i, v in enumerate(losses)], "mean_train_accuracy": train_acc,
            "test_accuracy": acc, "diverged": diverged, "diverged_step": diverged_step, "wall_time_s": wall,
            "device": "cpu"}


def config(objectives, aggregate="worst", **screening):
    return StudyConfig(name="t", models=["a", "b"], objectives=objectives, aggregate=aggregate,
                       screening=ScreeningConfig(**screening))


# ----------------------------------------------------------------------------- objectives


def test_worst_case_takes_the_minimum_when_maximizing_and_the_maximum_when_minimizing():
    by_model = {"a": predictors(cos=0.2), "b": predictors(cos=0.7)}
    train = {"a": training(acc=0.9), "b": training(acc=0.6)}
    values = objective_values(config({"test_accuracy": "maximize", "cosine_similarity": "minimize"}), by_model, train)
    assert values == [0.6, 0.7]
    values = objective_values(config({"test_accuracy": "minimize", "cosine_similarity": "maximize"}), by_model, train)
    assert values == [0.9, 0.2]


def test_mean_aggregation_averages_the_models():
    by_model = {"a": predictors(rank=2.0), "b": predictors(rank=6.0)}
    train = {"a": training(acc=0.8), "b": training(acc=0.4)}
    values = objective_values(config({"test_accuracy": "maximize", "stable_rank": "maximize"}, aggregate="mean"),
                              by_model, train)
    assert values == pytest.approx([0.6, 4.0])


def test_stored_non_finite_strings_count_as_numbers():
    by_model = {"a": predictors(explosion="inf"), "b": predictors(explosion=1.0)}
    values = objective_values(config({"grad_explosion_exponent": "minimize"}), by_model, {})
    assert values == [math.inf]


def test_a_diverged_runs_final_loss_is_the_worst_value():
    train = {"a": training(losses=(2.0, math.nan), diverged=True, diverged_step=2), "b": training(losses=(2.0, 0.5))}
    assert objective_values(config({"final_loss": "minimize"}), {}, train) == [math.inf]
    assert objective_values(config({"final_loss": "minimize"}), {}, {"b": train["b"]}) == [0.5]


# ----------------------------------------------------------------------------- aggregation


def test_aggregate_predictors_takes_each_keys_worst_model():
    by_model = {"a": predictors(cos=0.9, explosion=0.1, rank=8.0, layers=(1.0, 2.0)),
                "b": predictors(cos=0.2, explosion=0.5, rank=3.0, kind="exponential", rate=0.1, layers=(4.0, 8.0))}
    out = aggregate_predictors(by_model)
    assert out["cosine_similarity"] == 0.9  # higher is worse
    assert out["grad_explosion_exponent"] == 0.5
    assert out["stable_rank"] == 3.0  # lower is worse
    assert out["variance_growth"] == {"kind": "exponential", "rate": 0.1}
    assert out["activation_variance"] == [4.0, 8.0]  # the curves of the model that explodes most
    assert out["overflow"] is False


def test_nan_is_the_worst_value_in_either_direction():
    by_model = {"a": predictors(cos=math.nan, rank=math.nan, explosion=0.3), "b": predictors(cos=0.9, rank=1.0)}
    out = aggregate_predictors(by_model)
    assert math.isnan(out["cosine_similarity"]) and math.isnan(out["stable_rank"])
    assert aggregate_predictors({"a": predictors(overflow=True), "b": predictors()})["overflow"] is True


def test_one_model_is_its_own_aggregate():
    record = predictors(cos=0.3)
    assert aggregate_predictors({"a": record}) == record
    assert aggregate_training({"a": training()}) == training()


def test_aggregate_training_keeps_the_worst_run_any_divergence_and_the_total_time():
    out = aggregate_training({"a": training(acc=0.9, train_acc=0.7, losses=(1.0,), wall=2.0),
                              "b": training(acc=0.3, train_acc=0.8, losses=(3.0,), diverged=True, diverged_step=5,
                                            wall=3.0)})
    assert out["test_accuracy"] == 0.3 and out["mean_train_accuracy"] == 0.7
    assert out["loss_curve"] == [[1, 3.0]] and out["diverged"] and out["diverged_step"] == 5
    assert out["wall_time_s"] == 5.0


# ----------------------------------------------------------------------------- screening


def verdict(**kw):
    p = predictors(**{k: v for k, v in kw.items() if k in ("cos", "explosion", "kind", "rate", "overflow")})
    screening = {k: v for k, v in kw.items() if k not in ("cos", "explosion", "kind", "rate", "overflow")}
    return screening_verdict(ScreeningConfig(**screening), {"m": p})


def test_defaults_pass_a_healthy_composition():
    assert verdict() is None


def test_explosion_above_the_threshold_is_pruned_at_or_below_passes():
    assert "gradient explosion exponent 0.6 > 0.5 (screening.max_grad_explosion) on m" == verdict(
        explosion=0.6, max_grad_explosion=0.5)
    assert verdict(explosion=0.5, max_grad_explosion=0.5) is None


def test_cosine_above_the_threshold_is_pruned_at_or_below_passes():
    assert "screening.max_cosine_similarity" in verdict(cos=0.95, max_cosine_similarity=0.9)
    assert verdict(cos=0.9, max_cosine_similarity=0.9) is None


def test_rejected_growth_kind_is_pruned_only_when_it_grows():
    assert "exponential activation-variance growth" in verdict(kind="exponential", rate=0.2)
    assert verdict(kind="exponential", rate=0.0) is None
    assert verdict(kind="linear", rate=0.2) is None  # not in the default reject list
    assert "linear" in verdict(kind="linear", rate=0.2, reject_variance_growth=["linear"])


def test_overflow_and_nan_explosion_are_pruned_unless_allowed():
    assert verdict(overflow=True) == "NaN/inf at initialization on m"
    assert verdict(explosion="nan") == "NaN gradient explosion exponent on m"
    assert verdict(overflow=True, prune_overflow=False) is None


# ----------------------------------------------------------------------------- two models, each key its worst


def test_nan_on_the_second_model_is_still_the_worst():
    """NaN is the worst value wherever it appears (a max over values holding NaN would keep the first)."""
    out = aggregate_predictors({"a": predictors(cos=0.3, rank=4.0), "b": predictors(cos=math.nan, rank=math.nan)})
    assert math.isnan(out["cosine_similarity"]) and math.isnan(out["stable_rank"])


def test_per_layer_curves_are_those_of_the_most_exploding_model():
    a = predictors(explosion=0.5, layers=(1.0, 2.0))
    b = predictors(explosion=0.1, layers=(3.0, 4.0))
    assert aggregate_predictors({"a": a, "b": b})["activation_variance"] == [1.0, 2.0]
    assert aggregate_predictors({"b": b, "a": a})["grad_norm"] == [1.0, 2.0]
    nan = predictors(explosion=math.nan, layers=(5.0, 6.0))  # NaN explodes most
    assert aggregate_predictors({"a": a, "n": nan})["activation_variance"] == [5.0, 6.0]
    bare = {k: v for k, v in b.items() if k not in ("activation_variance", "grad_norm")}
    out = aggregate_predictors({"x": predictors(explosion=0.0), "bare": dict(bare, grad_explosion_exponent=0.9)})
    assert out["activation_variance"] == [] and out["grad_norm"] == []  # lists, even when the model has none


def test_variance_growth_is_the_most_severe_kind_then_the_fastest_rate():
    def growth(*kinds_rates):
        models = {f"m{i}": predictors(kind=k, rate=r) for i, (k, r) in enumerate(kinds_rates)}
        return aggregate_predictors(models)["variance_growth"]

    assert growth(("linear", 0.5), ("exponential", 0.1)) == {"kind": "exponential", "rate": 0.1}
    assert growth(("exponential", 0.1), ("linear", 0.5)) == {"kind": "exponential", "rate": 0.1}
    assert growth(("linear", 0.2), ("linear", 0.7)) == {"kind": "linear", "rate": 0.7}
    assert growth(("flat", 0.0), ("linear", 0.01)) == {"kind": "linear", "rate": 0.01}
    none = {k: v for k, v in predictors().items() if k != "variance_growth"}
    assert aggregate_predictors({"a": none, "b": dict(none)})["variance_growth"] == {"kind": "flat", "rate": 0.0}


def test_spread_is_the_largest_over_models_per_key():
    a, b = predictors(), predictors()
    a["spread"] = {"cosine_similarity": 0.1, "stable_rank": 0.5}
    b["spread"] = {"cosine_similarity": 0.3, "grad_explosion_exponent": 0.2, "note": "n/a"}
    out = aggregate_predictors({"a": a, "b": b})
    assert out["spread"] == {"cosine_similarity": 0.3, "stable_rank": 0.5, "grad_explosion_exponent": 0.2,
                             "note": "n/a"}  # a value that is not a number is kept as it is
    assert aggregate_predictors({"b": b, "a": a})["spread"]["cosine_similarity"] == 0.3  # the larger, not the last
    del b["spread"]
    assert aggregate_predictors({"a": a, "b": b})["spread"] == {"cosine_similarity": 0.1, "stable_rank": 0.5}


def test_a_stored_value_that_is_not_a_number_is_an_error():
    with pytest.raises(ValueError, match="not a number: 'abc'"):
        aggregate_predictors({"a": predictors(cos="abc"), "b": predictors()})


def test_training_aggregate_without_divergence_and_the_final_loss_is_the_last_point():
    out = aggregate_training({"a": training(acc=0.7), "b": training(acc=0.5, losses=(3.0, 2.0, 1.5))})
    assert out["diverged"] is False and out["diverged_step"] is None
    assert out["device"] == "cpu" and out["loss_curve"] == [[1, 3.0], [2, 2.0], [3, 1.5]]  # the worst model's
    train = {"a": training(losses=(3.0, 2.0, 1.25))}
    assert objective_values(config({"final_loss": "minimize"}), {}, train) == [1.25]
    assert objective_values(config({"final_loss": "minimize"}), {}, {"a": dict(train["a"], loss_curve=[])}) == \
        [math.inf]  # no loss recorded: the worst value


# ----------------------------------------------------------------------------- a diverged training, as the worker records it


def test_a_diverged_training_is_named_with_its_step_and_model():
    from explorer.search.recording import diverged_note

    assert diverged_note({"a": training(diverged=True, diverged_step=12), "b": training()}) == "diverged at step 12 (a)"
    assert diverged_note({"a": training(diverged=True, diverged_step=3), "b": training(diverged=True, diverged_step=5)}) \
        == "diverged at step 3 (a), step 5 (b)"
    assert diverged_note({"a": training(), "b": training()}) == "" and diverged_note({}) == ""
