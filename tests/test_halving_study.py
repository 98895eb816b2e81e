"""Successive halving in real studies: rung decisions in the worker and in the replay, two workers
promoting asynchronously, and a candidate killed between rungs resuming at its rung."""

from __future__ import annotations

import os
import re
import signal

import optuna
import pytest
from optuna.trial import TrialState
from test_reliability import load, normx, start, wait_for
from tiny_study import tiny_study

from explorer.direction import Direction
from explorer.normbench import Row, Table
from explorer.normbench.replay import Replay, halving_steps
from explorer.search import run_study
from explorer.search.halving import HalvingPolicy, promotion_decision
from explorer.search.study_file import parse_study_text

SPACE = ('presets = ["bn", "ln", "rms"]\nfixed = "affine | relu"\ntie_axes = true\n[space.slots]\n'
         'center = ["none", "mean"]\nscale = ["std", "root_mean_square"]\n[space.params]\naxes = ["bx", "cx"]')
OBJECTIVES = 'test_accuracy = "maximize"\ncosine_similarity = "minimize"'


def halving_study(name: str, n: int, steps: int = 9, screening: str = "", workers: str = "",
                  space: str = SPACE) -> str:
    return tiny_study(name, n=n, objectives=OBJECTIVES, space=space,
                      screening=f'policy = "halving"\nwarmup = 2\nkeep_nondominated = false\n{screening}',
                      training=f"steps = {steps}\nbatch_size = 16",
                      extra=f"[workers]\nheartbeat_interval = 1\ngrace_period = 3\n{workers}")


