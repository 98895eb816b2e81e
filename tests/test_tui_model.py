"""The viewer's data model, on real Optuna studies that these tests write (SQLite and journal files).

``write_study`` is also used by the other TUI tests and by ``benchmarks/bench_viewer.py``: it writes
trials the way ``docs/trial-schema.md`` says a norm-explorer study stores them.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from datetime import datetime, timedelta

import pytest

from explorer import Param, Primitive, hookimpl
from explorer.errors import NormxError
from explorer.search.results import (
    Objective, RowFilter, StorageError, StudyNotFoundError, StudySource, load_study, mask_password, open_readonly,
    pareto_mask, read_trials, sort_rows, study_budget,
)
from explorer.tui.formatting import format_duration
from test_search import BASE

OBJECTIVES = [{"name": "test_accuracy", "direction": "maximize"},
              {"name": "cosine_similarity", "direction": "minimize"},
              {"name": "grad_explosion_exponent", "direction": "minimize"}]
SPECS = ["mean(bx) | std(bx) | affine | relu", "mean(cx) | std(cx) | affine | relu", "mean(x) | std(x) | affine | relu",
         "mean(gx, group_size=4) | std(gx, group_size=4) | affine | relu",
         "mean(gx, group_size=16) | std(gx, group_size=16) | affine | relu",
         "root_mean_square(x) | affine | tlu", "weight_standardization | affine | relu"]
T0 = datetime(2025, 1, 1, 12, 0, 0)


def predictors_for(rng: random.Random, layers: int = 10) -> dict:
    cos = rng.uniform(0.05, 0.9)
    expl = rng.uniform(-0.02, 0.3)
    return {"cosine_similarity": cos, "grad_explosion_exponent": expl, "stable_rank": rng.uniform(1, 30),
            "activation_variance": [1.0 + 0.5 * k for k in range(layers)],
            "grad_norm": [10 ** (expl * (layers - k)) for k in range(layers)],
            "variance_growth": {"kind": "linear", "rate": 0.5}, "overflow": False,
            "spread": {"cosine_similarity": 0.01}}


def write_study(url: str, name: str = "demo", n: int = 40, seed: int = 0, running: int = 2, n_trials: int | None = None,
                objectives: list[dict] | None = None) -> None:
    """A norm-explorer-shaped study: complete, pruned (with reasons), failed and running trials."""
    import optuna
    from optuna.trial import FrozenTrial, TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = objectives or OBJECTIVES
    storage: object = url
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    study = optuna.create_study(study_name=name, storage=storage,
                                directions=[o["direction"] for o in objectives])
    # as ``normx study run`` stores them: the study file's text (n_trials at its top level) and
    # the budget of the latest run as the ``n_trials`` attribute (docs/trial-schema.md)
    budget = n_trials or n + running
    study_file = f'name = "{name}"\nmodels = ["cnn10"]\nn_trials = {budget}\n'
    study.set_user_attr("objectives", objectives)
    study.set_user_attr("study_file", study_file)
    study.set_user_attr("n_trials", budget)
    study.set_user_attr("normx_version", "0.1.0")
    study.set_user_attr("models", ["cnn10"])
    study.set_user_attr("data", "synthetic")
    rng = random.Random(seed)
    trials = []
    for number in range(n):
        spec = SPECS[number % len(SPECS)]
        predictors = predictors_for(rng)
        attrs = {"spec": spec, "equivalence_key": spec, "predictors": predictors,
                 "predictors_by_model": {"cnn10": predictors}, "worker": f"host:{100 + number % 3}"}
        kind = rng.random()
        start = T0 + timedelta(seconds=30 * number)
        values = None
        if kind < 0.2:
            state = TrialState.PRUNED
            attrs.update(stage="pruned", prune_reason=f"grad_explosion_exponent {predictors['grad_explosion_exponent']:.3f} > 0.25")
        elif kind < 0.27:
            state = TrialState.FAIL
            attrs.update(stage="failed", error="loss became nan at step 12")
        else:
            state = TrialState.COMPLETE
            acc = max(0.0, min(1.0, 0.8 - 0.6 * predictors["cosine_similarity"] - predictors["grad_explosion_exponent"]
                               + rng.gauss(0, 0.03)))
            attrs.update(stage="done", train={
                "loss_curve": [[s, 2.3 * math.exp(-s / 50)] for s in range(0, 200, 20)],
                "mean_train_accuracy": acc * 0.8, "test_accuracy": acc, "diverged": False, "diverged_step": None,
                "wall_time_s": 12.5, "device": "cpu"})
            values = [acc, predictors["cosine_similarity"], predictors["grad_explosion_exponent"]][:len(objectives)]
        trials.append(FrozenTrial(number=number, state=state, value=None, values=values, datetime_start=start,
                                  datetime_complete=start + timedelta(seconds=25), params={}, distributions={},
                                  user_attrs=attrs, system_attrs={}, intermediate_values={}, trial_id=number))
    study.add_trials(trials)
    for k in range(running):
        trial = study.ask()
        trial.set_user_attr("spec", SPECS[k % len(SPECS)])
        trial.set_user_attr("worker", f"host:{200 + k}")
        if k % 2 == 0:
            trial.set_user_attr("stage", "training")
            trial.set_user_attr("step", 40 + k)
            trial.set_user_attr("steps", 200)
            trial.set_user_attr("predictors", predictors_for(rng))
        else:
            trial.set_user_attr("stage", "screening")


@pytest.fixture(scope="module")
def study_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('tui') / 'study.db'}"
    write_study(url)
    return url


def brute_force_pareto(values, maximize):
    def dominates(a, b):
        better_eq = all((x >= y) if m else (x <= y) for x, y, m in zip(a, b, maximize))
        strictly = any((x > y) if m else (x < y) for x, y, m in zip(a, b, maximize))
        return better_eq and strictly

    return [not any(dominates(o, v) for o in values if o is not v) for v in values]


def test_rows_follow_the_trial_schema(study_url):
    data = StudySource(study_url, "demo").load()
    assert len(data.rows) == 42
    assert [o.name for o in data.objectives] == ["test_accuracy", "cosine_similarity", "grad_explosion_exponent"]
    states = {r.state for r in data.rows}
    assert states == {"complete", "pruned", "failed", "running"}
    pruned = [r for r in data.rows if r.state == "pruned"]
    assert all(r.reason.startswith("grad_explosion_exponent") for r in pruned)
    failed = [r for r in data.rows if r.state == "failed"]
    assert all("nan" in r.reason for r in failed)
    training = [r for r in data.rows if r.stage == "training"]
    assert training and training[0].progress == "training 40/200"
    complete = [r for r in data.rows if r.state == "complete"]
    assert all(r.test_accuracy == pytest.approx(r.values[0]) for r in complete)
    assert complete[0].layer_curve("activation_variance")[:3] == [1.0, 1.5, 2.0]
    assert len(complete[0].loss_curve()) == 10


def test_pareto_matches_brute_force_and_optuna(study_url):
    import optuna

    data = StudySource(study_url, "demo").load()
    complete = [r for r in data.rows if r.state == "complete"]
    expected = brute_force_pareto([r.values for r in complete], [True, False, False])
    assert [r.pareto for r in complete] == expected
    study = optuna.load_study(study_name="demo", storage=study_url)
    assert {t.number for t in study.best_trials} == {r.number for r in data.pareto_rows}
    assert not any(r.pareto for r in data.rows if r.state != "complete")


@pytest.mark.parametrize("seed", range(5))
def test_pareto_mask_on_random_points_with_ties(seed):
    rng = random.Random(seed)
    values = [[rng.randint(0, 4), rng.randint(0, 4)] for _ in range(60)]
    for maximize in itertools.product([True, False], repeat=2):
        assert pareto_mask(values, maximize) == brute_force_pareto(values, maximize)


def test_best_per_objective_and_summary(study_url):
    data = StudySource(study_url, "demo").load()
    best = data.best()
    complete = [r for r in data.rows if r.state == "complete"]
    assert best["test_accuracy"].test_accuracy == max(r.test_accuracy for r in complete)
    assert best["cosine_similarity"].cosine_similarity == min(r.cosine_similarity for r in complete)
    summary = data.summary(now=T0 + timedelta(seconds=30 * 40))
    assert summary.counts["running"] == 2
    assert summary.finished == 40 and summary.total == 42 and summary.budget == 42
    # 40 trials finished in 20 minutes -> 2 per minute; 2 left -> 1 minute
    assert summary.rate_per_min == pytest.approx(2.0)
    assert summary.eta_s == pytest.approx(60.0)
    assert [r.progress for r in summary.running] == ["training 40/200", "screening"]


def test_sort_puts_blanks_last_both_ways(study_url):
    data = StudySource(study_url, "demo").load()
    for reverse in (False, True):
        rows = sort_rows(data.rows, "test_accuracy", reverse)
        accs = [r.test_accuracy for r in rows]
        present = [a for a in accs if a is not None]
        assert present == sorted(present, reverse=reverse)
        assert accs[len(present):] == [None] * (len(accs) - len(present))
    assert [r.number for r in data.select(sort_key="number", reverse=True)][:2] == [41, 40]


def test_filter_terms(study_url):
    data = StudySource(study_url, "demo").load()
    assert {r.state for r in data.select("state=pruned")} == {"pruned"}
    high = data.select("acc>0.5")
    assert high and all(r.test_accuracy > 0.5 for r in high)
    assert all("gx" in r.spec for r in data.select("spec~gx"))
    assert {r.number for r in data.select("pareto")} == {r.number for r in data.pareto_rows}
    both = data.select("tlu state=complete")
    assert both and all("tlu" in r.spec and r.state == "complete" for r in both)
    assert data.select("no-such-thing") == []
    assert RowFilter("cos<=0.2")(data.rows[0]) == (data.rows[0].cosine_similarity <= 0.2)


def test_series(study_url):
    data = StudySource(study_url, "demo").load()
    points = data.tradeoff_points()
    with_predictors = [r for r in data.rows if r.predictors]
    assert len(points) == len(with_predictors)
    assert all(acc is None for x, y, acc, row in points if row.state != "complete")
    pts = data.predictor_points("cosine_similarity", "test_accuracy")
    assert len(pts) == sum(r.state == "complete" for r in data.rows)


def test_journal_storage_reads_and_refreshes(tmp_path):
    path = tmp_path / "study.log"
    write_study(f"journal:{path}", n=10, running=1)
    source = StudySource(str(path), "demo")  # a bare .log path is a journal storage
    assert len(source.load().rows) == 11
    write_study(f"journal:{path}", name="other", n=3, running=0)
    assert len(source.load().rows) == 11
    assert StudySource(f"journal:///{path}", "other").load().rows[0].number == 0


def test_non_finite_predictors_stored_as_strings(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="nf", storage=url)
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        user_attrs={"spec": "weight_norm | relu", "stage": "pruned", "prune_reason": "overflow",
                    "predictors": {"cosine_similarity": "nan", "grad_explosion_exponent": "inf", "overflow": True}}))
    data = StudySource(url, "nf").load()
    row = data.rows[0]
    assert math.isnan(row.cosine_similarity) and row.grad_explosion_exponent == math.inf
    assert data.tradeoff_points() == []  # not plottable, but listed
    assert [r.number for r in data.select("state=pruned")] == [0]


def test_missing_study_lists_the_studies(study_url):
    with pytest.raises(StudyNotFoundError) as err:
        StudySource(study_url, "dmeo")
    assert "no study named 'dmeo'" in str(err.value) and "studies: demo" in str(err.value)
    assert isinstance(err.value, NormxError)


def test_storage_errors_are_one_line_and_mask_passwords(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(StorageError, match="no SQLite storage file"):
        open_readonly(f"sqlite:///{missing}")
    assert not missing.exists()  # reading never creates a database
    with pytest.raises(StorageError, match="no journal storage file"):
        open_readonly(f"journal:///{tmp_path / 'missing.log'}")
    with pytest.raises(StorageError) as err:
        open_readonly("postgresql://alice:s3cret@127.0.0.1:9/studies")
    message = str(err.value)
    assert "s3cret" not in message and "alice:***@127.0.0.1" in message and "\n" not in message
    (tmp_path / "plain.db").write_bytes(b"")
    with pytest.raises(StorageError, match="not an Optuna storage"):
        open_readonly(str(tmp_path / "plain.db"))
    assert mask_password("mysql+pymysql://u:p@w@h/db") == "mysql+pymysql://u:***@h/db"


def test_viewer_never_writes(study_url, tmp_path):
    path = study_url.removeprefix("sqlite:///")
    before = open(path, "rb").read()
    storage = open_readonly(study_url)
    from optuna.exceptions import StorageInternalError

    with pytest.raises(StorageInternalError) as refused:  # read-only at the SQLite level
        storage.set_study_user_attr(storage.get_study_id_from_name("demo"), "x", 1)
    assert "attempt to write a readonly database" in str(refused.value.__cause__)
    load_study(storage, "demo")
    assert open(path, "rb").read() == before


def test_budget_from_study_attrs():
    assert study_budget({"n_trials": 7}) == 7
    assert study_budget({"study_file": "name='x'\n[search]\nn_trials = 30\n"}) == 30
    assert study_budget({"study_file": "not toml ["}) is None
    assert study_budget({}) is None
    assert format_duration(125) == "2m05s" and format_duration(None) == "-"
    assert Objective("a", "maximize").maximize


def test_rdb_reader_reads_what_optuna_reads(tmp_path):
    """The viewer's fast reader returns the same trials as Optuna's get_all_trials."""
    import optuna

    url = f"sqlite:///{tmp_path / 'same.db'}"
    write_study(url, n=12, running=1)
    study = optuna.load_study(study_name="demo", storage=url)
    extra = study.ask({"axes": optuna.distributions.CategoricalDistribution(["bx", "cx"]),
                       "group_size": optuna.distributions.IntDistribution(1, 16, log=True)})
    study.tell(extra, [float("inf"), float("-inf")][: len(study.directions)] + [0.5] * (len(study.directions) - 2))
    storage = open_readonly(url)
    study_id = storage.get_study_id_from_name("demo")
    fast, slow = read_trials(storage, study_id), storage.get_all_trials(study_id, deepcopy=False)
    assert [t.number for t in fast] == [t.number for t in slow] and len(fast) == 14
    for a, b in zip(fast, slow):
        assert (a.state, a.values, a.user_attrs, a.params, a.datetime_start, a.datetime_complete) == \
               (b.state, b.values, b.user_attrs, b.params, b.datetime_start, b.datetime_complete), a.number
    assert fast[-1].params and fast[-1].values[0] == float("inf")


@pytest.fixture
def far_from_utc(monkeypatch):
    """A local time zone hours away from UTC (Optuna 5 stores naive UTC and returns local time)."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_rdb_reader_gives_local_times_like_optuna(tmp_path, far_from_utc):
    """The fast reader is the one used on SQLite, and its datetimes are Optuna's local ones, not UTC."""
    from explorer.search.results import RawTrialRow

    url = f"sqlite:///{tmp_path / 'tz.db'}"
    write_study(url, n=4, running=1)
    storage = open_readonly(url)
    study_id = storage.get_study_id_from_name("demo")
    fast, slow = read_trials(storage, study_id), storage.get_all_trials(study_id, deepcopy=False)
    assert all(isinstance(t, RawTrialRow) for t in fast)
    assert [(t.datetime_start, t.datetime_complete) for t in fast] == \
           [(t.datetime_start, t.datetime_complete) for t in slow]
    running = next(r for r in load_study(storage, "demo").rows if r.state == "running")
    assert running.started == next(t.datetime_start for t in slow if t.number == running.number)


