"""Resuming a study with a study file that changes what a trial measures is refused (issue 24,
item 12): trials of two networks, two data sets or two training recipes never mix in one front.
What decides how much runs and where (budget, workers, sampler, policy, thresholds, device) may
change. Real SQLite and journal storages; the refusal through the real ``normx`` command."""

from __future__ import annotations

import subprocess

import optuna
import pytest
from optuna.trial import TrialState
from tiny_study import tiny_study

from explorer.search import run_study
from explorer.search.optuna_study import StudyMismatchError, create_or_load_study
from explorer.search.schema import StudyAttr
from explorer.search.storage import open_storage, resolve_storage
from explorer.search.study_file import parse_study_text

PRESETS = 'presets = ["ln", "rms"]'


def text(name="r", n=2, **kw):
    kw.setdefault("space", PRESETS)
    return tiny_study(name, n=n, **kw)


def quiet(event):
    pass


def load(storage, name):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=open_storage(resolve_storage(storage)))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_resuming_with_other_models_is_refused_naming_the_difference(tmp_path, normx_exe, kind):
    """The reported case: ``models`` changed between runs, the trials of both networks went into
    one front while the stored ``models`` still named the first one."""
    storage = tmp_path / ("r.db" if kind == "sqlite" else "r.journal")
    path = tmp_path / "r.toml"
    path.write_text(text())
    first = subprocess.run([*normx_exe, "study", "run", str(path), "--storage", str(storage)],
                           capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    path.write_text(text(n=4).replace("mlp(depth=2, width=16)", "mlp(depth=3, width=16)"))
    before = storage.read_bytes()
    second = subprocess.run([*normx_exe, "study", "run", str(path), "--storage", str(storage)],
                            capture_output=True, text=True, timeout=180)
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr == (
        f'normx: error: {path}:2: models: study \'r\' was run with models = ["mlp(depth=2, width=16)"]; this file '
        'says ["mlp(depth=3, width=16)"]: its trials would not be comparable with the earlier ones; use a new '
        "study name (name = ...) or another storage\n")
    assert storage.read_bytes() == before  # nothing written: no trial, no attribute
    study = load(str(storage), "r")
    assert len(study.trials) == 2 and study.user_attrs["models"] == ["mlp(depth=2, width=16)"]


@pytest.mark.parametrize("edit, key, shown", [
    ({"text": ("train_limit = 64", "train_limit = 48")}, "data.train_limit", "64; this file says 48"),
    ({"text": ('name = "gaussian"', 'name = "synthetic"')}, "data.name", '"gaussian"; this file says "synthetic"'),
    ({"text": ("[objectives]", "seed = 7\n[objectives]")}, "seed", "0; this file says 7"),
    ({"screening": "seeds = 2"}, "screening.seeds", "1; this file says 2"),
    ({"text": ("batch_size = 32", "batch_size = 16")}, "screening.batch_size", "32; this file says 16"),
    ({"text": ("batches = 1", "batches = 2")}, "screening.batches", "1; this file says 2"),
    ({"screening": 'predictors = ["default", "snip"]'}, "screening.predictors", "this file says"),
    ({"training": "steps = 3\nbase_lr = 0.05"}, "training.base_lr", "0.1; this file says 0.05"),
    ({"training": "steps = 3\naugment = false"}, "training.augment", "true; this file says false"),
    ({"training": "epochs = 1"}, "training.steps", "3; this file says not set (and training.epochs)"),
])
def test_every_setting_that_changes_a_measurement_is_refused(tmp_path, edit, key, shown):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    training = "steps = 3" if key.startswith("training") else "steps = 0"
    objectives = 'test_accuracy = "maximize"' if key.startswith("training") else 'cosine_similarity = "minimize"'
    run_study(parse_study_text(text(training=training, objectives=objectives), "s.toml"), storage=storage,
              on_trial_event=quiet)
    changed = text(n=3, training=edit.get("training", training), screening=edit.get("screening", ""),
                   objectives=objectives)
    if "text" in edit:
        changed = changed.replace(*edit["text"])
    with pytest.raises(StudyMismatchError) as info:
        run_study(parse_study_text(changed, "s.toml"), storage=storage, on_trial_event=quiet)
    message = str(info.value)
    assert f": {key}: study 'r' was run with {key} = " in message and shown in message, message
    assert message.endswith("use a new study name (name = ...) or another storage")
    assert len(load(storage, "r").trials) == 2


def test_what_decides_how_much_runs_and_where_may_change(tmp_path):
    """Budget, sampler, description, workers, policy and its thresholds, device and compilation:
    the trials measure the same thing, the resume runs."""
    storage = f"sqlite:///{tmp_path / 'ok.db'}"
    run_study(parse_study_text(text(n=1), "ok.toml"), storage=storage, on_trial_event=quiet)
    assert [t.state for t in load(storage, "r").trials] == [TrialState.COMPLETE, TrialState.WAITING]
    changed = text(n=2, screening="max_grad_explosion = 5.0\nprune_overflow = false\npolicy = \"thresholds\"\n"
                                  "warmup = 1\ntop_fraction = 0.5\nkeep_nondominated = false\ncompile = false",
                   training="steps = 0\ndevice = \"cpu\"\ncompile = false",
                   extra='[workers]\nheartbeat_interval = 5\nmax_retry = 1').replace(
        "n_trials = 2", 'n_trials = 2\nsampler = "random"\ndescription = "more"')
    outcome = run_study(parse_study_text(changed, "ok.toml"), storage=storage, on_trial_event=quiet)
    assert not outcome.created
    trials = load(storage, "r").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert trials[1].user_attrs["spec"].startswith("root_mean_square(cx)")


def test_a_study_without_results_takes_the_new_settings(tmp_path):
    """Nothing measured yet (the first run stopped before any trial ended): nothing to compare
    with, so the file's settings become the study's."""
    storage = open_storage(resolve_storage(f"sqlite:///{tmp_path / 'e.db'}"))
    create_or_load_study(parse_study_text(text(), "e.toml"), storage)
    wider = parse_study_text(text().replace("width=16", "width=8"), "e.toml")
    study, created = create_or_load_study(wider, storage)
    assert not created and study.user_attrs[StudyAttr.SETTINGS]["models"] == ["mlp(depth=2, width=8)"]
    study.enqueue_trial({})
    trial = study.ask()
    study.tell(trial, 0.5)
    with pytest.raises(StudyMismatchError, match=r'models = \["mlp\(depth=2, width=8\)"\]; this file says'):
        create_or_load_study(parse_study_text(text(), "e.toml"), storage)


def test_a_study_from_an_earlier_version_is_checked_on_its_models_and_data(tmp_path):
    """A study created before the settings were stored holds only ``models`` and ``data``: those
    are checked, and the settings are stored from then on."""
    storage = open_storage(resolve_storage(f"sqlite:///{tmp_path / 'old.db'}"))
    study = optuna.create_study(study_name="r", storage=storage, directions=["minimize"])
    for key, value in ((StudyAttr.OBJECTIVES, [{"name": "cosine_similarity", "direction": "minimize"}]),
                       (StudyAttr.MODELS, ["mlp(depth=2, width=16)"]), (StudyAttr.DATA, "gaussian")):
        study.set_user_attr(key, value)
    study.tell(study.ask(), 0.5)
    with pytest.raises(StudyMismatchError, match=r'data.name: study \'r\' was run with data.name = "gaussian"'):
        create_or_load_study(parse_study_text(text().replace('name = "gaussian"', 'name = "digits"'), "o.toml"),
                             storage)
    same = parse_study_text(text(training="steps = 0\nbase_lr = 0.5"), "o.toml")
    loaded, _ = create_or_load_study(same, storage)
    assert loaded.user_attrs[StudyAttr.SETTINGS]["training.base_lr"] == 0.5
    with pytest.raises(StudyMismatchError, match="training.base_lr"):
        create_or_load_study(parse_study_text(text(), "o.toml"), storage)


def test_a_space_that_offers_other_choices_for_a_drawn_parameter_is_refused(tmp_path, normx_exe):
    """Optuna keeps a parameter's choices for a study's life: widening a slot failed every new
    trial ("CategoricalDistribution does not support dynamic value space"), each one taking a place
    in the budget. Refused with the parameter named; a new slot is fine."""
    space = 'fixed = "mean(cx) | std(cx)"\n[space.slots]\nactivation = {}'
    path = tmp_path / "sp.toml"
    db = tmp_path / "sp.db"

    def run(activations, extra="", n=2):
        path.write_text(text("sp", n=n, space=space.format(activations) + extra))
        return subprocess.run([*normx_exe, "study", "run", str(path), "--storage", str(db)],
                              capture_output=True, text=True, timeout=180)

    assert run('["relu", "gelu"]').returncode == 0
    wider = run('["relu", "gelu", "silu"]', n=4)
    assert wider.returncode == 2 and wider.stdout == ""
    assert wider.stderr == (
        f'normx: error: {path}:13: space: study \'sp\' drew activation from ["relu", "gelu"]; this file (with the '
        'plugins installed now) offers ["relu", "gelu", "silu"]: an Optuna study keeps a parameter\'s choices for '
        "its whole life; use a new study name (name = ...) or another storage\n")
    grown = run('["relu", "gelu"]', extra='\naffine = ["none", "affine"]', n=4)
    assert grown.returncode == 0, grown.stderr
    trials = load(str(db), "sp").trials
    assert not [t for t in trials if t.state == TrialState.FAIL]
    assert {t.state for t in trials} == {TrialState.COMPLETE}
