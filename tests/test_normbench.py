"""NormBench: tables, their build (resumable after a kill), and searches replayed on them.

The replay is checked on a hand-made table whose answers are known in closed form; the build and
the policy's fidelity on real (tiny) studies: the replay's decisions are the study worker's.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time

import optuna
import pytest
from tiny_study import tiny_study

from explorer.normbench import Row, Table, TableError, load
from explorer.normbench.build import build_table, default_checkpoints, noise_sample, table_study
from explorer.normbench.replay import (Replay, oracle, random_search, replay, replay_fronts, screening_decisions,
                                       summarize)
from explorer.search.study_file import parse_study_text
from explorer.spec import parse_spec

TINY = tiny_study(
    "tiny", objectives='test_accuracy = "maximize"\ncosine_similarity = "minimize"',
    space=('presets = ["bn", "ln", "rms"]\nfixed = "affine | relu"\ntie_axes = true\n[space.slots]\n'
           'center = ["none", "mean"]\nscale = ["std", "root_mean_square"]\n[space.params]\naxes = ["bx", "cx"]'),
    screening='policy = "relative"\nwarmup = 2\ntop_fraction = 0.3\nkeep_nondominated = false',
    training="steps = STEPS\nbatch_size = 16", extra="[workers]\nheartbeat_interval = 1\ngrace_period = 3")


def hand_made(accuracies: list[float], costs: list[float], noise: dict[int, list[float]] | None = None) -> Table:
    """A table of len(accuracies) compositions (spec "c<i>"), each trained in ``costs[i]`` seconds."""
    rows = []
    for i, (acc, cost) in enumerate(zip(accuracies, costs)):
        row = Row(spec=f"c{i}", key=f"k{i}", trial=i, predictors={"cosine_similarity": float(i)},
                  directions={"cosine_similarity": "lower"}, screening_s=0.5,
                  checkpoints=[{"step": 10, "train_loss": 1.0, "mean_train_accuracy": acc, "test_accuracy": acc,
                                "train_s": cost / 2},
                               {"step": 20, "train_loss": 0.5, "mean_train_accuracy": acc, "test_accuracy": acc,
                                "train_s": cost}],
                  test_accuracy=acc, mean_train_accuracy=acc, train_s=cost, steps=20, seeds={0: acc})
        rows.append(row)
    for i, values in (noise or {}).items():
        rows[i].seeds = dict(enumerate(values))
    return Table("hand", {"study_file": TINY.replace("STEPS", "20"), "checkpoints": [10, 20]}, rows)


def test_the_noise_band_is_two_seed_deviations_of_the_top_below_the_best():
    # the top 10 % (one of 11) with three seeds: variance 1e-4; the others' noise is reported apart
    table = hand_made([0.90, 0.80, 0.89, 0.60, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], [1] * 11,
                      noise={0: [0.90, 0.91, 0.89], 1: [0.80, 0.82, 0.78], 3: [0.6, 0.1, 0.6]})
    assert table.noise_sigma == pytest.approx(0.01)
    assert table.noise_sigma_random == pytest.approx(math.sqrt((4e-4 + 1 / 12) / 2))
    assert table.band == pytest.approx(0.02)
    assert [r.spec for r in table.rows if table.in_band(r)] == ["c0", "c2"]
    assert table.band_fraction == pytest.approx(2 / 11) and table.flat  # more than 10 %: no search task


def test_the_oracle_reaches_the_band_at_the_cost_of_one_candidate():
    table = hand_made([0.5, 0.9, 0.6, 0.89], [3.0, 8.0, 1.0, 2.0], noise={0: [0.5, 0.51], 1: [0.9, 0.89]})
    trace = oracle(Replay(table), 0)
    assert table.in_band(table.rows[3])  # 0.89 is inside 2σ of 0.9, and cheaper to train
    assert trace.found == (2.0, 20.0)


def test_random_search_costs_what_its_closed_form_says():
    """K compositions inside the band among N: each one outside comes before all K with probability
    1/(K+1), so E[cost] = Σ outside costs / (K+1) + the mean cost of one inside."""
    accuracies = [0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    costs = [2.0, 4.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    table = hand_made(accuracies, costs, noise={0: [0.9, 0.9], 1: [0.9, 0.9]})
    expected = sum(costs[2:]) / 3 + (2.0 + 4.0) / 2
    runner = Replay(table)
    mean = sum(random_search(runner, seed).found[0] for seed in range(4000)) / 4000
    assert mean == pytest.approx(expected, rel=0.03)


def test_lookups_go_by_canonical_spec_or_key():
    table = hand_made([0.9], [1.0])
    assert table.row("c0") is table.rows[0] and table.row("k0") is table.rows[0]
    assert table.row("C0") is None


def test_a_table_file_round_trips_and_bad_files_are_one_line(tmp_path):
    table = hand_made([0.9, math.nan], [1.0, 2.0], noise={0: [0.9, 0.8]})
    path = table.save(tmp_path / "hand.jsonl")
    again = load(path)
    assert [r.spec for r in again.rows] == ["c0", "c1"] and math.isnan(again.rows[1].test_accuracy)
    assert again.rows[0].seeds == {0: 0.9, 1: 0.8} and again.rows[0].at(10)["train_s"] == 0.5
    assert json.loads(path.read_text().splitlines()[0])["normbench"] == 1
    (tmp_path / "bad.jsonl").write_text("{}\n")
    with pytest.raises(TableError, match="not a NormBench table"):
        load(tmp_path / "bad.jsonl")
    with pytest.raises(TableError, match="unknown table 'digitz'"):
        load("digitz")


def test_the_summary_gives_medians_and_intervals_per_strategy():
    table = hand_made([0.9, 0.5, 0.6], [1.0, 1.0, 1.0], noise={0: [0.9, 0.9]})
    summary = summarize(table, replay(table, seeds=5, strategies=["oracle", "random"]))
    assert set(summary["strategies"]) == {"oracle", "random"}
    assert summary["strategies"]["oracle"]["seconds_to_band"]["median"] == 1.0
    assert summary["strategies"]["random"]["reached"] == 1.0
    with pytest.raises(TableError, match="unknown strategy 'randm'; closest: random"):
        replay(table, seeds=1, strategies=["randm"])


def test_several_objectives_are_judged_by_the_hypervolume_covered():
    # test accuracy up, cosine similarity (= the index) down: c0 (0.5, 0) and c2 (0.9, 2) are the front
    table = hand_made([0.5, 0.4, 0.9, 0.3], [1.0, 1.0, 1.0, 1.0], noise={0: [0.5, 0.5]})
    fronts = replay_fronts(table, seeds=20)
    assert fronts["objectives"] == {"test_accuracy": "maximize", "cosine_similarity": "minimize"}
    every = fronts["strategies"]["random"]
    assert every["reached"] == 1.0 and 2.0 <= every["seconds_to_front"]["median"] <= 4.0  # needs c0 and c2


def test_a_replay_in_several_processes_gives_the_same_runs():
    table = hand_made([0.9, 0.5, 0.6, 0.7, 0.85], [1.0, 2.0, 3.0, 4.0, 5.0], noise={0: [0.9, 0.89]})
    alone = replay(table, seeds=7, strategies=["random", "default"])
    pooled = replay(table, seeds=7, strategies=["random", "default"], processes=2)
    assert {k: [t.found for t in v] for k, v in alone.items()} == {k: [t.found for t in v] for k, v in pooled.items()}


def test_default_checkpoints_are_the_rungs_of_halving():
    assert default_checkpoints(300) == [33, 100, 300] and default_checkpoints(2) == [2]


def test_a_space_too_large_to_list_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    import explorer.normbench.build as build_module

    monkeypatch.setattr(build_module, "ENUMERATION_LIMIT", 4)  # the tiny space has 8 leaves
    (tmp_path / "big.toml").write_text(TINY.replace("STEPS", "2"))
    with pytest.raises(Exception, match=r"big.toml:\d+: space: more than 4 compositions to list"):
        build_table(tmp_path / "big.toml", storage=str(tmp_path / "h.db"))
    assert not (tmp_path / "h.db").exists()


def test_a_table_needs_a_fixed_number_of_steps_and_the_accuracy():
    with pytest.raises(Exception, match="training.steps"):
        table_study(parse_study_text(TINY.replace("steps = STEPS", "epochs = 1"), "t.toml"))
    with pytest.raises(Exception, match="test_accuracy among the objectives"):
        table_study(parse_study_text(TINY.replace('test_accuracy = "maximize"\n', "").replace("STEPS", "2"), "t.toml"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real build of the tiny space (9 distinct compositions), 2 noise seeds."""
    folder = tmp_path_factory.mktemp("nb")
    (folder / "tiny.toml").write_text(TINY.replace("STEPS", "4"))
    table, path = build_table(folder / "tiny.toml", storage=str(folder / "b.db"), noise_seeds=2,
                              noise_fraction=0.2, out=folder / "tiny.jsonl")
    return folder, table, path