# ----------------------------------------------------------------------------- a study the runner wrote

#: test_search's study on two models, with the cosine threshold and a broken plugin's composition
REAL = BASE.format(
    name="real", n=5, steps=3, screening="max_cosine_similarity = 0.78",
    space='presets = ["bn", "ln", "rms", "none", "vn", "gn(group_size=2)", "mean(c) | broken_scale(c)"]',
).replace('models = ["mlp(depth=2, width=16)"]', 'models = ["mlp(depth=2, width=16)", "mlp(depth=4, width=8)"]')


class BrokenPlugin:
    """A third-party scale step that raises: its trials must end failed, with the error, and the
    study must go on."""

    @hookimpl
    def register_primitives(self, register):
        from torch import nn

        class BrokenScale(nn.Module):
            def __init__(self, channels, axes="c"):
                super().__init__()

            def forward(self, x3):
                raise RuntimeError("broken plugin: no statistic here")

        register(Primitive(name="broken_scale", slot="scale", factory=BrokenScale, formula="raises",
                           params=(Param("axes", "axes", None),), positional=("axes",)))


@pytest.fixture(scope="module")
def real_study(tmp_path_factory):
    """``run_study`` on two models, with the cosine threshold and a broken plugin; the file's
    budget is 5 and the run's ``n_trials`` 7 (as ``--n-trials 7``): the storage's budget wins."""
    from explorer.plugins import register, unregister
    from explorer.search import run_study
    from explorer.search.study_file import parse_study_text

    url = f"sqlite:///{tmp_path_factory.mktemp('real') / 'real.db'}"
    register(BrokenPlugin(), name="broken-plugin")
    try:
        run_study(parse_study_text(REAL, "real.toml"), storage=url, n_trials=7, on_trial_event=lambda event: None)
    finally:
        unregister("broken-plugin")
    return url