def trials_of(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def halved(tmp_path_factory):
    """A real halving study on the tiny space: 9 steps, rungs at 1, 3 and 9 steps."""
    folder = tmp_path_factory.mktemp("halving")
    config = parse_study_text(halving_study("halved", n=9), str(folder / "h.toml"))
    storage = f"sqlite:///{folder / 'h.db'}"
    run_study(config, storage=storage, n_trials=9, on_trial_event=lambda event: None)
    return config, storage, [t for t in trials_of(storage, "halved") if "reused_from" not in t.user_attrs]


def test_candidates_stop_at_a_rung_with_the_reason_or_train_to_the_end(halved):
    config, _, trials = halved
    assert HalvingPolicy.of(config.screening, 9).rungs == (1, 3, 9)
    screened = [t for t in trials if t.user_attrs.get("predictors")]
    started = [t for t in screened if (t.user_attrs.get("screening") or {}).get("decision") == "train"]
    assert all(t.user_attrs["screening"]["policy"] == "halving" for t in screened if "screening" in t.user_attrs)
    stopped = [t for t in started if t.state == TrialState.PRUNED]
    finished = [t for t in started if t.state == TrialState.COMPLETE]
    assert finished and stopped  # some went to the end, some were stopped at a rung
    for t in stopped:
        assert t.user_attrs["prune_reason"].startswith("stopped at rung ") and "train" not in t.user_attrs
        assert t.user_attrs["rungs"][-1]["decision"] == "stop"
    for t in finished:
        assert t.user_attrs["train"]["steps"] == 9
        assert [r["rung"] for r in t.user_attrs["rungs"]] == [1, 2]
        assert all(r["decision"] == "go on" for r in t.user_attrs["rungs"])
        assert [c["step"] for c in t.user_attrs["train"]["checkpoints"]][:2] == [1, 3]


def test_each_rung_decision_is_the_pareto_rule_on_what_the_rung_held_before(halved):
    """One worker, trials in order: each stored decision equals promotion_decision on the values
    stored by the trials that reached the rung before it."""
    config, _, trials = halved
    policy = HalvingPolicy.of(config.screening, 9)
    directions = [Direction.of(d) for d in config.objectives.values()]
    seen: dict[int, list[list[float]]] = {}
    decided = 0
    for t in sorted(trials, key=lambda t: t.number):
        for record in t.user_attrs.get("rungs") or []:
            values = [float(record["values"][name]) for name in config.objectives]
            expected = promotion_decision(policy, record["rung"], values, seen.setdefault(record["rung"], []),
                                          directions, list(config.objectives))
            assert (record["decision"] == "go on") == expected.train and record["why"] == expected.why
            seen[record["rung"]].append(values)
            decided += 1
    assert decided >= 4


def test_the_replay_halves_as_the_worker_did(halved):
    """Rows built from the study's own records, in the study's order: the replay's halving stops
    each candidate at the rung where the worker stopped it."""
    config, _, trials = halved
    rows, worker = [], []
    for t in sorted(trials, key=lambda t: t.number):
        attrs = t.user_attrs
        if not attrs.get("predictors") or not attrs.get("spec"):
            continue
        rungs = attrs.get("rungs") or []
        train = attrs.get("train") or {}
        checkpoints = [{"step": r["step"], **r["checkpoints"][config.models[0]]} for r in rungs]
        if train:
            checkpoints = train["checkpoints"]
        predictors = {k: float(v) for k, v in attrs["predictors"].items() if isinstance(v, (int, float))}
        rows.append(Row(spec=attrs["spec"], key=attrs["spec"], trial=t.number, predictors=predictors,
                        directions=attrs["predictors"].get("directions") or {}, screening_s=1.0,
                        checkpoints=checkpoints, test_accuracy=float(train.get("test_accuracy", 0.0)),
                        mean_train_accuracy=float(train.get("mean_train_accuracy", 0.0)), train_s=1.0,
                        steps=9, seeds={0: float(train.get("test_accuracy", 0.0))}))
        worker.append(9 if train else rungs[-1]["step"] if rungs else 0)
    table = Table("halved", {"study_file": config.text, "checkpoints": [1, 3, 9]}, rows)
    replayed = [event.step for event in halving_steps(Replay(table), config.screening, rows)]
    assert replayed == worker
    assert {0, 9} <= set(worker) and len(set(worker)) >= 3


def test_two_workers_promote_without_waiting_for_each_other(tmp_path, normx_exe):
    path = tmp_path / "two.toml"
    path.write_text(halving_study("two", n=9, steps=30))
    store = str(tmp_path / "two.db")
    result = normx(normx_exe, "study", "run", path, "--storage", store, "--workers", 2, timeout=300)
    assert result.returncode == 0, result.stderr
    trials = [t for t in trials_of(f"sqlite:///{store}", "two") if "reused_from" not in t.user_attrs]
    workers = {t.user_attrs["worker"] for t in trials if t.user_attrs.get("rungs")}
    assert len(workers) == 2  # both workers trained candidates through rungs
    # every rung decision counted the results the rung held, from either worker
    rung1 = [r for t in trials for r in t.user_attrs.get("rungs") or [] if r["rung"] == 1]
    assert sorted(r["of"] for r in rung1 if r["of"] is not None)[-1] >= 3
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert "successive halving" in result.stdout


def test_a_candidate_killed_between_rungs_resumes_at_its_rung(tmp_path, normx_exe):
    """SIGKILL after the rung's checkpoint: the retry inherits the rung, continues from the
    checkpoint (its first progress line is past the rung) and ends as an uninterrupted run."""
    text = halving_study("rel", n=1, steps=6000, screening="eta = 10\nmin_steps = 600", space='presets = ["bn"]')
    (tmp_path / "rel.toml").write_text(text)
    store = str(tmp_path / "runs.db")
    victim = start(normx_exe, "study", "run", tmp_path / "rel.toml", "--storage", store)
    trials = wait_for(lambda ts: any(t.state == TrialState.RUNNING and "checkpoint" in t.user_attrs for t in ts),
                      store, timeout=240)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    killed = next(t for t in trials if "checkpoint" in t.user_attrs)
    result = normx(normx_exe, "study", "run", tmp_path / "rel.toml", "--storage", store, timeout=300)
    assert result.returncode == 0, result.stderr
    done = [t for t in load(store) if t.state == TrialState.COMPLETE]
    assert len(done) == 1
    retry = done[0]
    assert retry.system_attrs.get("failed_trial") == killed.number
    assert [r["rung"] for r in retry.user_attrs["rungs"]] == [1]
    steps = [int(m) for m in re.findall(rf"trial {retry.number}: step (\d+)/6000", result.stdout)]
    assert steps and min(steps) > 600, result.stdout[-2000:]  # nothing retrained from step 0
    # the same composition run uninterrupted in another study: the same run
    (tmp_path / "ref.toml").write_text(text.replace('name = "rel"', 'name = "ref"'))
    assert normx(normx_exe, "study", "run", tmp_path / "ref.toml", "--storage", store).returncode == 0
    reference = next(t for t in trials_of(f"sqlite:///{store}", "ref") if t.state == TrialState.COMPLETE)
    mine, theirs = retry.user_attrs["train"], reference.user_attrs["train"]
    assert mine["steps"] == theirs["steps"] == 6000
    assert mine["test_accuracy"] == pytest.approx(theirs["test_accuracy"], abs=1e-6)
    assert mine["mean_train_accuracy"] == pytest.approx(theirs["mean_train_accuracy"], abs=1e-6)
    assert [p[0] for p in mine["loss_curve"]] == [p[0] for p in theirs["loss_curve"]]
    assert [p[1] for p in mine["loss_curve"]] == pytest.approx([p[1] for p in theirs["loss_curve"]], rel=1e-4)
    artifacts = tmp_path / "runs.db.normx-artifacts"
    assert not [p for p in artifacts.rglob("*") if p.is_file()]  # a finished candidate's checkpoint is removed


def test_the_views_say_which_rung_each_candidate_reached_and_why_it_stopped(halved):
    from explorer.search.results import StudySource
    from explorer.search.results.export import report_data
    from explorer.tui.tables import halving_table

    _, storage, trials = halved
    data = StudySource(storage, "halved").load()
    by_number = {r.number: r for r in data.rows}
    for t in trials:
        row = by_number[t.number]
        reached = len(t.user_attrs.get("rungs") or []) + ("train" in t.user_attrs)
        if (t.user_attrs.get("screening") or {}).get("policy") == "halving":
            assert row.rung == reached
        if t.user_attrs.get("prune_reason", "").startswith("stopped at rung"):
            assert row.progress == f"pruned at rung {reached}" and row.reason.startswith("stopped at rung")
    records = {r["number"]: r for r in report_data(data, resamples=10)["trials"]}
    assert {records[t.number]["rung"] for t in trials if "rungs" in t.user_attrs} <= {1, 2, 3}
    table = halving_table(data)
    assert table is not None and table.row_count == 4  # rung 0 (screening) to rung 3 (the full run)
    reached = [int(v) for v in table.columns[1]._cells]
    assert reached == sorted(reached, reverse=True) and reached[0] == len([r for r in data.rows if r.predictors
                                                                            and r.reused_from is None])
