"""Study files: every shipped study is valid; bad input is one line with the file, line and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from explorer.search.space import SearchSpace
from explorer.search.study_file import StudyFileError, load_study_file, parse_study_text

STUDIES = sorted((Path(__file__).parent.parent / "studies").glob("*.toml"))

GOOD = """\
name = "t"
models = ["mlp(depth=2, width=16)"]
[objectives]
test_accuracy = "maximize"
[space]
presets = ["bn"]
[training]
steps = 5
"""


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_studies_are_valid(path, registry):
    config = load_study_file(path)
    SearchSpace(config, registry).check()
    assert config.name == path.stem
    assert config.objectives


@pytest.mark.parametrize("text, line, fragment", [
    (GOOD.replace("steps = 5", "stpes = 5"), 8, "training.stpes: unknown key; closest: steps"),
    (GOOD.replace("steps = 5", "steps = \"five\""), 8, "training.steps: must be an integer, got a string"),
    (GOOD.replace("[space]", "[space]\ntie_axes = 1"), 6, "space.tie_axes: must be true or false"),
    (GOOD.replace("name = \"t\"", "name = \"t\"\nsampler = \"cmaes\""), 2, "sampler: must be one of tpe, nsga2, random"),
    (GOOD.replace("\"maximize\"", "\"up\""), 4, "objectives.test_accuracy: must be \"maximize\" or \"minimize\""),
    (GOOD.replace("test_accuracy =", "test_acc ="), 4, "objectives.test_acc: unknown objective; closest: test_accuracy"),
    (GOOD.replace("[training]", "[trainig]"), 7, "trainig: unknown key; closest: training"),
    (GOOD.replace("steps = 5", "steps = [5,"), 8, "malformed TOML"),
    (GOOD.replace("models = [\"mlp(depth=2, width=16)\"]\n", ""), 1, "models: missing required key"),
    (GOOD.replace("steps = 5", "steps = 5\nbase_lr = -0.1"), 9, "training.base_lr: must be 0 or more, got -0.1"),
    (GOOD.replace("steps = 5", "steps = 5\nbase_batch_size = 0"), 9, "training.base_batch_size: must be at least 1"),
    (GOOD.replace("steps = 5", "epochs = -1"), 8, "training.epochs: must be 0 (screening only) or more"),
    (GOOD.replace("name = \"t\"", "name = \"t\"\nseed = -3"), 2, "seed: must be between 0 and 2**32 - 1"),
    (GOOD + "[workers]\ngrace_period = -1\n", 10, "workers.grace_period: must be at least 1 (seconds)"),
    (GOOD + "[data]\ntrain_limit = 0\n", 10, "data.train_limit: must be at least 1"),
    (GOOD + "[screening]\npolicy = \"relativ\"\n", 10, "screening.policy: must be one of relative, thresholds"),
    (GOOD + "[screening]\nwarmup = -1\n", 10, "screening.warmup: must be 0 or more, got -1"),
    (GOOD + "[screening]\nwarmup = 2.5\n", 10, "screening.warmup: must be an integer, got a number"),
    (GOOD + "[screening]\ntop_fraction = 0\n", 10, "screening.top_fraction: must be greater than 0 and at most 1, got 0"),
    (GOOD + "[screening]\ntop_fraction = 1.5\n", 10, "screening.top_fraction: must be greater than 0 and at most 1, got 1.5"),
    (GOOD + "[screening]\nscore = \"cosine_similarty\"\n", 10, "screening.score: unknown score 'cosine_similarty'; closest: cosine_similarity"),
    (GOOD + "[screening]\nkeep_nondominated = \"yes\"\n", 10, "screening.keep_nondominated: must be true or false"),
])
def test_bad_study_files_name_file_line_and_key(text, line, fragment):
    with pytest.raises(StudyFileError) as info:
        parse_study_text(text, "bad.toml")
    message = str(info.value)
    assert message.startswith(f"bad.toml:{line}: "), message
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("edit, line, fragment", [
    (("[training]", "[space.slots]\nscale = [\"std\", \"stdd\"]\n[training]"), 8, "unknown primitive 'stdd' for this slot; closest: std"),
    (("[training]", "[space.slots]\nscale = [\"mean\"]\n[training]"), 8, "'mean' is a center primitive, not a scale one"),
    (("presets = [\"bn\"]", "presets = [\"bn\", \"bnn\"]"), 6, "entry 2 ('bnn')"),
    (("[training]", "[space.params.std]\naxis = [\"bx\"]\n[training]"), 8, "std has no parameter 'axis'"),
    (("[training]", "[space.slots]\nactivation = [\"tlu\"]\n[training]"), 9, "the slot is fixed by space.fixed"),
])
def test_space_names_are_checked_against_the_registry(edit, line, fragment, registry):
    text = GOOD.replace('presets = ["bn"]', 'presets = ["bn"]\nfixed = "relu"') if "tlu" in edit[1] else GOOD
    config = parse_study_text(text.replace(*edit), "s.toml")
    with pytest.raises(StudyFileError) as info:
        SearchSpace(config, registry).check()
    assert str(info.value).startswith(f"s.toml:{line}: "), str(info.value)
    assert fragment in str(info.value)


def test_cli_prints_one_line_and_creates_nothing(tmp_path, normx_exe):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("steps = 5", "steps = 5\nlearning_rate = 0.1"))
    db = tmp_path / "s.db"
    result = subprocess.run([*normx_exe, "study", "run", str(bad), "--storage", str(db)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"normx: error: {bad}:9: training.learning_rate: unknown key; closest: lr_rule"
    assert not db.exists()  # validated before anything was created in storage