def test_a_study_the_runner_wrote(real_study):
    import optuna

    data = StudySource(real_study, "real").load()
    trials = {t.number: t for t in optuna.load_study(study_name="real", storage=real_study).trials}
    rows = {r.number: r for r in data.rows}
    assert len(rows) == 7 and data.budget() == 7 and data.summary().budget == 7  # the run's, not the file's 5
    assert [o.name for o in data.objectives] == ["test_accuracy", "cosine_similarity"]
    by_spec = {r.spec: r for r in data.rows}
    # the broken plugin: failed with its error, counted as finished, and the study went on
    broken = by_spec["mean(c) | broken_scale(c)"]
    assert broken.state == "failed" and broken.stage == "failed"
    assert "broken plugin: no statistic here" in broken.reason
    # the cosine threshold, on the worst of the two models
    for row in data.rows:
        if row.state in ("failed",):
            continue
        by_model = trials[row.number].user_attrs["predictors_by_model"]
        assert set(by_model) == {"mlp(depth=2, width=16)", "mlp(depth=4, width=8)"}
        worst = max(p["cosine_similarity"] for p in by_model.values())
        assert row.cosine_similarity == pytest.approx(worst)
        if worst > 0.78:
            assert row.state == "pruned" and "screening.max_cosine_similarity" in row.reason
            model = max(by_model, key=lambda m: by_model[m]["cosine_similarity"])
            assert row.reason.endswith(f"on {model}")
            assert not row.train
        else:
            assert row.state == "complete" and row.pareto is not None
            per_model = trials[row.number].user_attrs["train_by_model"]
            assert row.test_accuracy == min(t["test_accuracy"] for t in per_model.values())  # worst model
            assert row.values == (pytest.approx(row.test_accuracy), pytest.approx(worst))
    summary = data.summary()
    assert summary.counts["failed"] == 1 and summary.finished == 7
    assert summary.counts["pruned"] == sum(1 for r in data.rows if r.state == "pruned") >= 1
    complete = [r for r in data.rows if r.state == "complete"]
    assert len(complete) >= 2
    # the Pareto front against brute force and Optuna's own
    assert [r.pareto for r in complete] == brute_force_pareto([r.values for r in complete], [True, False])
    assert {t.number for t in optuna.load_study(study_name="real", storage=real_study).best_trials} == \
        {r.number for r in data.pareto_rows}
    # "best": highest accuracy, the earliest trial among equals; lowest cosine similarity
    best = data.best()
    top = max(r.test_accuracy for r in complete)
    assert best["test_accuracy"].number == min(r.number for r in complete if r.test_accuracy == top)
    assert best["cosine_similarity"].number == min(complete, key=lambda r: r.cosine_similarity).number


