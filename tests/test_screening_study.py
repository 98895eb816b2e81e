"""The relative screening policy and the distinct-composition budget, through real study runs on
real Optuna storages (SQLite, journal file), checked against an independent recomputation."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from scipy.stats import rankdata

from explorer.search import run_study
from explorer.search.results import load_study
from explorer.search.storage import open_storage, resolve_storage
from explorer.search.study_file import load_study_file, parse_study_text
from explorer.search.worker import MAX_CONSECUTIVE_REPEATS

from test_search import BASE as SEARCH_BASE

#: test_search's study, sampled at random, trained 2 steps
BASE = SEARCH_BASE.replace("n_trials = {n}\n", "n_trials = {n}\nsampler = \"random\"\n").replace("{steps}", "2")
PRESETS = 'presets = ["bn", "ln", "rms", "none", "bmlv", "lmbv", "dyt", "seednorm", "vn"]'
#: four compositions, counted by hand: std(b), std(c), mean(b) | std(b), mean(c) | std(c)
FOUR = ('fixed = "affine | relu"\ntie_axes = true\n[space.slots]\ncenter = ["none", "mean"]\nscale = ["std"]\n'
        '[space.params]\naxes = ["b", "c"]')


def study(name, n, space=PRESETS, screening=""):
    return parse_study_text(BASE.format(name=name, n=n, space=space, screening=screening), f"{name}.toml")


def trials(storage, name):
    return optuna.load_study(study_name=name, storage=open_storage(resolve_storage(storage))).get_trials()


def combined_ranks(pool):
    """The combined score recomputed with scipy: mean of the two percentile ranks (ties averaged)."""
    n = len(pool)
    parts = []
    for key in ("cosine_similarity", "grad_explosion_exponent"):
        values = [math.inf if v is None or math.isnan(v) else v for v in (p[key] for p in pool)]
        parts.append((rankdata(values, method="average") - 1) / (n - 1))
    return [(a + b) / 2 for a, b in zip(*parts)]


def test_relative_policy_trains_the_warm_up_then_only_the_top_fraction(tmp_path):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    config = study("relative", 9, screening="warmup = 2\ntop_fraction = 0.25\nkeep_nondominated = false")
    events = []
    run_study(config, storage=storage, on_trial_event=events.append)
    done = sorted(trials(storage, "relative"), key=lambda t: t.number)
    assert len(done) == 9 and all("reused_from" not in t.user_attrs for t in done)
    pool, trained = [], 0
    for t in done:
        attrs = t.user_attrs
        predictors = attrs["predictors"]
        mine = {k: float(predictors[k]) for k in ("cosine_similarity", "grad_explosion_exponent")}
        decision = attrs["screening"]
        if trained < 2:  # the warm-up trains whatever comes
            assert decision["decision"] == "train" and decision["rank"] is None
            assert decision["why"] == f"warm-up: {trained} of 2 trained before ranking starts"
        else:
            ranks = combined_ranks([*pool, mine])
            rank = 1 + sum(r < ranks[-1] for r in ranks[:-1])
            n, allowed = len(ranks), math.ceil(0.25 * len(ranks))
            assert (decision["rank"], decision["of"]) == (rank, n)
            where = f"rank {rank} of {n} by combined score; top 25 % trained (the top {allowed} of {n})"
            assert decision["why"] == where
            if rank <= allowed:
                assert decision["decision"] == "train" and t.state == TrialState.COMPLETE
            else:
                assert decision["decision"] == "prune" and t.state == TrialState.PRUNED
                assert attrs["prune_reason"] == where and "train" not in attrs
        trained += "train" in attrs
        pool.append(mine)
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    assert pruned, "with 9 candidates and the top 25 % some must be pruned"
    # the progress lines, the viewer and the report read the same reason
    shown = {e.trial: e.message for e in events if e.kind == "trial_finished" and e.state == "PRUNED"}
    data = load_study(open_storage(resolve_storage(storage)), "relative")
    for t in pruned:
        assert shown[t.number] == t.user_attrs["prune_reason"]
        assert data.row(t.number).reason == t.user_attrs["prune_reason"]


def test_a_chosen_predictor_ranks_in_its_own_direction(tmp_path):
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    config = study("stable", 6, screening='warmup = 1\ntop_fraction = 0.2\nscore = "stable_rank"\n'
                                         'keep_nondominated = false')
    run_study(config, storage=storage, on_trial_event=lambda e: None)
    done = sorted((t for t in trials(storage, "stable") if t.state != TrialState.WAITING), key=lambda t: t.number)
    assert len(done) == 6
    for i, t in enumerate(done[1:], start=1):
        ranks = [float(d.user_attrs["predictors"]["stable_rank"]) for d in done[:i + 1]]
        rank = 1 + sum(r > ranks[-1] for r in ranks[:-1])  # higher stable rank is better
        decision = t.user_attrs["screening"]
        assert decision["rank"] == rank and "by stable_rank" in decision["why"]
        assert (t.state == TrialState.PRUNED) == (rank > math.ceil(0.2 * (i + 1)))


def test_fewer_candidates_than_the_warm_up_train_them_all_and_say_so(tmp_path):
    events = []
    run_study(study("few", 3, screening="warmup = 5"), storage=str(tmp_path / "f.db"), on_trial_event=events.append)
    done = [t for t in trials(str(tmp_path / "f.db"), "few") if t.state != TrialState.WAITING]
    assert len(done) == 3 and all(t.state == TrialState.COMPLETE and "train" in t.user_attrs for t in done)
    start = next(e.message for e in events if e.kind == "study")
    end = next(e.message for e in events if e.kind == "study_done")
    assert "the budget of 3 is within the warm-up of 5: every candidate trains" in start
    assert "relative screening: 3 candidate(s), fewer than the warm-up of 5: all trained" in end


def test_thresholds_policy_ignores_ranks(tmp_path):
    config = study("thr", 5, screening='policy = "thresholds"\nwarmup = 0\ntop_fraction = 0.01')
    run_study(config, storage=str(tmp_path / "t.db"), on_trial_event=lambda e: None)
    done = [t for t in trials(str(tmp_path / "t.db"), "thr") if t.state != TrialState.WAITING]
    assert len(done) == 5
    assert all(t.state == TrialState.COMPLETE and "screening" not in t.user_attrs for t in done)


def test_repeats_take_no_place_in_the_budget_and_are_told_the_earlier_result(tmp_path):
    storage = str(tmp_path / "d.journal")
    run_study(study("distinct", 3, space=FOUR, screening='policy = "thresholds"'), storage=storage,
              on_trial_event=lambda e: None)
    done = trials(storage, "distinct")
    fresh = [t for t in done if "reused_from" not in t.user_attrs]
    assert len(fresh) == 3 and len({t.user_attrs["equivalence_key"] for t in fresh}) == 3
    by_number = {t.number: t for t in done}
    for t in done:
        if "reused_from" in t.user_attrs:
            source = by_number[t.user_attrs["reused_from"]]
            assert t.user_attrs["equivalence_key"] == source.user_attrs["equivalence_key"]
            assert t.state == source.state == TrialState.COMPLETE
            assert t.values == source.values  # what the sampler was told
            assert t.params == source.params
    data = load_study(open_storage(resolve_storage(storage)), "distinct")
    summary = data.summary()
    assert summary.finished == 3 and summary.repeats == len(done) - 3


def test_a_space_smaller_than_the_budget_ends_with_space_exhausted(tmp_path):
    storage = str(tmp_path / "x.journal")
    events = []
    outcome = run_study(study("small", 10, space=FOUR, screening='policy = "thresholds"'), storage=storage,
                        on_trial_event=events.append)
    done = trials(storage, "small")
    fresh = [t for t in done if "reused_from" not in t.user_attrs]
    assert sorted(t.user_attrs["spec"] for t in fresh) == [
        "mean(b) | std(b) | affine | relu", "mean(c) | std(c) | affine | relu", "std(b) | affine | relu",
        "std(c) | affine | relu"]
    assert outcome.exhausted == 4
    assert any(e.message == "space exhausted: 4 distinct compositions" for e in events)
    assert "space exhausted: 4 distinct compositions" in next(e.message for e in events if e.kind == "study_done")
    # bounded: the worker stops after MAX_CONSECUTIVE_REPEATS repeats in a row, it does not spin
    assert len(done) - 4 >= MAX_CONSECUTIVE_REPEATS and len(done) < 4 + 3 * MAX_CONSECUTIVE_REPEATS
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in done)


def test_a_presets_only_space_is_exhausted_without_sampling(tmp_path):
    storage = str(tmp_path / "p.db")
    events = []
    outcome = run_study(study("presets", 5, space='presets = ["bn", "ln", "gn(groups=1)"]'), storage=storage,
                        on_trial_event=events.append)
    done = trials(storage, "presets")
    assert [t.user_attrs["baseline"] for t in done] == ["bn", "ln", "gn(groups=1)"]  # nothing sampled past them
    assert done[2].user_attrs["reused_from"] == 1
    assert outcome.exhausted == 2
    assert "space exhausted: 2 distinct compositions" in next(e.message for e in events if e.kind == "study_done")


def test_the_quick_study_runs_on_digits(tmp_path):
    path = Path(__file__).parent.parent / "studies" / "quick.toml"
    shipped = load_study_file(path)
    assert shipped.data.name == "digits" and shipped.screening.policy == "relative"
    text = path.read_text().replace(f"steps = {shipped.training.steps}", "steps = 3")
    config = parse_study_text(text, str(path))
    storage = f"sqlite:///{tmp_path / 'q.db'}"
    run_study(config, storage=storage, n_trials=2, on_trial_event=lambda e: None)
    study_ = optuna.load_study(study_name="quick", storage=storage)
    assert study_.user_attrs["data"] == "digits"
    done = [t for t in study_.get_trials() if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and all(t.user_attrs["train"]["steps"] == 3 for t in done)


def test_a_bad_screening_value_is_one_line_and_creates_nothing(tmp_path, normx_exe):
    path = tmp_path / "bad.toml"
    path.write_text(BASE.format(name="bad", n=2, space=PRESETS, screening="top_fraction = 2"))
    db = tmp_path / "bad.db"
    result = subprocess.run([*normx_exe, "study", "run", str(path), "--storage", str(db)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == (f"normx: error: {path}:18: screening.top_fraction: must be greater than 0 and "
                             "at most 1, got 2.0\n")
    assert not db.exists()


@pytest.mark.parametrize("line", ["warmup = 0", "top_fraction = 1", 'score = "variance_growth_rate"'])
def test_screening_values_at_the_edges_of_their_ranges_are_valid(line):
    config = study("edge", 2, screening=line)
    assert config.screening.policy == "relative"


def test_the_space_lists_its_leaves_with_the_params_that_draw_them(registry):
    from explorer.search.space import SearchSpace

    space = SearchSpace(study("four", 1, space=FOUR), registry)
    leaves = space.enumerate(100)
    assert sorted(str(c.spec) for _, c in leaves) == [
        "mean(b) | std(b) | affine | relu", "mean(c) | std(c) | affine | relu", "std(b) | affine | relu",
        "std(c) | affine | relu"]
    for params, candidate in leaves:  # enqueued, these params draw the same composition again
        assert str(space.sample(optuna.trial.FixedTrial(params)).spec) == str(candidate.spec)
    assert space.enumerate(3) is None
    quick = SearchSpace(load_study_file(Path(__file__).parent.parent / "studies" / "quick.toml"), registry)
    # 2 centers x 2 scales; axes bx, cx, x, and gx with 3 group sizes; tied axes: 2 x 2 x 6
    assert len(quick.enumerate(1000)) == 24


def test_a_worker_finds_the_compositions_its_sampler_missed(tmp_path):
    from explorer.search.claiming import unevaluated
    from explorer.search.context import prepare
    from explorer.search.storage import resolve_storage
    from explorer.search.worker import Worker

    storage = str(tmp_path / "m.db")
    config = study("missed", 2, space=FOUR, screening='policy = "thresholds"')
    run_study(config, storage=storage, on_trial_event=lambda e: None)
    worker = Worker(prepare(config), resolve_storage(storage), 4, lambda e: None)
    worker.connect()
    evaluated = {t.user_attrs["spec"] for t in trials(storage, "missed")}
    missing = unevaluated(worker.ctx, worker.study)
    assert len(evaluated) == 2 and len(missing) == 2
    drawn = {str(worker.ctx.space.sample(optuna.trial.FixedTrial(p)).spec) for p in missing}
    assert drawn | evaluated == {"mean(b) | std(b) | affine | relu", "mean(c) | std(c) | affine | relu",
                                 "std(b) | affine | relu", "std(c) | affine | relu"}


def test_the_screening_benchmark_accounts_for_both_arms(tmp_path):
    import json
    import sys

    script = Path(__file__).parent.parent / "benchmarks" / "bench_screening.py"
    out = subprocess.run([sys.executable, str(script), "--json", "--presets", "bn,none,ln,in,rms,vn", "--sampled", "1",
                          "--steps", "2", "--train-limit", "128", "--orders", "5"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    rows, (every, screened) = result["rows"], result["arms"]
    assert result["candidates"] == len(rows) == 7 and every["trained"] == 7
    assert screened["trained"] == sum(r["trained_when_screened"] for r in rows) >= result["policy"]["warmup"]
    best_all = max(r["test_accuracy"] for r in rows)
    best_screened = max(r["test_accuracy"] for r in rows if r["trained_when_screened"])
    assert result["best_of_all"] == best_all and every["regret_points"] == 0
    assert screened["regret_points"] == pytest.approx(100 * (best_all - best_screened), abs=0.01)
    assert every["train_s"] == pytest.approx(sum(r["train_s"] for r in rows), abs=0.05)
    assert result["deterministic"]  # the screened arm's runs repeat the train-all runs exactly
    for r in rows:
        assert (r["reason"] is None) == r["trained_when_screened"]
    assert [v["policy"] for v in result["replayed"]][0] == "combined (default)"


# ----------------------------------------------------------------------------- issue 24, items 13 and 14

from tiny_study import tiny_study  # noqa: E402

#: five compositions that build on the tiny study's MLP
FIVE = 'presets = ["ln", "rms", "bn", "gn(groups=4)", "bmlv"]'
MLP = "mlp(depth=2, width=16)"


@pytest.fixture
def broken_score():
    """A plugin predictor that always fails (stored NaN, its reason under ``missing``)."""
    import sys
    import textwrap

    import explorer
    from explorer.plugins import unregister

    module = type(sys)("broken_score")
    exec(textwrap.dedent("""
        from explorer import PredictorEntry, hookimpl

        def fail(batch):
            raise RuntimeError("no score here")

        @hookimpl
        def register_predictors(register):
            register(PredictorEntry(name="broken_score", direction="higher", compute=fail))
    """), module.__dict__)
    explorer.register_plugin(module, name="broken-score")
    yield "broken_score"
    unregister("broken-score")


def trained_study(name, n, screening="", objectives='test_accuracy = "maximize"', space=FIVE):
    return parse_study_text(tiny_study(name, n=n, objectives=objectives, space=space, screening=screening,
                                       training="steps = 2\nbatch_size = 16"), f"{name}.toml")


def test_what_screening_reads_is_computed_whatever_predictors_says():
    """``score = "snip"`` without snip in ``predictors`` was never computed (every candidate
    "rank 1 of N by snip"); ``predictors = []`` ranked "by combined score" without the explosion
    exponent; a threshold on a predictor not computed never pruned."""
    config = trained_study("reads", 5, 'score = "snip"\npredictors = []')
    assert config.predictor_names() == ["snip", "cosine_similarity", "grad_explosion_exponent"]
    assert trained_study("reads", 5, "predictors = []\nkeep_nondominated = false").predictor_names() == \
        ["cosine_similarity", "grad_explosion_exponent"]
    thresholds = tiny_study("t", objectives='test_accuracy = "maximize"', training="steps = 2",
                            screening='predictors = ["snip"]\npolicy = "thresholds"\nmax_cosine_similarity = 0.9')
    thresholds = thresholds.replace("reject_variance_growth = []", 'reject_variance_growth = ["exponential"]')
    assert parse_study_text(thresholds, "t.toml").predictor_names() == ["snip", "cosine_similarity", "variance_growth"]
    assert trained_study("reads", 5, 'score = "variance_growth_rate"\npredictors = ["snip"]\n'
                                     "keep_nondominated = false").predictor_names() == ["snip", "variance_growth"]
    screened_only = parse_study_text(tiny_study("s", screening='predictors = ["snip"]'), "s.toml")
    assert screened_only.predictor_names() == ["snip", "cosine_similarity"]  # the objective; no ranking without training


def test_a_score_not_listed_in_predictors_ranks_the_candidates(tmp_path):
    storage = f"sqlite:///{tmp_path / 'snip.db'}"
    config = trained_study("snip", 5, 'score = "snip"\npredictors = []\nwarmup = 1\nkeep_nondominated = false')
    run_study(config, storage=storage, on_trial_event=lambda e: None)
    done = [t for t in trials(storage, "snip") if "screening" in t.user_attrs]
    assert len(done) >= 3
    assert all(float(t.user_attrs["predictors"]["snip"]) > 0 for t in done)
    ranked = [t.user_attrs["screening"] for t in done if t.user_attrs["screening"]["rank"] is not None]
    assert {d["rank"] for d in ranked} != {1} and any(d["decision"] == "prune" for d in ranked)


def test_a_plugin_score_that_is_always_nan_trains_no_one_after_the_warm_up(tmp_path, broken_score):
    """A score NaN for every candidate ranked each one first: all trained. Now each ranks last,
    with the plugin's reason, and the reason says the score is NaN for every candidate so far."""
    storage = f"sqlite:///{tmp_path / 'nan.db'}"
    config = trained_study("nan", 5, f'score = "{broken_score}"\nwarmup = 1\nkeep_nondominated = false')
    assert broken_score in config.predictor_names()
    run_study(config, storage=storage, on_trial_event=lambda e: None)
    done = [t for t in trials(storage, "nan") if "screening" in t.user_attrs]
    assert done[0].user_attrs["screening"]["decision"] == "train"  # the warm-up
    for t in done[1:]:
        n = t.user_attrs["screening"]["of"]
        assert t.state == TrialState.PRUNED and "train" not in t.user_attrs
        assert t.user_attrs["prune_reason"] == (
            f"rank {n} of {n} by {broken_score}: score is NaN ({broken_score}: RuntimeError: no score here), as for "
            f"all {n} candidates screened so far; top 34 % trained (the top {math.ceil(0.34 * n)} of {n})")


