"""Bad input found by the adversarial pass (issue 13): one line, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess

import pytest
from tiny_study import tiny_study


def test_cpu_out_of_memory_is_one_line(normx_exe):
    result = subprocess.run([*normx_exe, "spec", "bn", "--width", "100000000", "--batch", "100000"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("normx: error: out of memory on the CPU; use a smaller --batch-size, "
                                     "--width or model")


def test_score_out_of_memory_is_one_line(normx_exe):
    result = subprocess.run([*normx_exe, "score", "bn", "--model", "mlp(depth=2, width=16)", "--data", "gaussian",
                             "--batch-size", "100000000", "--batches", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("normx: error:")


def bad_study(training: str = "steps = 0", **kwargs: str) -> str:
    return tiny_study("bad", training=training, **kwargs)


def one_line(capsys, argv, *fragments):
    from explorer.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("normx: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    from explorer.search import run_study
    from explorer.search.study_file import parse_study_text

    db = tmp_path_factory.mktemp("bad") / "bad.db"
    run_study(parse_study_text(bad_study(), "bad.toml"), storage=str(db),
              on_trial_event=lambda event: None)
    return db


@pytest.mark.parametrize("value", [-5, 0, 1, 99])
def test_validate_resamples_must_make_an_interval(capsys, finished_study, value):
    """Item 16 of the first pass: ``--bootstrap -5`` was a traceback, ``--bootstrap 0`` printed
    [+nan, +nan]; issue 24, item 15: ``--bootstrap 1`` printed a "95 % CI" [+0.78, +0.78] that
    excluded τ. The option has one name in every command, ``--resamples``, and at least 100."""
    one_line(capsys, ["study", "validate", "bad", "--storage", finished_study, "--resamples", value],
             "--resamples must be at least 100")


@pytest.mark.parametrize("spec, words", [
    ("batch_mean_penalty(strength=nan)", "must be a finite number, got nan"),
    ("ln | batch_mean_penalty(strength=-1e308)", "must be at least 0"),
    ("regnorm(strength=inf)", "must be a finite number, got inf"),
    ("mean(cx) | std(cx, eps=inf) | relu", "'eps' must be a finite number, got inf"),
])
def test_non_finite_or_negative_parameters_are_refused(capsys, spec, words):
    """Item 18: non-finite and negative strengths were accepted."""
    one_line(capsys, ["spec", spec], words)


@pytest.mark.parametrize("training, words", [
    ("steps = 3\nbase_lr = inf", "training.base_lr: must be a finite number, got inf"),
    ("steps = 3\nepochs = nan", "training.epochs: must be a finite number"),
    ("steps = 3\nepochs = 1", "training.epochs: give steps or epochs, not both"),
])
def test_study_file_numbers_must_be_finite_and_consistent(capsys, tmp_path, training, words):
    """Items 18, 19: ``base_lr = inf`` ran; ``steps`` and ``epochs`` together ignored ``epochs``."""
    path = tmp_path / "bad.toml"
    path.write_text(bad_study(training))
    one_line(capsys, ["study", "run", path, "--storage", tmp_path / "never.db"], words)
    assert not (tmp_path / "never.db").exists()


def test_an_empty_storage_is_a_mistake(capsys, tmp_path, monkeypatch):
    """Item 19: ``--storage ''`` silently used ./normx.db (and created it)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.toml"
    path.write_text(bad_study())
    for argv in (["study", "run", path, "--storage", ""], ["study", "list", "--storage", " "],
                 ["report", "bad", "--storage", ""], ["view", "bad", "--storage", ""]):
        with pytest.raises(SystemExit) as exit_info:
            from explorer.cli import main

            main([str(a) for a in argv])
        assert exit_info.value.code == 2
        assert "empty storage" in capsys.readouterr().err
    path.write_text('storage = ""\n' + bad_study())
    one_line(capsys, ["study", "run", path], "bad.toml:1: storage: empty storage")
    assert list(tmp_path.iterdir()) == [path]


def test_a_long_spec_is_not_echoed_whole(capsys):
    """Item 19: a 10,000-character spec was echoed whole in its error."""
    for spec in ("bn|" * 3000, "z" * 10000, "mean(bx" + "x" * 10000):
        line = one_line(capsys, ["spec", spec])
        assert len(line) < 600, len(line)
        assert "characters" in line or "…" in line


def test_batch_statistics_with_a_training_batch_of_one_are_pruned_with_the_reason(tmp_path):
    """Item 21: ``training.batch_size = 1`` failed every batch-statistics trial at training time."""
    import optuna
    from optuna.trial import TrialState

    from explorer.search import run_study
    from explorer.search.study_file import parse_study_text

    text = bad_study("steps = 2\nbatch_size = 1", objectives='test_accuracy = "maximize"', space='presets = ["bn", "ln"]')
    config = parse_study_text(text, "bad.toml")
    db = tmp_path / "one.db"
    run_study(config, storage=str(db), n_trials=2, on_trial_event=lambda event: None)
    trials = {t.user_attrs["baseline"]: t for t in
              optuna.load_study(study_name="bad", storage=f"sqlite:///{db}").get_trials(deepcopy=False)}
    assert trials["bn"].state == TrialState.PRUNED
    assert "batch statistics" in trials["bn"].user_attrs["prune_reason"]
    assert "training.batch_size = 1" in trials["bn"].user_attrs["prune_reason"]
    assert trials["ln"].state == TrialState.COMPLETE


@pytest.mark.parametrize("command", [["study", "run"], ["study", "list"], ["report"], ["view"]])
def test_every_storage_option_recommends_the_environment_for_passwords(capsys, command):
    """Item 13: a password on the command line is visible in ``ps``; the help says what to do."""
    from explorer.cli import main

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "keep passwords off the command line (visible in ps): set $NORMX_STORAGE instead" in text
