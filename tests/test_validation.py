"""``normx study validate`` on a real study run by the runner on the digits: every stored predictor
ranked by strength, the combined score against an independent computation, the chance verdicts,
and a table that fits 80 columns; ``combined_rank_score`` by hand."""

from __future__ import annotations

import json
import math
import subprocess

import pytest

from explorer.direction import Direction
from scipy import stats

from explorer.search import run_study
from explorer.search.combined import combined_rank_score
from explorer.search.study_file import parse_study_text

STUDY = """\
name = "digits_val"
models = ["plaincnn(depth=2, width=8)"]
n_trials = 7
sampler = "random"
[objectives]
test_accuracy = "maximize"
[data]
name = "digits"
train_limit = 256
test_limit = 128
[space]
presets = ["bn", "ln", "in", "gn(group_size=2)", "rms", "none", "vn"]
[screening]
policy = "thresholds"  # validation needs every candidate trained
batch_size = 32
batches = 1
reject_variance_growth = []
predictors = ["default", "naswot", "snip"]
[training]
steps = 12
batch_size = 32
"""


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory):
    db = tmp_path_factory.mktemp("validate") / "v.db"
    run_study(parse_study_text(STUDY, "digits_val.toml"), storage=str(db), on_trial_event=lambda event: None)
    return db


def validate(normx_exe, db, *args, **env):
    import os

    environ = {**os.environ, **env}
    return subprocess.run([*normx_exe, "study", "validate", "digits_val", "--storage", str(db), "--resamples", "200",
                           *args], capture_output=True, text=True, timeout=180, env=environ)