def test_an_objective_measured_nan_at_screening_prunes_with_its_reason(tmp_path, broken_score):
    """Issue 24, item 14: ``[screening] batch_size = 1`` trained LN fully, then failed it with "an
    objective is NaN"; an objective that is a plugin predictor which raises trained every trial
    and failed it without the plugin's reason. Both are decided at screening, with the reason."""
    storage = f"sqlite:///{tmp_path / 'one.db'}"
    text = tiny_study("one", n=2, objectives='test_accuracy = "maximize"\ncosine_similarity = "minimize"',
                      space='presets = ["ln", "rms"]', training="steps = 2\nbatch_size = 16")
    run_study(parse_study_text(text.replace("batch_size = 32\n", "batch_size = 1\n", 1), "one.toml"),
              storage=storage, on_trial_event=lambda e: None)
    for t in trials(storage, "one"):
        assert t.state == TrialState.PRUNED and "train" not in t.user_attrs
        assert t.user_attrs["prune_reason"] == (f"objective cosine_similarity is NaN on {MLP}: needs batches of at "
                                                "least 2 samples, got 1")
        assert t.user_attrs["predictors"]["missing"]["stable_rank"] == "needs batches of at least 2 samples, got 1"
    storage = f"sqlite:///{tmp_path / 'plugin.db'}"
    config = trained_study("plugin", 2, objectives=f'test_accuracy = "maximize"\n{broken_score} = "maximize"',
                           space='presets = ["ln", "rms"]')
    run_study(config, storage=storage, on_trial_event=lambda e: None)
    for t in trials(storage, "plugin"):
        assert t.state == TrialState.PRUNED and "train" not in t.user_attrs
        assert t.user_attrs["prune_reason"] == (f"objective {broken_score} is NaN on {MLP}: RuntimeError: no score "
                                                "here")