def test_non_finite_objective_values_stay_off_the_pareto_front(tmp_path):
    """A complete trial whose accuracy is inf would dominate every other one: it is not on the
    front, and the front is that of the finite trials."""
    import optuna

    url = f"sqlite:///{tmp_path / 'inf.db'}"
    write_study(url, n=12, running=0)
    study = optuna.load_study(study_name="demo", storage=url)
    trial = study.ask()
    trial.set_user_attr("stage", "done")
    study.tell(trial, [math.inf, 0.0, 0.0])
    data = StudySource(url, "demo").load()
    inf_row = data.row(trial.number)
    assert inf_row.state == "complete" and not inf_row.pareto
    finite_rows = [r for r in data.rows if r.state == "complete" and r.number != trial.number]
    assert [r.pareto for r in finite_rows] == brute_force_pareto([r.values for r in finite_rows], [True, False, False])
    assert any(r.pareto for r in finite_rows)
    assert data.best()["test_accuracy"].number != trial.number  # nor is it the best accuracy


# ----------------------------------------------------------------------------- hand-made trials, one behaviour each


def hand_study(tmp_path, trials, directions=("maximize",), user_attrs=None, name="hand"):
    """A real SQLite study holding ``trials``: (state, values, user_attrs, start offset s, duration s or None)."""
    import optuna
    from optuna.trial import FrozenTrial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    study = optuna.create_study(study_name=name, storage=url, directions=list(directions))
    for key, value in (user_attrs or {}).items():
        study.set_user_attr(key, value)
    frozen = []
    for number, (state, values, attrs, start, duration) in enumerate(trials):
        begin = None if start is None else T0 + timedelta(seconds=start)
        end = None if begin is None or duration is None else begin + timedelta(seconds=duration)
        frozen.append(FrozenTrial(number=number, state=state, value=None, values=values, datetime_start=begin,
                                  datetime_complete=end, params={}, distributions={}, user_attrs=attrs,
                                  system_attrs={}, intermediate_values={}, trial_id=number))
    study.add_trials(frozen)
    return url