def test_validate_ranks_every_stored_predictor_with_the_combined_score(digits_study, normx_exe):
    import optuna

    done = validate(normx_exe, digits_study, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    trials = [t for t in optuna.load_study(study_name="digits_val", storage=f"sqlite:///{digits_study}").trials
              if t.state.name == "COMPLETE" and "reused_from" not in t.user_attrs]
    assert result["trials"] == len(trials) == 7
    ranked = [r["predictor"] for r in result["ranking"]]
    assert {"cosine_similarity", "grad_explosion_exponent", "stable_rank", "variance_growth_rate",
            "parameter_count", "naswot", "snip", "combined", "learned"} == set(ranked)
    # 7 trained trials are too few to learn from: the learned row says so and has no correlation
    learned = [p for p in result["pairs"] if p["predictor"] == "learned"]
    assert [(p["kendall_tau"], p["note"]) for p in learned] == [(None, "too few")] * 2
    assert result["learned"]["note"] == "learned score: 7 trained trials, fewer than 8"
    strengths = [r["strength"] for r in result["ranking"]]
    finite = [s for s in strengths if s is not None]
    assert finite == sorted(finite, reverse=True) and strengths[:len(finite)] == finite  # strongest first
    assert [p["predictor"] for p in result["pairs"]][::2] == ranked  # the pairs follow the ranking

    # the combined score, computed independently: mean of (rank - 1) / (n - 1) of the two parts
    def ranks(key):
        values = [t.user_attrs["predictors"][key] for t in trials]
        return [(r - 1) / (len(values) - 1) for r in stats.rankdata(values)]

    combined = [(a + b) / 2 for a, b in zip(ranks("cosine_similarity"), ranks("grad_explosion_exponent"))]
    speed = [t.user_attrs["train"]["mean_train_accuracy"] for t in trials]
    pair = next(p for p in result["pairs"] if p["predictor"] == "combined" and p["measure"] == "mean_train_accuracy")
    assert pair["direction"] == "lower"
    assert pair["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(combined, speed)[0])
    assert pair["spearman_rho"]["value"] == pytest.approx(stats.spearmanr(combined, speed)[0])
    # each verdict follows its interval: chance when it includes 0, else the sign against the direction
    chance = []
    for p in result["pairs"]:
        if p.get("too_few"):  # too few trials, distinct values or a trustworthy interval: no verdict
            assert p["verdict"] == "too few" and p["note"]
            continue
        if p["kendall_tau"] is None:
            assert p["verdict"] is None and p["note"]
            continue
        low, high = p["kendall_tau"]["ci"]
        assert low <= p["kendall_tau"]["value"] + 1e-9 and p["kendall_tau"]["value"] <= high + 1e-9
        if low <= 0 <= high:
            assert p["verdict"] == "chance"
            chance.append(f"{p['predictor']} vs {p['measure']}")
        else:
            agrees = (p["kendall_tau"]["value"] < 0) == (p["direction"] == "lower")
            assert p["verdict"] == ("agrees" if agrees else "reversed")
    assert result["chance"] == chance
    assert "not distinguishable from chance" in result["chance_means"]


def test_validate_table_fits_80_columns_with_a_legend_and_says_chance_plainly(digits_study, normx_exe):
    done = validate(normx_exe, digits_study, COLUMNS="80")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = " ".join(done.stdout.split())
    assert "Kendall τ and Spearman ρ" in text
    assert "cos_sim = cosine_similarity" in text and "explosion = grad_explosion_exponent" in text
    assert "params = parameter_count" in text
    assert "not distinguishable from chance" in text
    result = json.loads(validate(normx_exe, digits_study, "--json").stdout)
    if result["chance"]:
        assert f"Not distinguishable from chance: {len(result['chance'])} of {len(result['pairs'])}" in text
    assert "…" not in done.stdout  # nothing truncated


def test_too_few_trials_or_distinct_values_is_a_verdict_of_its_own():
    """Issue 24 item 15 / issue 25 item 4: ``params`` varied in one trial and "agreed" with an
    interval excluding its own τ; 3-4 trials said "reversed" or "agrees"."""
    from explorer.search.validation import TOO_FEW, correlation_verdict, judged

    speed = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.8, 0.6, 0.4, 0.35]
    one_differs = judged([5.0] * 9 + [6.0], speed, 1000, 0)
    assert correlation_verdict(one_differs, Direction.LOWER) == TOO_FEW
    assert one_differs["note"] == "too few distinct values to judge (1 trial(s) differ from the rest)"
    four = judged([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4], 1000, 0)
    assert correlation_verdict(four, Direction.HIGHER) == TOO_FEW and "fewer than 5" in four["note"]
    varied = judged(list(range(20)), [v + 0.1 * (v % 3) for v in range(20)], 1000, 0)
    assert correlation_verdict(varied, Direction.HIGHER) == "agrees" and varied["degenerate_share"] == 0
    low, high = varied["kendall_tau"]["ci"]
    assert low <= varied["kendall_tau"]["value"] <= high


def test_combined_rank_score_by_hand():
    records = [
        {"cosine_similarity": 0.2, "grad_explosion_exponent": 0.3},
        {"cosine_similarity": 0.5, "grad_explosion_exponent": 0.1},
        {"cosine_similarity": "nan", "grad_explosion_exponent": 0.2},  # missing: ranks worst on that part
    ]
    # cosine ranks 0, 0.5, 1; explosion ranks 1, 0, 0.5
    assert combined_rank_score(records) == pytest.approx([0.5, 0.25, 0.75])
    # a higher-is-better part ranks the other way; the record's directions say so
    higher = [{"snip": 3.0, "directions": {"snip": "higher"}}, {"snip": 1.0, "directions": {"snip": "higher"}}]
    assert combined_rank_score(higher, ("snip",)) == [0.0, 1.0]
    # a dict-valued predictor by its rate, ties sharing their rank
    growth = [{"variance_growth": {"kind": "linear", "rate": r}} for r in (0.1, 0.1, 0.4)]
    assert combined_rank_score(growth, ("variance_growth_rate",)) == pytest.approx([0.25, 0.25, 1.0])
    assert combined_rank_score([{"cosine_similarity": 1.0, "grad_explosion_exponent": 1.0}]) == [0.0]
    assert combined_rank_score([]) == []
    with pytest.raises(ValueError):
        combined_rank_score(records, ())
    assert all(math.isfinite(v) for v in combined_rank_score(records))
