"""Study files: every shipped study is valid; bad input is one line with the file, line and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from explorer.search.space import SearchSpace
from explorer.records import DEFAULT_PREDICTORS
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
    (GOOD + "[screening]\npolicy = \"relativ\"\n", 10, "screening.policy: must be one of relative, halving, thresholds"),
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


# ----------------------------------------------------------------------------- every check, exactly

MINIMAL = 'name = "t"\nmodels = ["m"]\n[objectives]\ncosine_similarity = "minimize"\n'


@pytest.mark.parametrize("text, message", [
    (GOOD.replace('name = "t"', 'name = "t x"'), "b.toml:1: name: use letters, digits, '_', '-' and '.' only"),
    (GOOD.replace('["mlp(depth=2, width=16)"]', "[]"), "b.toml:2: models: name at least one model"),
    (GOOD.replace('["mlp(depth=2, width=16)"]', "3"),
     "b.toml:2: models: must be a string or a list of strings, got an integer"),
    (GOOD.replace('["mlp(depth=2, width=16)"]', '["a", 3]'),
     "b.toml:2: models: must be a string or a list of strings, got a list"),
    (GOOD.replace('test_accuracy = "maximize"', ""), "b.toml:3: objectives: name at least one objective"),
    (GOOD.replace('name = "t"', 'name = "t"\naggregate = "median"'),
     "b.toml:2: aggregate: must be one of worst, mean, got 'median'"),
    (GOOD.replace('name = "t"', 'name = "t"\nn_trials = 0'), "b.toml:2: n_trials: must be at least 1, got 0"),
    (GOOD.replace('name = "t"', 'name = "t"\nn_trials = 2.5'), "b.toml:2: n_trials: must be an integer, got a number"),
    (GOOD.replace('name = "t"', 'name = "t"\ndescription = 5'), "b.toml:2: description: must be a string, got an integer"),
    (GOOD.replace('name = "t"', 'name = "t"\nseed = 4294967296'),
     "b.toml:2: seed: must be between 0 and 2**32 - 1, got 4294967296"),
    (GOOD + '[screening]\nreject_variance_growth = ["quadratic"]\n',
     "b.toml:10: screening.reject_variance_growth: must list kinds among flat, linear, exponential, got 'quadratic'"),
    (GOOD + '[screening]\nmax_cosine_similarity = "high"\n',
     "b.toml:10: screening.max_cosine_similarity: must be a number, got a string"),
    (GOOD + '[screening]\nprune_overflow = "yes"\n',
     "b.toml:10: screening.prune_overflow: must be true or false, got a string"),
    (GOOD + "[screening]\nbatches = 0\n", "b.toml:10: screening.batches: must be at least 1, got 0"),
    (GOOD.replace("steps = 5", 'steps = 5\nlr_rule = "sqrt"'),
     "b.toml:9: training.lr_rule: must be \"linear\" or \"constant\", got 'sqrt'"),
    (GOOD.replace("steps = 5", "steps = 5\nmomentum = 1.5"), "b.toml:9: training.momentum: must be between 0 and 1, got 1.5"),
    (GOOD.replace("steps = 5", "steps = 5\nmomentum = -0.1"),
     "b.toml:9: training.momentum: must be between 0 and 1, got -0.1"),
    (GOOD.replace("steps = 5", "steps = 5\ndecay_at = 1.2"),
     "b.toml:9: training.decay_at: must be between 0 and 1 (a fraction of the run), got 1.2"),
    (GOOD.replace("steps = 5", "steps = 0"), "b.toml:4: objectives.test_accuracy: needs training, but training.steps is 0"),
    (GOOD.replace("steps = 5", "epochs = 0"),
     "b.toml:4: objectives.test_accuracy: needs training, but training.epochs is 0"),
    (GOOD.replace("steps = 5", "steps = 5\nbase_lr = true"), "b.toml:9: training.base_lr: must be a number, got a boolean"),
    (GOOD.replace("steps = 5", "steps = 5\ndevice = 3"), "b.toml:9: training.device: must be a string, got an integer"),
    (GOOD.replace("[space]", "[space]\nslots = 3"), "b.toml:6: space.slots: must be a table, got an integer"),
    (GOOD.replace("[space]", '[space.slots]\ncentre = ["mean"]\n[space]'),
     "b.toml:6: space.slots.centre: unknown slot; slots: weight, center, scale, gate, bound, affine, activation, regularizer"),
    (GOOD.replace("[space]", "[space.slots]\ncenter = []\n[space]"),
     'b.toml:6: space.slots.center: list at least one primitive (or "none")'),
    (GOOD.replace("[space]", "[space.slots]\ncenter = [1]\n[space]"),
     "b.toml:6: space.slots.center: must be a string or a list of strings, got a list"),
    (GOOD.replace("[space]", "[space.params]\naxes = []\n[space]"), "b.toml:6: space.params.axes: list at least one value"),
    (GOOD.replace("[space]", '[space.params]\naxes = [["bx"]]\n[space]'),
     "b.toml:6: space.params.axes: values must be strings, numbers or booleans, got list"),
    (GOOD.replace("[space]", "[space.params.std]\nat = []\n[space]"), "b.toml:6: space.params.std.at: list at least one value"),
    (MINIMAL + "[space.params.std]\nat = [{a = 1}]\n",
     "b.toml:6: space.params.std.at: values must be strings, numbers or booleans, got dict"),
    (GOOD + "[workers]\nheartbeat_interval = 0\n", "b.toml:10: workers.heartbeat_interval: must be at least 1 (seconds), got 0"),
    (GOOD + "[workers]\nmax_retry = -1\n", "b.toml:10: workers.max_retry: must be 0 or more, got -1"),
    (GOOD + "[data]\nseed = -1\n", "b.toml:10: data.seed: must be between 0 and 2**32 - 1, got -1"),
    (GOOD + "[data]\ntest_limit = 0\n", "b.toml:10: data.test_limit: must be at least 1, got 0"),
    ('name = "t"\nmodels = ["m"]\n', "b.toml:1: objectives: missing required key"),
    ('models = ["m"]\n[objectives]\ncosine_similarity = "minimize"\n', "b.toml:1: name: missing required key"),
    (GOOD.replace("[objectives]", "[objectives]\ncosine_similarity = 1"),
     'b.toml:4: objectives.cosine_similarity: must be "maximize" or "minimize", got 1'),
    (MINIMAL + '[training]\nsteps = "x"\n', "b.toml:6: training.steps: must be an integer, got a string"),
    ('name = "t"\nmodels = ["m"]\nobjectives = {cosine_similarity = "minimise"}\n',
     "b.toml:3: objectives.cosine_similarity: must be \"maximize\" or \"minimize\", got 'minimise'"),
    (MINIMAL + "[screening]\nseeds = 1\n[screening.x]\n",
     "b.toml:7: screening.x: unknown key; valid: batch_size, batches, compile, eta, keep_nondominated, "
     "learned_min_trials, max_cosine_similarity, max_grad_explosion, min_steps, policy, predictors, prior, "
     "... (18 in all)"),
    (MINIMAL + "[[space]]\n", "b.toml:5: space: must be a table"),
    ('name = "t"\n\n\nmodels = ["m"\n', "b.toml:4: malformed TOML: Unclosed array"),
    (GOOD.replace("[training]", "[training]\nsteps = 5\n[training]"), "b.toml:9: malformed TOML: Cannot declare ('training',) twice"),
])
def test_every_check_is_one_exact_line(text, message):
    """The whole message: the file, the line of the key, the key and what is wrong with it."""
    with pytest.raises(StudyFileError) as info:
        parse_study_text(text, "b.toml")
    assert str(info.value) == message


def test_values_at_the_edges_of_their_ranges_are_accepted():
    config = parse_study_text(MINIMAL.replace('name = "t"', 'name = "a-b_c.1"\nn_trials = 1\nseed = 4294967295')
                              + "[training]\nsteps = 0\nmomentum = 0\ndecay_at = 1\nbase_lr = 1\nweight_decay = 0\n"
                              "[screening]\nmax_cosine_similarity = 1\nreject_variance_growth = \"linear\"\n"
                              "[workers]\nmax_retry = 0\nheartbeat_interval = 1\n", "edge.toml")
    assert config.name == "a-b_c.1" and config.n_trials == 1 and config.seed == 2**32 - 1
    assert config.training.momentum == 0 and config.training.decay_at == 1
    assert config.training.base_lr == 1.0 and isinstance(config.training.base_lr, float)  # an integer is a number
    assert config.screening.max_cosine_similarity == 1.0
    assert config.screening.reject_variance_growth == ["linear"]  # one string is a list of one
    assert config.workers.max_retry == 0
    # steps = 0 with only predictors as objectives: a screening-only study, nothing trains
    assert not config.training.enabled and not config.needs_training()
    assert parse_study_text(MINIMAL + "[training]\nmomentum = 1\n").training.momentum == 1.0
    single = parse_study_text(MINIMAL.replace('["m"]', '"m"'))
    assert single.models == ["m"]
    mixed = parse_study_text(MINIMAL + "[training]\nsteps = 3\n")
    assert mixed.training.enabled and not mixed.needs_training()  # nothing to train for


def _readme_defaults() -> list[tuple[str, str, object]]:
    """(section, key, default) from the README's table of study-file keys, where the default is a
    TOML literal (`20`, `"tpe"`, `["exponential"]`); prose defaults ("1 epoch", "none") are skipped."""
    import re
    import tomllib

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("### Study files: every key", 1)[1].split("\n\n", 2)[1]
    out = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 3:
            continue
        keys = re.findall(r"`([^`]*)`", cells[0])
        tokens = [t.strip() for t in re.findall(r"`[^`]*`|[^,`]+", cells[1]) if t.strip()]
        if not keys or len(keys) != len(tokens):
            continue
        section = ""
        for key, token in zip(keys, tokens):
            head = re.match(r"\[([a-z.]+)\]\s*(.*)", key)
            if head:
                section, key = head.group(1), head.group(2)
            if not re.fullmatch(r"[a-z_]+", key) or not token.startswith("`"):
                continue
            out.append((section, key, tomllib.loads(f"v = {token.strip('`')}")["v"]))
    return out


def test_defaults_are_what_the_readme_says():
    config = parse_study_text(MINIMAL, "m.toml")
    checked = _readme_defaults()
    assert len(checked) >= 25, checked  # the table was found and read
    for section, key, default in checked:
        holder = getattr(config, section) if section else config
        if default == ["default"]:  # `[screening] predictors`: "default" names the default set, expanded on reading
            default = list(DEFAULT_PREDICTORS)
        assert getattr(holder, key) == default, f"{section}.{key}: README says {default!r}"
    assert ("screening", "reject_variance_growth", ["exponential"]) in checked
    assert ("training", "momentum", 0.9) in checked and ("", "n_trials", 20) in checked


def test_accepted_values_are_kept_as_given(tmp_path):
    config = parse_study_text(MINIMAL.replace('name = "t"', 'name = "Quick-A"')
                              + '[training]\nlr_rule = "constant"\n')
    assert config.name == "Quick-A" and config.objectives == {"cosine_similarity": "minimize"}
    assert config.training.lr_rule == "constant" and config.path == "<study>"
    with pytest.raises(StudyFileError, match=r"^<study>:1: name: missing required key$"):
        parse_study_text('models = ["m"]\n[objectives]\ncosine_similarity = "minimize"\n')
    with pytest.raises(StudyFileError) as info:
        parse_study_text('name = "t"\nmodels = ["m"]\n[objectives]\ncosine_similarity = "minimize"\nx = [1,', "e.toml")
    assert str(info.value).startswith("e.toml:5: malformed TOML")  # the last line when TOML names none
    missing = tmp_path / "none.toml"
    with pytest.raises(StudyFileError, match=r"none\.toml: no such study file$"):
        load_study_file(missing)
    with pytest.raises(StudyFileError, match="cannot read the study file"):
        load_study_file(tmp_path)  # a directory
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(StudyFileError, match="cannot read the study file"):
        load_study_file(tmp_path / "bin.toml")


@pytest.mark.parametrize("text, line", [
    (MINIMAL + "[space.params.std]\nat = []\n", 6),                 # a key under a sub-table header
    (MINIMAL + "[space]\nparams.std.at = []\n", 6),                 # a dotted key
    (MINIMAL + '[space]\n"params" = {std = {at = []}}\n', 6),       # an inline table on a quoted key
    (MINIMAL + "[training]\nsteps = 1\n[space.params.std]\n\nat = []\n", 9),
])
def test_errors_point_at_the_line_of_the_key(text, line):
    with pytest.raises(StudyFileError) as info:
        parse_study_text(text, "l.toml")
    assert str(info.value).startswith(f"l.toml:{line}: space.params.std.at: list at least one value"), str(info.value)


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("steps = 5", "steps = 5\nepochs = 1"), "b.toml:9: training.epochs: give steps or epochs, not both"),
    (GOOD.replace('name = "t"', 'name = "t"\nstorage = "  "'),
     "b.toml:2: storage: empty storage; give a URL or a file, or leave the key out"),
    (GOOD + "[screening]\nmax_cosine_similarity = nan\n",
     "b.toml:10: screening.max_cosine_similarity: must be a finite number, got nan"),
    (GOOD.replace("steps = 5", "steps = 5\nbase_lr = inf"), "b.toml:9: training.base_lr: must be a finite number, got inf"),
    (GOOD + '[screening]\ncompile = "fast"\n', "b.toml:10: screening.compile: must be \"auto\", true or false, got 'fast'"),
    (GOOD.replace("steps = 5", "steps = 5\ncompile = 1"), "b.toml:9: training.compile: must be \"auto\", true or false, got 1"),
    (GOOD + '[screening]\npredictors = ["cosine_similarty"]\n',
     "b.toml:10: screening.predictors: unknown predictor 'cosine_similarty'; closest: cosine_similarity; valid: "),
    (GOOD + '[screening]\nscore = "bogus"\n',
     "b.toml:10: screening.score: unknown score 'bogus'; valid: combined, cosine_similarity, forward_flops, "
     "grad_explosion_exponent, jacob_cov, learned, naswot, parameter_count, snip, stable_rank, synflow, "
     "variance_growth_rate, ... (13 in all)"),
    (GOOD + '[screening]\nscore = "learned"\nprior = ["digts"]\n',
     "b.toml:11: screening.prior: unknown table 'digts'; closest: digits"),
    (GOOD + '[screening]\nprior = ["digits"]\n',
     "b.toml:10: screening.prior: only the learned score learns from a prior (score = \"learned\"), and the score is "
     "'combined'"),
    (GOOD + '[screening]\nscore = "learned"\nprior = ["study:"]\n',
     "b.toml:11: screening.prior: 'study:' names no study; write study:NAME"),
    (GOOD + '[screening]\nscore = "learned"\nlearned_min_trials = 1\n',
     "b.toml:11: screening.learned_min_trials: must be at least 2, got 1"),
    (GOOD.replace('name = "t"', 'name = "t"\ndescription = 1979-05-27'), "b.toml:2: description: must be a string, got date"),
    (GOOD.replace('name = "t"', 'name = "t"\ndescription = {a = 1}'), "b.toml:2: description: must be a string, got a table"),
    ("models = [", "b.toml:1: malformed TOML: Invalid value"),  # no line named, one line: line 1
    # the key's own line, its name unquoted (quotes of either kind, and names that start with X or capitals)
    (GOOD.replace("steps = 5", "steps = 5\n'stpes' = 5"), "b.toml:9: training.stpes: unknown key"),
    (GOOD.replace("steps = 5", "steps = 5\n\"Xa\" = 5"), "b.toml:9: training.Xa: unknown key"),
    (GOOD.replace("steps = 5", "steps = 5\n'Xa' = 5"), "b.toml:9: training.Xa: unknown key"),
    (GOOD.replace("steps = 5", "steps = 5\nSteps = 5"), "b.toml:9: training.Steps: unknown key"),
])
def test_each_check_says_its_key_line_and_reason(text, message):
    """Checks the other tests leave out, each with its exact line: the key that is wrong, where it is."""
    with pytest.raises(StudyFileError) as info:
        parse_study_text(text, "b.toml")
    assert str(info.value).startswith(message), str(info.value)


def test_locate_falls_back_to_the_table_then_to_line_one():
    """A key not written (a check on a default) points at the first header of its table, else line 1."""
    from explorer.search.study_file import locate

    assert locate(GOOD, ("training", "batch_size")) == 7           # [training], not [objectives] or [space]
    assert locate(GOOD, ("training", "steps")) == 8
    assert locate(GOOD, ("screening", "warmup")) == 1              # no [screening] table at all
    assert locate(GOOD, ("objectives",)) == 3
    assert locate(GOOD + "[space.params.std]\nat = 1\n", ("space", "params", "std", "eps")) == 5  # [space] first


def test_space_and_objective_values_reach_the_config():
    config = parse_study_text(GOOD.replace("[space]", '[space.params]\naxes = "cx"\n[space]\ntie_axes = true')
                              .replace('test_accuracy = "maximize"', 'test_accuracy = "maximize"\nstable_rank = "maximize"'))
    assert config.space.tie_axes is True and config.space.params == {"axes": ["cx"]}  # a scalar is a list of one
    assert config.objectives == {"test_accuracy": "maximize", "stable_rank": "maximize"}
    assert config.needs_training() and "stable_rank" in config.predictor_names()
    assert parse_study_text(GOOD).space.tie_axes is False
    # a plugin's predictor as an objective and as the screening score; compile's three spellings
    plugin = parse_study_text(GOOD.replace('test_accuracy = "maximize"', 'naswot = "maximize"')
                              + '[screening]\nscore = "naswot"\ncompile = "auto"\n')
    assert plugin.objectives == {"naswot": "maximize"} and plugin.screening.score == "naswot"
    assert plugin.screening.compile == "auto" and not plugin.needs_training()
    for value in ("true", "false"):
        assert parse_study_text(GOOD.replace("steps = 5", f"steps = 5\ncompile = {value}")).training.compile \
            is (value == "true")


def test_a_study_file_s_path_is_in_its_errors_and_its_config(tmp_path):
    path = tmp_path / "named.toml"
    path.write_text(GOOD.replace("steps = 5", "steps = -1"), encoding="utf-8")
    with pytest.raises(StudyFileError) as info:
        load_study_file(path)
    assert str(info.value).startswith(f"{path}:8: training.steps: ")
    path.write_text(GOOD.replace('"t"', '"t"\ndescription = "épsilon ≥ 0"'), encoding="utf-8")
    config = load_study_file(path)
    assert config.path == str(path) and config.description == "épsilon ≥ 0"


def test_a_plugin_s_predictors_are_objectives_and_screening_predictors():
    """A predictor registered by a plugin (not a built-in name): an objective that gets worse in its
    direction, a screening predictor by name, in "all", and "default" expands to the default set."""
    import sys
    import textwrap

    import explorer
    from explorer.plugins import get_registry, unregister
    from explorer.direction import Direction
    from explorer.search.screening import predictor_direction
    from explorer.search.study_file import objective_source

    module = type(sys)("study_file_predictors")
    exec(textwrap.dedent("""
        from explorer import PredictorEntry, hookimpl

        @hookimpl
        def register_predictors(register):
            register(PredictorEntry(name="spread_low", direction="lower", compute=lambda batch: 0.0))
            register(PredictorEntry(name="spread_high", direction="higher", compute=lambda batch: 0.0))
            register(PredictorEntry(name="spread_all", direction="higher", compute=lambda batch: [0.0], scalar=False))
    """), module.__dict__)
    explorer.register_plugin(module, name="study-file-predictors")
    try:
        assert (predictor_direction("spread_low"), predictor_direction("spread_high")) == (Direction.LOWER,
                                                                                          Direction.HIGHER)
        assert predictor_direction("spread_all") is None and predictor_direction("nothing") is None
        # (where it is stored, its key, the direction in which it gets worse)
        assert objective_source("spread_low") == ("predictors", "spread_low", Direction.LOWER)
        assert objective_source("spread_high") == ("predictors", "spread_high", Direction.HIGHER)
        with pytest.raises(KeyError, match="spread_all"):
            objective_source("spread_all")
        config = parse_study_text(GOOD.replace('test_accuracy = "maximize"', 'test_accuracy = "maximize"\n'
                                               'spread_low = "minimize"')
                                  + '[screening]\npredictors = ["spread_high", "default", "stable_rank"]\n')
        assert config.screening.predictors == ["spread_high", *DEFAULT_PREDICTORS]  # in order, once each
        assert config.predictor_names() == ["spread_high", *DEFAULT_PREDICTORS, "spread_low"]
        assert config.needs_training()
        every = parse_study_text(GOOD + '[screening]\npredictors = ["all", "spread_all"]\n').screening.predictors
        assert every == list(get_registry().predictors) and {"spread_all", "spread_low", "naswot"} <= set(every)
        named_first = parse_study_text(GOOD + '[screening]\npredictors = ["naswot", "all"]\n').screening.predictors
        assert every[0] != "naswot" and named_first == ["naswot", *[n for n in every if n != "naswot"]]  # as written
        with pytest.raises(StudyFileError, match=r"^b.toml:10: screening.predictors: unknown predictor 'sprad_low'; "
                                                 r"closest: spread_low"):
            parse_study_text(GOOD + '[screening]\npredictors = ["sprad_low"]\n', "b.toml")
    finally:
        unregister("study-file-predictors")


# ----------------------------------------------------------------------------- issue 24, item 18


def test_a_study_name_longer_than_a_storage_holds_is_a_study_file_error(tmp_path, normx_exe):
    """A name past Optuna's 512-character column was created in SQLite (which ignores the length)
    and refused by PostgreSQL as a storage failure; it is the study file's mistake, for every
    storage, and nothing is created."""
    from explorer.search.study_file import MAX_STUDY_NAME

    assert parse_study_text(GOOD.replace('"t"', f'"{"n" * MAX_STUDY_NAME}"'), "ok.toml").name == "n" * 512
    path = tmp_path / "long.toml"
    path.write_text(GOOD.replace('"t"', f'"{"n" * 513}"'))
    db = tmp_path / "s.db"
    result = subprocess.run([*normx_exe, "study", "run", str(path), "--storage", str(db)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"normx: error: {path}:1: name: at most 512 characters (the longest study name an "
                             "Optuna storage holds), got 513\n")
    assert not db.exists()


def test_an_error_in_space_fixed_names_file_line_and_key(tmp_path, normx_exe, registry):
    """``[space] fixed`` was parsed before the space was checked: its error had no
    ``file:line: key`` prefix, unlike every other study-file error."""
    text = GOOD.replace('presets = ["bn"]', 'presets = ["bn"]\nfixed = "affine | rleu"')
    config = parse_study_text(text, "f.toml")
    with pytest.raises(StudyFileError) as info:
        SearchSpace(config, registry)
    assert str(info.value).startswith("f.toml:7: space.fixed: unknown primitive or preset 'rleu'; closest: relu"), \
        str(info.value)
    path = tmp_path / "f.toml"
    path.write_text(text)
    db = tmp_path / "f.db"
    result = subprocess.run([*normx_exe, "study", "run", str(path), "--storage", str(db)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == "" and not db.exists()
    assert result.stderr.startswith(f"normx: error: {path}:7: space.fixed: unknown primitive or preset 'rleu'")
    assert result.stderr.count("\n") == 1
