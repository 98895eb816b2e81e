"""Studies end to end on real storages: space from the registry, dedup, pruning, resume, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from tiny_study import tiny_study

import explorer
from explorer import Primitive, hookimpl
from explorer.search import run_study
from explorer.search.space import SearchSpace
from explorer.search.storage import StorageError, mask_password, open_storage, resolve_storage
from explorer.search.study_file import parse_study_text


#: The study these tests run, a template (``{name}``, ``{n}``, ``{space}``, ``{screening}``, ``{steps}``):
#: two objectives (one trained), 96 training examples; test_tui_model and test_screening_study reuse it.
BASE = tiny_study("{name}", n="{n}",  # type: ignore[arg-type]
                  objectives='test_accuracy = "maximize"\ncosine_similarity = "minimize"', space="{space}",
                  screening="{screening}", training="steps = {steps}\nbatch_size = 32").replace(
    "train_limit = 64", "train_limit = 96")


def study(name="s", n=4, space='presets = ["bn"]', screening="", steps=3):
    return parse_study_text(BASE.format(name=name, n=n, space=space, screening=screening, steps=steps), f"{name}.toml")


def quiet(event):
    pass


def trials(storage, name):
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


class MeanAbs:
    """A third-party plugin: a scale primitive the study never names."""

    @hookimpl
    def register_primitives(self, register):
        import torch
        from torch import nn

        class MeanAbsScale(nn.Module):
            def __init__(self, channels, axes="c"):
                super().__init__()
                self.axes = axes

            def forward(self, x3):
                return x3.abs().mean(dim=(1, 2), keepdim=True) + 1e-5

        register(Primitive(name="mean_abs", slot="scale", factory=MeanAbsScale, formula="/ mean|x|"))


def test_space_comes_from_the_registry_with_third_party_primitives(registry):
    from explorer.plugins import register, unregister

    config = study(space='[space.slots]\nscale = ["*"]\n[space.params]\naxes = ["c"]')
    before = SearchSpace(config, registry).slot_choices["scale"]
    assert "mean_abs" not in before and {"std", "root_mean_square"} <= set(before)
    register(MeanAbs(), name="mean-abs-plugin")
    try:
        from explorer.plugins import get_registry

        space = SearchSpace(config, get_registry())
        assert "mean_abs" in space.slot_choices["scale"]
        candidate = space.sample(optuna.trial.FixedTrial({"scale": "mean_abs"}))
        assert str(candidate.spec) == "mean_abs"
    finally:
        unregister("mean-abs-plugin")


def test_group_size_is_asked_only_with_group_axes(registry):
    config = study(space='[space.slots]\ncenter = ["mean"]\n[space.params]\naxes = ["cx", "gx"]\ngroup_size = [2, 4]')
    space = SearchSpace(config, registry)
    s = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = s.ask()
        candidate = space.sample(trial)
        axes = trial.params["center.mean.axes"]
        assert ("center.mean.group_size" in trial.params) == (axes == "gx")
        seen.add(str(candidate.spec))
        s.tell(trial, 0.0)
    assert seen == {"mean(cx)", "mean(gx, group_size=2)", "mean(gx, group_size=4)"}


def test_invalid_composition_is_rejected_with_the_reason(registry):
    config = study(space='[space.slots]\ncenter = ["mean"]\n[space.params]\naxes = ["g"]\ngroup_size = [1]')
    candidate = SearchSpace(config, registry).sample(optuna.trial.FixedTrial({}))
    assert candidate.spec is None
    assert "invalid composition 'mean(axes=g, group_size=1)'" in candidate.invalid
    assert "nothing to normalize over" in candidate.invalid


def test_study_runs_dedups_records_the_schema_and_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    config = study(name="e2e", n=3, space='presets = ["ln", "bn", "gn(groups=1)", "vn", "rms"]')
    outcome = run_study(config, storage=storage, on_trial_event=quiet)
    # the budget counts distinct compositions: the repeat of LayerNorm (trial 2) takes no place in it
    assert outcome.created and outcome.counts == {"COMPLETE": 4, "WAITING": 1}
    done = {t.number: t for t in trials(storage, "e2e")}
    # gn(groups=1) is LayerNorm: its results are reused, not recomputed
    assert done[2].user_attrs["spec"] == done[0].user_attrs["spec"] == "mean(cx) | std(cx) | affine | relu"
    assert done[2].user_attrs["reused_from"] == 0 and done[2].values == done[0].values
    attrs = done[0].user_attrs
    assert attrs["stage"] == "done" and attrs["spec"] == "mean(cx) | std(cx) | affine | relu"
    # the default predictors (the paper's four and the parameter-count baseline), with their directions
    assert set(attrs["predictors"]) == {"cosine_similarity", "grad_explosion_exponent", "stable_rank",
                                        "activation_variance", "grad_norm", "variance_growth", "overflow", "spread",
                                        "parameter_count", "missing", "directions"}
    assert attrs["predictors"]["directions"]["cosine_similarity"] == "lower" and attrs["predictors"]["missing"] == {}
    data = explorer.load_dataset("gaussian", "train", limit=4)
    built = explorer.create_model(config.models[0], attrs["spec"], num_classes=data.num_classes,
                                  in_channels=int(data.x.shape[1]))
    assert attrs["predictors"]["parameter_count"] == sum(p.numel() for p in built.parameters())
    assert set(attrs["train"]) >= {"loss_curve", "mean_train_accuracy", "test_accuracy", "diverged",
                                   "diverged_step", "wall_time_s", "device"}
    assert attrs["steps"] == 3 and attrs["step"] == 3 and ":" in attrs["worker"]
    assert done[0].values == [attrs["train"]["test_accuracy"], attrs["predictors"]["cosine_similarity"]]
    study_attrs = optuna.load_study(study_name="e2e", storage=storage).user_attrs
    assert study_attrs["objectives"][0] == {"name": "test_accuracy", "direction": "maximize"}
    assert study_attrs["models"] == ["mlp(depth=2, width=16)"] and study_attrs["data"] == "gaussian"
    # Running again with a larger budget resumes: the waiting baseline first, nothing recomputed.
    outcome = run_study(config, storage=storage, n_trials=4, on_trial_event=quiet)
    assert not outcome.created and outcome.counts == {"COMPLETE": 5}
    assert trials(storage, "e2e")[4].user_attrs["baseline"] == "rms"


def test_screening_prunes_with_the_reason_and_never_trains(tmp_path):
    storage = str(tmp_path / "p.db")
    config = study(name="prune", n=2, space='presets = ["bn", "ln"]', screening="max_grad_explosion = -100.0")
    events = []
    run_study(config, storage=storage, on_trial_event=events.append)
    for t in trials(f"sqlite:///{storage}", "prune"):
        assert t.state == TrialState.PRUNED and t.user_attrs["stage"] == "pruned"
        assert "gradient explosion exponent" in t.user_attrs["prune_reason"]
        assert "screening.max_grad_explosion" in t.user_attrs["prune_reason"]
        assert "train" not in t.user_attrs and "predictors" in t.user_attrs
    assert not [e for e in events if e.kind == "progress"]


def test_journal_storage_with_two_worker_processes_keeps_the_budget(tmp_path):
    storage = str(tmp_path / "w.journal")
    config = study(name="journal", n=5, space='[space.slots]\ncenter = ["none", "mean"]\nscale = ["std", "root_mean_square"]\n'
                                              '[space.params]\naxes = ["b", "c"]')
    events = []
    run_study(config, storage=storage, workers=2, on_trial_event=events.append)
    loaded = trials(open_storage(resolve_storage(storage)), "journal")
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in loaded)
    # the budget counts distinct compositions: exactly 5 evaluated, repeats (if the sampler drew any) told theirs
    fresh = [t for t in loaded if "reused_from" not in t.user_attrs]
    assert len(fresh) == 5 and len({t.user_attrs["equivalence_key"] for t in fresh}) == 5
    assert {e.kind for e in events} >= {"stage", "trial_finished", "worker_done"}  # events crossed processes
    # Two processes, not one: each worker reports itself done, with its own host:pid, and every
    # trial was run by one of them.
    done = [e.worker for e in events if e.kind == "worker_done"]
    assert len(done) == 2 and len(set(done)) == 2, done
    assert {e.worker.rsplit(":", 1)[1] for e in events if e.kind == "worker_done"} != {str(os.getpid())}
    assert {t.user_attrs["worker"] for t in loaded} <= set(done)
    ran = sum(int(e.message.split()[1]) for e in events if e.kind == "worker_done")
    assert ran == len(loaded)  # "ran N trial(s)" (repeats included): the budget was shared, not run twice


def test_unreachable_storage_is_one_line_with_the_password_masked(normx_exe, tmp_path):
    url = "postgresql+psycopg2://normx:s3cret-pw@127.0.0.1:9/nodb"
    assert mask_password(url) == "postgresql+psycopg2://normx:***@127.0.0.1:9/nodb"
    with pytest.raises(StorageError) as info:
        open_storage(url)
    assert "s3cret-pw" not in str(info.value) and "normx:***@" in str(info.value)
    path = tmp_path / "s.toml"
    path.write_text(BASE.format(name="x", n=1, space='presets = ["bn"]', screening="", steps=1))
    result = subprocess.run([*normx_exe, "study", "run", str(path), "--storage", url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("normx: error: cannot open storage")


def test_ctrl_c_records_the_trial_as_interrupted_and_the_next_run_resumes(tmp_path, normx_exe):
    db = tmp_path / "c.db"
    path = tmp_path / "c.toml"
    path.write_text(BASE.format(name="ctrlc", n=2, space='presets = ["ln", "bn"]', screening="", steps=100000))
    proc = subprocess.Popen([*normx_exe, "study", "run", str(path), "--storage", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "training" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    url = f"sqlite:///{db}"
    first = trials(url, "ctrlc")
    assert first[0].state == TrialState.FAIL and first[0].user_attrs["stage"] == "interrupted"
    retry = [t for t in first if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    # what the viewer and the reports make of it: interrupted (not a result), its retry waiting
    from explorer.search.results import load_study, open_readonly

    view = load_study(open_readonly(url), "ctrlc")
    assert view.row(0).state == "interrupted" and view.row(retry[0].number).state == "waiting"
    summary = view.summary()
    assert summary.counts["interrupted"] == 1 and summary.counts["failed"] == 0 and summary.finished == 0
    # The next run resumes: the interrupted baseline is retried, the budget is kept.
    path.write_text(path.read_text().replace("steps = 100000", "steps = 2"))
    result = subprocess.run([*normx_exe, "study", "run", str(path), "--storage", str(db)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "resumed" in result.stdout
    after = trials(url, "ctrlc")
    finished = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(finished) == 2
    assert {t.user_attrs["baseline"] for t in finished} == {"ln", "bn"}


def test_pareto_and_validate_from_the_cli(tmp_path, normx_exe):
    db = tmp_path / "v.db"
    config = study(name="val", n=6, space='presets = ["bn", "ln", "vn", "gn(group_size=2)", "rms", "none"]', steps=4)
    run_study(config, storage=str(db), on_trial_event=quiet)
    out = subprocess.run([*normx_exe, "study", "pareto", "val", "--storage", str(db), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    front = json.loads(out.stdout)
    complete = [t for t in trials(f"sqlite:///{db}", "val") if t.state == TrialState.COMPLETE]

    def dominates(a, b):  # maximize accuracy, minimize cosine
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    assert front
    for row in front:
        mine = [row["values"]["test_accuracy"], row["values"]["cosine_similarity"]]
        assert not any(dominates(t.values, mine) for t in complete)
    out = subprocess.run([*normx_exe, "study", "validate", "val", "--storage", str(db), "--json", "--resamples", "200"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # every stored predictor (the paper's, the parameter-count baseline) and the combined score, two measures each
    assert result["trials"] == 6
    ranked = {p["predictor"] for p in result["pairs"]}
    assert {"cosine_similarity", "grad_explosion_exponent", "stable_rank", "variance_growth_rate",
            "parameter_count", "combined"} <= ranked
    assert len(result["pairs"]) == 2 * len(ranked) == 2 * len(result["ranking"])
    from scipy import stats

    rows = {t.number: t.user_attrs for t in complete}
    xs = [rows[n]["predictors"]["cosine_similarity"] for n in sorted(rows)]
    ys = [rows[n]["train"]["mean_train_accuracy"] for n in sorted(rows)]
    pair = next(p for p in result["pairs"] if p["predictor"] == "cosine_similarity" and p["measure"] == "mean_train_accuracy")
    assert len(set(xs)) > 1 and len(set(ys)) > 1  # six distinct normalizers: τ is defined
    assert pair["kendall_tau"] is not None
    assert pair["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(xs, ys)[0])
    low, high = pair["kendall_tau"]["ci"]
    assert -1 <= low <= high <= 1
    spearman = pair["spearman_rho"]
    assert spearman["value"] == pytest.approx(stats.spearmanr(xs, ys)[0])
    listed = subprocess.run([*normx_exe, "study", "list", "--storage", str(db), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert [s["name"] for s in json.loads(listed.stdout)] == ["val"]


def test_compositions_equal_at_the_models_widths_reuse_results(tmp_path):
    """On 16-channel layers a group size of 16 is LayerNorm, and group_size=4 is groups=4."""
    storage = f"sqlite:///{tmp_path / 'eq.db'}"
    config = study(name="eq", n=4, space='presets = ["ln", "gn(group_size=16)", "gn(groups=4)", "gn(group_size=4)"]')
    run_study(config, storage=storage, on_trial_event=quiet)
    done = {t.number: t for t in trials(storage, "eq")}
    assert done[1].user_attrs["spec"] != done[0].user_attrs["spec"]  # different canonical specs ...
    assert done[1].user_attrs["reused_from"] == 0 and done[1].values == done[0].values  # ... same computation
    assert done[3].user_attrs["reused_from"] == 2 and "reused_from" not in done[2].user_attrs
    assert done[0].user_attrs["equivalence_key"] == "mean(cx) | std(cx) | affine | relu"


def test_postgres_urls_name_an_installed_driver():
    """``postgresql://`` alone means psycopg 3 to SQLAlchemy 2.1; the postgres extra installs psycopg2."""
    from importlib.util import find_spec

    for url in ("postgresql://u:p@h/db", "postgres://u:p@h/db"):
        resolved = resolve_storage(url).url
        driver = "postgresql://" if find_spec("psycopg") else "postgresql+psycopg2://"
        assert resolved == driver + "u:p@h/db"
    assert resolve_storage("postgresql+psycopg://u:p@h/db").url == "postgresql+psycopg://u:p@h/db"