def test_row_states_stages_and_reasons(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [
        (S.FAIL, None, {"stage": "training", "spec": "bn"}, 0, 5),            # Ctrl-C mid-training
        (S.FAIL, None, {"stage": "failed", "error": "boom"}, 0, 5),
        (S.FAIL, None, {"error": "lost"}, 0, 5),                             # no stage: a failure
        (S.COMPLETE, [0.5], {}, 0, 5),
        (S.PRUNED, None, {"prune_reason": "too steep", "error": "ignored"}, 0, 5),
        (S.COMPLETE, [0.1], {"train": {"diverged": True, "diverged_step": 7}}, 0, 5),
        (S.COMPLETE, [0.2], {"train": {"diverged": True, "diverged_step": 7}, "prune_reason": "kept"}, 0, 5),
        (S.WAITING, None, {"retry_of": 0}, None, None),
        (S.RUNNING, None, {"stage": "training", "step": 5, "steps": "many", "reused_from": "x",
                           "worker": "h:1"}, 0, None),
        (S.RUNNING, None, {"stage": "training", "step": "5", "reused_from": 2}, 0, None),
        (S.COMPLETE, [0.3], {"stage": "", "spec": None, "worker": None, "reused_from": 3}, 0, 5),
    ])
    rows = StudySource(url, "hand").load().rows
    assert [(r.state, r.stage) for r in rows] == [
        ("interrupted", "training"), ("failed", "failed"), ("failed", "failed"), ("complete", "done"),
        ("pruned", "pruned"), ("complete", "done"), ("complete", "done"), ("waiting", ""),
        ("running", "training"), ("running", "training"), ("complete", "done")]
    assert [r.reason for r in rows[1:7]] == ["boom", "lost", "", "too steep", "diverged at step 7", "kept"]
    assert rows[5].diverged and not rows[3].diverged
    assert (rows[8].step, rows[8].steps, rows[8].reused_from, rows[8].worker) == (5, None, None, "h:1")
    assert (rows[9].step, rows[9].reused_from, rows[9].worker) == (None, 2, "")
    assert (rows[10].spec, rows[10].worker, rows[10].reused_from) == ("", "", 3)
    assert [r.progress for r in rows[7:10]] == ["waiting", "training 5", "training"]
    assert rows[0].progress == "training" and rows[3].progress == "done"
    assert rows[7].user_attrs == {"retry_of": 0} and rows[7].params == {} and rows[7].completed is None


def test_row_values_durations_and_curves(tmp_path):
    from optuna.trial import TrialState as S

    good = {"predictors": {"variance_growth": {"kind": "exponential", "rate": "inf"},
                           "activation_variance": [1, "nan", None], "grad_norm": "not a list"},
            "train": {"mean_train_accuracy": 0.25, "test_accuracy": "0.5",
                      "loss_curve": [[0, 2.0], [10, "nan"], [20], "x", (30, None), [40, 1.0, 9]]}}
    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5], good, 0, 90.5),
        (S.COMPLETE, [0.4], {"predictors": {"variance_growth": "linear"}, "train": {"loss_curve": "none"}}, 0, 0),
        (S.WAITING, None, {}, None, None),
    ])
    rows = StudySource(url, "hand").load().rows
    a, b, waiting = rows
    assert a.variance_growth_rate == math.inf and a.variance_growth_kind == "exponential"
    assert b.variance_growth_rate is None and b.variance_growth_kind == ""
    assert waiting.variance_growth_kind == "" and waiting.variance_growth_rate is None
    assert a.mean_train_accuracy == 0.25 and a.test_accuracy == 0.5 and b.mean_train_accuracy is None
    assert a.value("mean_train_accuracy") == 0.25 and a.value("variance_growth_rate") == math.inf
    assert a.duration_s == pytest.approx(90.5) and b.duration_s == 0.0 and waiting.duration_s is None
    curve = a.layer_curve("activation_variance")
    assert curve[0] == 1.0 and math.isnan(curve[1]) and curve[2] is None and len(curve) == 3
    assert a.layer_curve("grad_norm") == [] and a.layer_curve("missing") == []
    loss = a.loss_curve()
    assert [p[0] for p in loss] == [0.0, 10.0, 30.0] and loss[0][1] == 2.0 and math.isnan(loss[1][1])
    assert loss[2][1] is None and b.loss_curve() == [] and waiting.loss_curve() == []