def test_an_interrupted_candidate_is_not_counted_twice_at_the_end(tmp_path):
    """Issue 24, item 8: a candidate interrupted while it trained, then retried, was counted twice
    in the last line ("3 candidate(s), fewer than the warm-up of 2"), and that line said "1 fail"
    where the status line said "0 failed, 1 interrupted"."""
    store = str(tmp_path / "w.db")
    config = study("wu", 2, screening="warmup = 2")

    def interrupt(event):
        if event.kind == "stage" and event.stage == "training":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(config, storage=store, on_trial_event=interrupt)
    events = []
    run_study(config, storage=store, on_trial_event=events.append)
    end = next(e.message for e in events if e.kind == "study_done")
    assert "relative screening: 2 candidate(s), fewer than the warm-up of 2" not in end
    assert "3 candidate(s)" not in end
    assert "relative screening: 2 candidate(s), none ranked: fewer than the warm-up of 2 had trained" in end
    waiting = sum(t.state == TrialState.WAITING for t in trials(store, "wu"))
    assert end.endswith(f"done: 2/2 finished (2 complete, 0 pruned, 0 failed, 1 interrupted), {waiting} waiting"), end
    from explorer.search.storage import open_readonly
    from explorer.tui.progress import status_line

    assert status_line(load_study(open_readonly(store), "wu")).startswith("study wu: 2/2 finished (2 complete, 0 pruned, 0 failed, "
                                                           "1 interrupted), 0 running")