def test_a_build_has_every_distinct_composition_once_with_its_curve_and_noise(built):
    folder, table, path = built
    assert load(path).name == "tiny"
    specs = {r.spec for r in table.rows}
    # 2 centers x 2 scales x 2 axes, bn and ln among them, and rms (its affine has no bias)
    assert len(table.rows) == len(specs) == 9
    assert str(parse_spec("bn")) in specs and table.row(str(parse_spec("rms"))) is not None
    for row in table.trained:
        assert [c["step"] for c in row.checkpoints] == [1, 4] and row.checkpoints[-1]["test_accuracy"] == row.test_accuracy
        assert row.screening_s > 0 and row.train_s > 0 and {"snip", "naswot", "cosine_similarity"} <= set(row.predictors)
    noisy = [r for r in table.rows if len(r.seeds) == 2]
    assert len(noisy) == len(noise_sample(table.rows, 0.2, 0)) == 4  # the top 2 and 2 drawn
    assert table.metadata["checkpoints"] == [1, 4] and table.metadata["compositions"] == 9
    assert table.metadata["cpu"] and table.metadata["torch"]


def test_the_replayed_policy_decides_as_the_study_worker_did(built, tmp_path):
    """The same compositions in the same order: a real study with the relative policy, and the
    replay's decisions on the table's rows."""
    folder, table, _ = built
    # a cosine threshold at the table's median similarity: some candidates are pruned by the
    # thresholds, the rest by the relative policy's rank
    cosine = sorted(r.predictors["cosine_similarity"] for r in table.trained)[len(table.trained) // 2]
    config = parse_study_text(TINY.replace("STEPS", "4").replace('name = "tiny"', 'name = "policy"')
                              .replace('policy = "relative"', f'policy = "relative"\nmax_cosine_similarity = {cosine}'),
                              "p.toml")
    from explorer.search import run_study

    storage = f"sqlite:///{tmp_path / 'p.db'}"
    run_study(config, storage=storage, n_trials=6, on_trial_event=lambda event: None)
    trials = [t for t in optuna.load_study(study_name="policy", storage=storage).trials
              if t.user_attrs.get("predictors") and "reused_from" not in t.user_attrs]
    worker = ["train" in t.user_attrs for t in trials]
    # the replay reads the study's own records (the table's rows are those of another study's run)
    from explorer.normbench.build import _row

    rows = [_row(t) for t in trials]
    assert screening_decisions(Replay(table), config.screening, rows) == worker
    assert False in worker and True in worker  # both decisions were taken
    assert any("max_cosine_similarity" in str(t.user_attrs.get("prune_reason")) for t in trials)


def test_a_killed_build_resumes_without_training_a_finished_composition_again(tmp_path, normx_exe):
    (tmp_path / "tiny.toml").write_text(TINY.replace("STEPS", "400"))
    store = str(tmp_path / "k.db")
    command = [*normx_exe, "table", "build", str(tmp_path / "tiny.toml"), "--storage", store, "--noise-seeds", "1",
               "--out", str(tmp_path / "k.jsonl")]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    done: list[int] = []
    while time.monotonic() < deadline and not done:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{store}").trials
        except Exception:  # noqa: BLE001 - not created yet, or a write in progress
            continue
        done = [t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert done, "no composition finished within 300 s"
    finished_before = {t.number: t.user_attrs["train"]["wall_time_s"]
                       for t in optuna.load_study(study_name="tiny", storage=f"sqlite:///{store}").trials
                       if t.state == optuna.trial.TrialState.COMPLETE}
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{store}").trials
    for number, seconds in finished_before.items():  # kept as they were, not run again
        assert trials[number].user_attrs["train"]["wall_time_s"] == seconds
    trained = [t.user_attrs["equivalence_key"] for t in trials if "train" in t.user_attrs and "reused_from" not in t.user_attrs]
    assert len(trained) == len(set(trained)) == 9
    assert len(load(tmp_path / "k.jsonl").rows) == 9


def test_the_table_commands(built, tmp_path, normx_exe):
    folder, table, path = built

    def normx(*args):
        return subprocess.run([*normx_exe, "table", *map(str, args)], capture_output=True, text=True, timeout=600)

    listed = normx("list", "--json")
    assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list)
    shown = normx("show", path, "--json", "--resamples", "100")
    assert shown.returncode == 0, shown.stderr
    predictors = {e["predictor"] for e in json.loads(shown.stdout)["correlations"]}
    assert {"cosine_similarity", "parameter_count", "combined"} <= predictors
    replayed = normx("replay", path, "--seeds", "3", "--json", "--plots", tmp_path / "figs")
    assert replayed.returncode == 0, replayed.stderr
    summary = json.loads(replayed.stdout)
    assert {"oracle", "random", "tpe+hyperband", "default", "relative:parameter_count"} <= set(summary["strategies"])
    assert (tmp_path / "figs" / "replay_tiny.png").exists() and summary["fronts"]["strategies"]["random"]["runs"] == 3
    text = normx("replay", path, "--seeds", "2", "--strategies", "oracle,random")
    assert text.returncode == 0 and "oracle" in text.stdout
    for args, message in [(("show", "nosuch"), "unknown table 'nosuch'"),
                          (("replay", path, "--seeds", "0"), "--seeds must be at least 1"),
                          (("replay", path, "--strategies", "randm"), "unknown strategy 'randm'; closest: random")]:
        bad = normx(*args)
        assert bad.returncode == 2 and bad.stderr.strip().startswith(f"normx: error: {message}"), bad.stderr