def test_a_running_trial_lasts_until_now(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [(S.RUNNING, None, {"stage": "screening"}, 0, None)])
    row = StudySource(url, "hand").load().rows[0]
    assert row.duration_s == pytest.approx((datetime.now() - T0).total_seconds(), abs=60)
    row.started = datetime.now() + timedelta(hours=1)  # a clock that went back: never negative
    assert row.duration_s == 0.0


def test_sort_ties_by_trial_number_and_blank_text_last(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5], {"spec": "b", "train": {"test_accuracy": 0.5}}, 0, 1),
        (S.COMPLETE, [0.7], {"spec": "", "train": {"test_accuracy": 0.7}}, 0, 1),
        (S.COMPLETE, [0.5], {"spec": "a", "train": {"test_accuracy": 0.5}}, 0, 1),
        (S.COMPLETE, [0.5], {"spec": "b", "train": {"test_accuracy": "nan"}}, 0, 1),
    ])
    rows = StudySource(url, "hand").load().rows
    assert [r.number for r in sort_rows(rows, "test_accuracy")] == [0, 2, 1, 3]
    assert [r.number for r in sort_rows(rows, "test_accuracy", reverse=True)] == [1, 2, 0, 3]
    assert [r.number for r in sort_rows(rows, "spec")] == [2, 0, 3, 1]
    assert [r.number for r in sort_rows(rows, "spec", reverse=True)] == [3, 0, 2, 1]


def test_column_names_and_aliases():
    from explorer.search.results import column_key

    assert column_key(" ACC ") == "test_accuracy" and column_key("#") == "number"
    assert column_key("Worker") == "worker" and column_key("cos") == "cosine_similarity"
    assert column_key("nope") is None and column_key("") is None


def test_filter_operators_on_numbers_text_blanks_and_flags(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5], {"spec": "mean(bx) | relu", "worker": "hostA:1",
                             "predictors": {"cosine_similarity": 0.5}, "train": {"test_accuracy": 0.5}}, 0, 1),
        (S.COMPLETE, [0.7], {"spec": "rms(x) | tlu", "predictors": {"cosine_similarity": 0.25},
                             "train": {"test_accuracy": 0.7}}, 0, 1),
        (S.PRUNED, None, {"spec": "mean(gx) | relu", "prune_reason": "steep explosion",
                          "predictors": {"cosine_similarity": "nan"}}, 0, 1),
    ])
    data = StudySource(url, "hand").load()

    def numbers(text):
        return [r.number for r in data.select(text)]

    assert numbers("cos=0.5") == [0] and numbers("cos!=0.5") == [1, 2]  # NaN differs from every number
    assert numbers("cos>0.25") == [0] and numbers("cos>=0.25") == [0, 1]
    assert numbers("cos<0.5") == [1] and numbers("cos<=0.5") == [0, 1] and numbers("cos~0.25") == [1]
    assert numbers("acc>0") == [0, 1] and numbers("acc!=0.7") == [0, 2]  # a blank is != anything
    assert numbers("acc=0.7") == [1] and numbers("acc<1") == [0, 1]
    assert numbers("#>=1") == [1, 2] and numbers("n=2") == [2] and numbers("trial<1") == [0]
    assert numbers("spec=mean") == [0, 2] and numbers("SPEC=Mean(BX)") == [0]  # a prefix, any case
    assert numbers("spec!=mean") == [1] and numbers("spec~RELU") == [0, 2] and numbers("spec>a") == []
    assert numbers("state=pruned") == [2] and numbers("state!=pruned") == [0, 1]
    assert numbers("worker=hosta") == [0] and numbers("worker!=hosta") == [1, 2]
    assert numbers("reason~steep") == [2] and numbers("cos=abc") == []
    assert numbers("pareto") == numbers("*") == numbers("★") == numbers("PARETO") == [1]
    assert numbers("pareto=true") == [1] and numbers("pareto=false") == [0, 2] and numbers("pareto!=true") == [0, 2]
    assert numbers("#1") == [1] and numbers("TLU") == [1] and numbers("explosion") == [2]
    assert numbers("nosuch=1") == [] and numbers("mean relu") == [0, 2] and numbers("") == [0, 1, 2]
    assert numbers("done") == [0, 1]  # the progress column's text


def test_best_breaks_ties_by_the_earliest_trial_and_skips_diverged_and_infinite(tmp_path):
    from optuna.trial import TrialState as S

    diverged = {"train": {"diverged": True, "diverged_step": 3}}
    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5, 0.3], {}, 0, 1),
        (S.COMPLETE, [0.7, 0.3], {}, 0, 1),
        (S.COMPLETE, [0.7, 0.1], {}, 0, 1),
        (S.COMPLETE, [0.9, 0.0], diverged, 0, 1),      # would be best at both, and dominate everything
        (S.COMPLETE, [math.inf, -math.inf], {}, 0, 1),  # likewise
        (S.COMPLETE, [0.2, 0.1], {}, 0, 1),
        (S.COMPLETE, [0.8, 0.5], {}, 0, 1),
        (S.PRUNED, None, {}, 0, 1),
    ], directions=("maximize", "minimize"),
        user_attrs={"objectives": [{"name": "test_accuracy", "direction": "maximize"},
                                   {"name": "cosine_similarity", "direction": "minimize"}]})
    data = StudySource(url, "hand").load()
    best = data.best()
    assert best["test_accuracy"].number == 6 and best["cosine_similarity"].number == 2
    assert [r.number for r in data.pareto_rows] == [2, 6]
    data.rows[6].values = (0.7, 0.1)  # ties at the top: the earliest trial is the best, both ways
    data.rows[5].values = (0.2, 0.1)
    best = data.best()
    assert best["test_accuracy"].number == 1 and best["cosine_similarity"].number == 2
    assert data.summary().best == best and data.summary().diverged == 1


def test_pareto_front_excludes_diverged_and_non_finite_trials_and_is_reset(tmp_path):
    from optuna.trial import TrialState as S

    from explorer.search.results.study_data import mark_pareto

    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5, 0.5], {}, 0, 1),
        (S.COMPLETE, [0.9, 0.1], {"train": {"diverged": True}}, 0, 1),
        (S.COMPLETE, [-math.inf, 0.0], {}, 0, 1),
        (S.COMPLETE, [0.4, 0.4], {}, 0, 1),
    ], directions=("maximize", "minimize"))
    data = StudySource(url, "hand").load()
    assert [r.pareto for r in data.rows] == [True, False, False, True]
    assert [o.name for o in data.objectives] == ["objective 0", "objective 1"]
    data.rows[2].values = (0.6, 0.3)  # becomes finite and dominates the rest
    data.rows[3].state = "running"
    mark_pareto(data.rows, data.objectives)
    assert [r.pareto for r in data.rows] == [False, False, True, False]
    data.rows[2].values = (0.6,)  # not one value per objective: not a result
    mark_pareto(data.rows, data.objectives)
    assert [r.pareto for r in data.rows] == [True, False, False, False]
    assert pareto_mask([[1.0, 2.0]], [True, False]) == [True]
    assert pareto_mask([], [True]) == [] and pareto_mask([[1.0], [1.0]], [False]) == [True, True]


def test_summary_counts_the_budget_repeats_rate_and_eta(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5], {}, 0, 30),
        (S.PRUNED, None, {"stage": "pruned"}, 30, 30),
        (S.FAIL, None, {"stage": "failed"}, 60, 60),                  # ends last, at 120 s
        (S.COMPLETE, [0.5], {"reused_from": 0}, 100, 0),              # a repeat: no place in the budget
        (S.FAIL, None, {"stage": "training"}, 10, 5),                 # interrupted: not finished
        (S.WAITING, None, {}, None, None),
        (S.COMPLETE, [0.1], {"train": {"diverged": True}}, 0, 10),
        (S.PRUNED, None, {"reused_from": 1}, 100, 5),                 # a repeat too
        (S.FAIL, None, {"stage": "failed", "reused_from": 2}, 100, 5),  # and a failed one
    ], user_attrs={"n_trials": 10})
    source = StudySource(url, "hand")
    data = source.load()
    assert source.storage_url == url and source.study_name == "hand"
    assert data.name == "hand" and 0 < data.load_seconds < 60
    assert data.is_running and data.row(5).state == "waiting" and data.row(99) is None
    summary = data.summary(now=T0 + timedelta(hours=5))  # nothing runs: elapsed ends at the last end
    assert summary.counts == {"complete": 3, "running": 0, "pruned": 2, "failed": 2, "interrupted": 1,
                              "waiting": 1}
    assert (summary.total, summary.repeats, summary.finished, summary.diverged) == (9, 3, 4, 1)
    assert summary.elapsed_s == pytest.approx(120.0) and summary.rate_per_min == pytest.approx(2.0)
    assert summary.budget == 10 and summary.eta_s == pytest.approx(180.0) and summary.running == []
    assert data.summary(budget=6).eta_s == pytest.approx(60.0)
    assert data.summary(budget=3).eta_s == 0.0 and data.summary(budget=0).budget == 0
    assert data.summary(budget=0).eta_s == 0.0


def test_summary_of_a_running_study_runs_until_now(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5], {}, 0, 30),
        (S.RUNNING, None, {"stage": "screening"}, 60, None),
        (S.RUNNING, None, {"stage": "training", "step": 1, "steps": 4}, 30, None),
    ])
    data = StudySource(url, "hand").load()
    summary = data.summary(now=T0 + timedelta(seconds=120))
    assert summary.elapsed_s == pytest.approx(120.0) and summary.rate_per_min == pytest.approx(0.5)
    assert summary.budget is None and summary.eta_s is None and summary.finished == 1
    assert [r.number for r in summary.running] == [1, 2]
    assert data.summary(now=T0 + timedelta(seconds=120), budget=3).eta_s == pytest.approx(240.0)
    assert data.summary(now=T0 - timedelta(seconds=10)).elapsed_s == 0.0  # never negative
    assert data.summary(now=T0 - timedelta(seconds=10)).rate_per_min is None
    assert data.is_running and [o.name for o in data.objectives] == ["value"]


def test_summary_without_results_has_no_rate(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [(S.WAITING, None, {}, None, None)], user_attrs={"n_trials": 2})
    summary = StudySource(url, "hand").load().summary()
    assert (summary.elapsed_s, summary.rate_per_min, summary.eta_s, summary.finished) == (None, None, None, 0)
    url = hand_study(tmp_path, [(S.COMPLETE, [1.0], {}, 0, 0)], user_attrs={"n_trials": 2}, name="instant")
    summary = StudySource(url, "instant").load().summary()
    assert summary.elapsed_s == 0.0 and summary.rate_per_min is None and summary.eta_s is None
    url = hand_study(tmp_path, [(S.COMPLETE, [1.0], {}, 0, 0.5)], user_attrs={"n_trials": 2}, name="fast")
    summary = StudySource(url, "fast").load().summary()  # half a second is a rate: 120 a minute
    assert summary.rate_per_min == pytest.approx(120.0) and summary.eta_s == pytest.approx(0.5)
    url = hand_study(tmp_path, [(S.RUNNING, None, {}, 0, None)], user_attrs={"n_trials": 2}, name="started")
    summary = StudySource(url, "started").load().summary(now=T0 + timedelta(seconds=60))
    assert summary.elapsed_s == pytest.approx(60.0) and summary.rate_per_min is None and summary.eta_s is None


def test_budget_sources_in_order():
    assert study_budget({"n_trials": 3, "budget": 5}) == 3
    assert study_budget({"n_trials": True, "budget": 5}) == 5  # a flag is no budget
    assert study_budget({"n_trials": "7", "budget": False}) is None
    assert study_budget({"n_trials": "7", "study_file": "n_trials = 4\n"}) == 4
    assert study_budget({"study_file": "n_trials = 9\n[x]\nn_trials = 2\n"}) == 9
    assert study_budget({"study_file": 'name = "x"\nmodels = ["a"]\n[a]\nb = 1\n[a.c]\nn_trials = 6\n'}) == 6
    assert study_budget({"study_file": "n_trials = true\n"}) is None
    assert study_budget({"study_file": "name = 'x'\n"}) is None and study_budget({"study_file": ""}) is None
    assert study_budget({"study_file": 12}) is None


def test_objective_names_stored_or_defaulted(tmp_path):
    from optuna.trial import TrialState as S

    from explorer.search.results import load_studies

    url = hand_study(tmp_path, [(S.COMPLETE, [1.0, 2.0, 3.0, 4.0], {}, 0, 1)], name="three",
                     directions=("maximize", "minimize", "minimize", "maximize"),
                     user_attrs={"objectives": [{"name": "acc"}, "oops", {"direction": "minimize"}]})  # fewer
    data = StudySource(url, "three").load()
    assert [(o.name, o.direction.optuna) for o in data.objectives] == [
        ("acc", "maximize"), ("objective 1", "minimize"), ("objective 2", "minimize"), ("objective 3", "maximize")]
    assert [o.maximize for o in data.objectives] == [True, False, False, True]
    import optuna

    optuna.create_study(study_name="later", storage=url)
    assert [s.name for s in load_studies(open_readonly(url))] == ["three", "later"]


def test_plot_series_keep_only_finite_points(tmp_path):
    from optuna.trial import TrialState as S

    url = hand_study(tmp_path, [
        (S.COMPLETE, [0.5], {"predictors": {"cosine_similarity": 0.2, "grad_explosion_exponent": 0.1},
                             "train": {"test_accuracy": 0.5}}, 0, 1),
        (S.COMPLETE, [0.5], {"predictors": {"cosine_similarity": 0.3, "grad_explosion_exponent": 0.0},
                             "train": {"test_accuracy": "nan"}}, 0, 1),
        (S.PRUNED, None, {"predictors": {"cosine_similarity": 0.4, "grad_explosion_exponent": "inf"}}, 0, 1),
        (S.PRUNED, None, {"predictors": {"cosine_similarity": "nan", "grad_explosion_exponent": 0.2}}, 0, 1),
    ])
    data = StudySource(url, "hand").load()
    assert [(x, y, acc, row.number) for x, y, acc, row in data.tradeoff_points()] == [(0.2, 0.1, 0.5, 0),
                                                                                       (0.3, 0.0, None, 1)]
    assert [(x, y, row.number) for x, y, row in data.predictor_points("cosine_similarity")] == [(0.2, 0.5, 0)]
    assert [(x, y, row.number) for x, y, row in data.predictor_points("grad_explosion_exponent")] == [(0.1, 0.5, 0)]
