"""Predictors as plugins: the registry, every built-in predictor through the plugin path against a
hand computation on a tiny model, subsets and unknown names, a failing predictor recorded as
missing, a third-party predictor through a real entry point, and study objectives."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from test_plugins import assert_one_line_error, installed_example, make_plugin, run_normx  # noqa: F401
from torch import nn

import explorer
from explorer.errors import PluginError, PredictorError
from explorer.plugins import unregister
from explorer.records import to_float
from explorer.registry import PredictorEntry
from explorer.scoring import measure, resolve_predictors

W1 = [[1.0, -2.0, 0.5], [0.5, 1.0, -1.0], [-1.0, 0.25, 2.0]]
W2 = [[1.0, -1.0, 0.5], [0.25, 2.0, 0.5]]
X = [[1.0, 2.0, -1.0], [0.5, -1.0, 2.0], [-2.0, 0.5, 1.0], [1.5, 1.0, 0.5]]
Y = [0, 1, 1, 0]


class Tiny(nn.Module):
    """x -> ReLU(W1 x) -> W2 h: one probe (the ReLU's output), bias-free, so every predictor has a
    closed form the test writes out with numpy."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(3, 3, bias=False)
        self.act = nn.ReLU()
        self.head = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.l1.weight.copy_(torch.tensor(W1))
            self.head.weight.copy_(torch.tensor(W2))
        self.probes = [self.act]

    def forward(self, x):
        return self.head(self.act(self.l1(x)))


def by_hand() -> dict[str, float]:
    """Every predictor of Tiny on (X, Y), in float64 numpy, from the formulas in docs/predictors.md."""
    w1, w2, x = np.array(W1), np.array(W2), np.array(X)
    n = len(x)
    z = x @ w1.T
    h = np.maximum(z, 0)
    logits = h @ w2.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - np.eye(2)[Y]) / n                      # d mean-CE / d logits
    gw2 = g.T @ h
    gh = g @ w2
    gw1 = ((gh * (z > 0)).T @ x)
    unit = h / np.linalg.norm(h, axis=1, keepdims=True)
    gram = unit @ unit.T
    centered = h - h.mean(0)
    codes = (h > 0).astype(float)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    # input Jacobian of the summed logits: Σ_k W2[k] diag(z>0) W1, per sample
    jac = np.stack([(w2.sum(0) * (zi > 0)) @ w1 for zi in z])
    jc = jac - jac.mean(1, keepdims=True)
    jc /= np.linalg.norm(jc, axis=1, keepdims=True)
    eig = np.clip(np.linalg.eigvalsh(jc @ jc.T), 0, None)
    r = np.abs(w2).sum(0) @ np.abs(w1) @ np.ones(3)    # synflow: R = Σ |W2||W1| 1
    return {
        "cosine_similarity": (gram.sum() - np.trace(gram)) / (n * (n - 1)),
        "stable_rank": (centered ** 2).sum() / np.linalg.norm(centered, 2) ** 2,
        "parameter_count": 9 + 6,
        "forward_flops": 2 * 9 + 2 * 6,
        "weight_grad_norm": np.linalg.norm(gw1) + np.linalg.norm(gw2),
        "snip": np.abs(w1 * gw1).sum() + np.abs(w2 * gw2).sum(),
        "synflow": 2 * r,                            # each layer's Σ|W ⊙ ∂R/∂W| is R (bias-free chain)
        "naswot": np.linalg.slogdet(kernel)[1],
        "jacob_cov": -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5)),
    }


def test_every_builtin_predictor_through_the_plugin_path_matches_a_hand_computation():
    batches = [(torch.tensor(X), torch.tensor(Y))]
    names = list(by_hand())
    result = measure(Tiny(), batches, names)
    assert result["missing"] == {}
    for name, expected in by_hand().items():
        assert result[name] == pytest.approx(expected, rel=1e-5), name
    assert result["directions"]["cosine_similarity"] == "lower" and result["directions"]["snip"] == "higher"


def test_weight_gradients_share_the_pass_without_changing_the_paper_predictors():
    torch.manual_seed(0)
    model = explorer.create_model("plaincnn(depth=3, width=8)", "bn")
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    plain = measure(model, [(x, y)], "default")
    shared = measure(model, [(x, y)], "default,snip,weight_grad_norm")
    for key in ("cosine_similarity", "grad_explosion_exponent", "stable_rank", "parameter_count"):
        assert shared[key] == pytest.approx(plain[key], rel=1e-6), key
    assert shared["activation_variance"] == pytest.approx(plain["activation_variance"], rel=1e-6)
    assert "snip" not in plain and shared["snip"] > 0
    # the caller's model is left as built: trainable, no gradients accumulated
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_the_registry_has_the_builtins_in_their_plugins_and_refuses_malformed_entries(registry):
    assert {n: registry.predictors[n].plugin for n in ("cosine_similarity", "variance_growth", "snip", "synflow")} \
        == {"cosine_similarity": "predictors", "variance_growth": "predictors", "snip": "zero_cost",
            "synflow": "zero_cost"}
    assert sorted(registry.contributions()["zero_cost"]["predictors"]) == sorted(
        ["parameter_count", "forward_flops", "weight_grad_norm", "snip", "synflow", "naswot", "jacob_cov"])
    with pytest.raises(PluginError, match="direction must be 'lower' or 'higher'"):
        PredictorEntry(name="x", direction="up", compute=len)
    with pytest.raises(PluginError, match="unknown need 'gradients'"):
        PredictorEntry(name="x", direction="lower", compute=len, needs=("gradients",))
    with pytest.raises(PluginError, match="taken by a stored field"):
        PredictorEntry(name="grad_norm", direction="lower", compute=len)


def test_resolve_predictors_subsets_and_unknown_names():
    assert [p.name for p in resolve_predictors(None)] == ["cosine_similarity", "grad_explosion_exponent",
                                                          "stable_rank", "variance_growth", "parameter_count"]
    assert [p.name for p in resolve_predictors("snip, cosine_similarity")] == ["cosine_similarity", "snip"]
    assert len(resolve_predictors("all")) == len(explorer.get_registry().predictors)
    with pytest.raises(PredictorError) as err:
        resolve_predictors("default,snp")
    message = str(err.value)
    assert message.startswith("unknown predictor 'snp'; closest: snip; valid: ") and "jacob_cov" in message


class CastsToFloat32(Tiny):
    """A model written for float32 inputs: synflow's float64 pass cannot run it."""

    def forward(self, x):
        return super().forward(x.float())


def test_a_predictor_that_fails_on_a_model_is_missing_with_its_reason():
    result = measure(CastsToFloat32(), [(torch.tensor(X), torch.tensor(Y))], "cosine_similarity,synflow,snip")
    assert math.isnan(result["synflow"]) and "RuntimeError" in result["missing"]["synflow"]
    assert set(result["missing"]) == {"synflow"}
    assert result["cosine_similarity"] == pytest.approx(by_hand()["cosine_similarity"], rel=1e-5)
    assert result["snip"] == pytest.approx(by_hand()["snip"], rel=1e-5)


BOOM = """
    from explorer import PredictorEntry, hookimpl

    def boom(batch):
        raise ValueError("needs a transformer")

    @hookimpl
    def register_predictors(register):
        register(PredictorEntry(name="boom", direction="higher", compute=boom, doc="always fails"))
"""

DUPLICATE = """
    from explorer import PredictorEntry, hookimpl

    @hookimpl
    def register_predictors(register):
        register(PredictorEntry(name="snip", direction="higher", compute=lambda batch: 0.0))
"""

HALF = """
    from explorer import PredictorEntry, hookimpl

    @hookimpl
    def register_predictors(register):
        register(PredictorEntry(name="half_done", direction="higher", compute=lambda batch: 0.0))
        register(PredictorEntry(name="bad", direction="sideways", compute=lambda batch: 0.0))
"""


def test_cli_score_records_a_failing_plugin_predictor_as_missing(tmp_path, normx_exe):
    make_plugin(tmp_path, "boom-predictor", "0.1", "boom_predictor", BOOM)
    result = run_normx(normx_exe, "score", "bn", "--model", "plaincnn(depth=2, width=8)", "--batch-size", "4",
                       "--batches", "1", "--predictors", "cosine_similarity,boom", "--json", path=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["boom"] == "nan" and data["missing"] == {"boom": "ValueError: needs a transformer"}
    assert isinstance(data["cosine_similarity"], float) and "stable_rank" not in data
    table = run_normx(normx_exe, "score", "bn", "--model", "plaincnn(depth=2, width=8)", "--batch-size", "4",
                      "--batches", "1", "--predictors", "boom", path=tmp_path, COLUMNS="100")
    assert table.returncode == 0 and "missing: ValueError: needs a transformer" in table.stdout


def test_duplicate_predictor_names_name_both_plugins(tmp_path, normx_exe):
    make_plugin(tmp_path, "dup-snip", "1.0", "dup_snip", DUPLICATE)
    assert_one_line_error(run_normx(normx_exe, "predictors", path=tmp_path),
                          "predictor 'snip' is registered twice", "'zero_cost'", "'dup-snip:dup_snip'")


def test_a_malformed_predictor_plugin_registers_nothing_and_is_named_in_a_warning(tmp_path, normx_exe):
    make_plugin(tmp_path, "half-plugin", "0.1", "half_plugin", HALF)
    result = run_normx(normx_exe, "predictors", "--json", path=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "half-plugin:half_plugin" in warnings[0] and "sideways" in warnings[0]
    names = {row["name"] for row in json.loads(result.stdout)}
    assert "half_done" not in names and "snip" in names


def test_cli_subset_and_unknown_names(normx_exe):
    result = run_normx(normx_exe, "score", "ln", "--model", "plaincnn(depth=2, width=8)", "--batch-size", "4",
                       "--batches", "1", "--predictors", "naswot,parameter_count", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data["directions"]) == ["parameter_count", "naswot"]
    assert "cosine_similarity" not in data and data["parameter_count"] > 0 and data["missing"] == {}
    bad = run_normx(normx_exe, "score", "ln", "--predictors", "cosine,synflw")
    assert bad.returncode == 2
    assert_one_line_error(bad, "unknown predictor 'cosine'", "closest: cosine_similarity", "valid:", "synflow")


def test_normx_predictors_lists_every_predictor_within_80_columns(normx_exe):
    listed = run_normx(normx_exe, "predictors", "--json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert set(rows) >= {"cosine_similarity", "grad_explosion_exponent", "stable_rank", "variance_growth",
                         "parameter_count", "forward_flops", "weight_grad_norm", "snip", "synflow", "naswot",
                         "jacob_cov"}
    assert rows["snip"]["needs"] == ["weight_gradients"] and rows["synflow"]["needs"] == ["separate_pass"]
    assert rows["cosine_similarity"]["direction"] == "lower" and rows["cosine_similarity"]["default"]
    table = run_normx(normx_exe, "predictors", COLUMNS="80")
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(any(line.startswith(name) for line in lines) for name in rows)  # full names, never cut


def test_example_plugin_predictor_through_a_real_entry_point(installed_example, normx_exe):  # noqa: F811
    listed = run_normx(normx_exe, "predictors", "--json", path=installed_example)
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "dead_unit_fraction")
    assert row["plugin"] == "normx-example-plugin:mad" and row["direction"] == "lower"
    script = textwrap.dedent("""
        import json, torch, explorer
        from explorer.scoring import measure
        torch.manual_seed(0)
        model = explorer.create_model("plaincnn(depth=3, width=8)", "bn")
        x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 10, (6,))
        outs = []
        hooks = [m.register_forward_hook(lambda m, i, o: outs.append(o.detach())) for m in model.probes]
        result = measure(model, [(x, y)], "dead_unit_fraction")
        for h in hooks:
            h.remove()
        dead = sum(int((o.flatten(1) <= 0).all(0).sum()) for o in outs)
        units = sum(o[0].numel() for o in outs)
        print(json.dumps([result["dead_unit_fraction"], dead / units]))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMX_")}
    env["PYTHONPATH"] = str(installed_example)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    value, expected = json.loads(done.stdout)
    assert value == pytest.approx(expected) and 0 <= value <= 1


def screening_study(name: str, objectives: str) -> str:
    """A study file that screens BN and LN on a small MLP and trains nothing."""
    return (f'name = "{name}"\nmodels = ["mlp(depth=2, width=8)"]\nn_trials = 2\n[objectives]\n{objectives}\n'
            '[data]\nname = "gaussian"\ntrain_limit = 32\ntest_limit = 16\n[space]\npresets = ["bn", "ln"]\n'
            '[screening]\nbatch_size = 16\nbatches = 1\n[training]\nsteps = 0\n')


def test_a_predictor_registered_from_python_is_a_study_objective(tmp_path):
    module = type(sys)("spread_predictor")
    exec(compile(textwrap.dedent("""
        from explorer import PredictorEntry, hookimpl

        @hookimpl
        def register_predictors(register):
            register(PredictorEntry(name="logit_spread", direction="lower", needs=("activations",),
                                    compute=lambda batch: batch.logits.detach().std(), doc="std of the logits"))
    """), "spread_predictor", "exec"), module.__dict__)
    explorer.register_plugin(module, name="spread")
    try:
        from explorer.search import run_study
        from explorer.search.study_file import StudyFileError, parse_study_text

        text = screening_study("objective", 'logit_spread = "minimize"\nnaswot = "maximize"')
        config = parse_study_text(text, "objective.toml")
        assert config.predictor_names()[-2:] == ["logit_spread", "naswot"]
        storage = f"sqlite:///{tmp_path / 'o.db'}"
        run_study(config, storage=storage, on_trial_event=lambda event: None)
        import optuna

        done = [t for t in optuna.load_study(study_name="objective", storage=storage).trials if t.values]
        assert len(done) == 2
        for t in done:  # naswot is -inf where the kernel is singular: stored as "-inf", an objective as -inf
            stored = t.user_attrs["predictors"]
            assert t.values == [to_float(stored["logit_spread"]), to_float(stored["naswot"])]
            assert stored["directions"]["logit_spread"] == "lower"
        with pytest.raises(StudyFileError, match=r"objective.toml:\d+: objectives.logit_sprad: unknown objective; "
                                                 r"closest: logit_spread"):
            parse_study_text(text.replace("logit_spread =", "logit_sprad ="), "objective.toml")
        with pytest.raises(StudyFileError, match="screening.predictors: unknown predictor 'snipp'; closest: snip"):
            parse_study_text(text.replace("batches = 1", 'batches = 1\npredictors = ["default", "snipp"]'),
                             "objective.toml")
        with pytest.raises(StudyFileError, match="objectives.variance_growth: unknown objective"):
            parse_study_text(text.replace("naswot =", "variance_growth ="), "objective.toml")
    finally:
        unregister("spread")


def test_an_infinite_predictor_is_a_valid_objective_value_everywhere(tmp_path):
    """±inf is a measurement at its extreme (naswot's singular kernel: -inf, the worst), never a
    missing value: the trial completes with it as its objective, stores it as "-inf", reads back
    as -inf, and ranks last in its direction. NaN is the missing value (it fails an objective)."""
    module = type(sys)("worst_predictor")
    exec(compile(textwrap.dedent("""
        import math
        from explorer import PredictorEntry, hookimpl

        @hookimpl
        def register_predictors(register):
            register(PredictorEntry(name="always_worst", direction="higher", needs=("activations",),
                                    compute=lambda batch: -math.inf, doc="-inf, the worst of a higher-is-better"))
    """), "worst_predictor", "exec"), module.__dict__)
    explorer.register_plugin(module, name="worst")
    try:
        from explorer.search import run_study
        from explorer.direction import Direction
        from explorer.search.combined import percentile_ranks
        from explorer.search.results import StudySource
        from explorer.search.study_file import parse_study_text

        text = screening_study("inf", 'always_worst = "maximize"')
        storage = f"sqlite:///{tmp_path / 'inf.db'}"
        run_study(parse_study_text(text, "inf.toml"), storage=storage, on_trial_event=lambda event: None)
        import optuna

        trials = optuna.load_study(study_name="inf", storage=storage).trials
        assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
        assert [t.values for t in trials] == [[-math.inf], [-math.inf]]
        assert [t.user_attrs["predictors"]["always_worst"] for t in trials] == ["-inf", "-inf"]
        assert [t.user_attrs["predictors"]["missing"] for t in trials] == [{}, {}]
        assert StudySource(storage, "inf").load().row(0).values == (-math.inf,)
        assert percentile_ranks([-math.inf, 0.5, math.inf], Direction.HIGHER) == [1.0, 0.5, 0.0]
    finally:
        unregister("worst")


def test_several_models_aggregate_every_stored_predictor_at_its_worst():
    from explorer.search.policy import aggregate_predictors

    def record(cos, snip, missing=None):
        return {"cosine_similarity": cos, "grad_explosion_exponent": 0.1, "stable_rank": 3.0, "snip": snip,
                "variance_growth": {"kind": "flat", "rate": 0.0}, "activation_variance": [1.0], "grad_norm": [1.0],
                "overflow": False, "spread": {}, "missing": missing or {},
                "directions": {"cosine_similarity": "lower", "snip": "higher"}}

    out = aggregate_predictors({"a": record(0.2, 5.0), "b": record(0.4, 2.0, {"synflow": "RuntimeError: x"})})
    assert out["cosine_similarity"] == 0.4 and out["snip"] == 2.0  # the worst model for each direction
    assert out["directions"] == {"cosine_similarity": "lower", "snip": "higher"}
    assert out["missing"] == {"synflow": "b: RuntimeError: x"}


def test_a_screening_criterion_names_any_scalar_predictor_or_fails_naming_the_closest():
    from explorer.search.study_file import StudyFileError, parse_study_text

    text = 'name = "s"\nmodels = ["m"]\n[objectives]\ncosine_similarity = "minimize"\n[screening]\nscore = "{}"\n'
    assert parse_study_text(text.format("snip"), "s.toml").screening.score == "snip"  # a plugin's predictor
    assert parse_study_text(text.format("cosine_similarity"), "s.toml").screening.score == "cosine_similarity"
    with pytest.raises(StudyFileError, match=r"^s.toml:6: screening.score: unknown score 'snp'; closest: snip$"):
        parse_study_text(text.format("snp"), "s.toml")
    with pytest.raises(StudyFileError, match="unknown score 'variance_growth'; closest: variance_growth_rate"):
        parse_study_text(text.format("variance_growth"), "s.toml")  # a kind and a rate: no order, its rate has one


EXITING = """
    import os, pathlib, sys, time
    from explorer import PredictorEntry, hookimpl

    def quit_now(batch):
        sys.exit(0)

    def interrupt(seed):
        raise KeyboardInterrupt

    def slow(batch):  # for a real Ctrl-C: says where it is, then takes its time
        pathlib.Path(os.environ["NORMX_TEST_MARKER"]).write_text("computing")
        time.sleep(120)
        return 0.0

    @hookimpl
    def register_predictors(register):
        register(PredictorEntry(name="quitter", direction="higher", compute=quit_now))
        register(PredictorEntry(name="stopper", direction="higher", compute=interrupt, per="seed"))
        register(PredictorEntry(name="slow", direction="higher", compute=slow))
"""

EXITING_AT_LOAD = """
    import sys
    from explorer import hookimpl

    @hookimpl
    def register_predictors(register):
        sys.exit(0)
"""


def test_a_predictor_that_exits_or_raises_keyboard_interrupt_is_missing_not_the_end(tmp_path, normx_exe):
    """Issue 24, item 6: a plugin predictor calling sys.exit(0) made ``normx score`` exit 0 with no
    output; one raising KeyboardInterrupt ended it as a Ctrl-C. Either is the plugin's failure:
    stored as missing with the reason, the other predictors kept."""
    make_plugin(tmp_path, "exiting-predictor", "0.1", "exiting_predictor", EXITING)
    result = run_normx(normx_exe, "score", "bn", "--model", "plaincnn(depth=2, width=8)", "--batch-size", "4",
                       "--batches", "1", "--predictors", "cosine_similarity,quitter,stopper", "--json",
                       path=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["quitter"] == "nan" and data["stopper"] == "nan"
    assert data["missing"]["quitter"].startswith("SystemExit(0) raised by the predictor")
    assert data["missing"]["stopper"].startswith("KeyboardInterrupt raised by the predictor")
    assert isinstance(data["cosine_similarity"], float)


def test_a_study_whose_screening_predictor_exits_runs_to_its_budget(tmp_path, normx_exe):
    """Issue 24, item 6: ``study run`` exited 0 at 0/3 with a trial left RUNNING. Now every trial
    ends (the predictor missing, with its reason) and the budget is met."""
    make_plugin(tmp_path, "exiting-predictor", "0.1", "exiting_predictor", EXITING)
    study = tmp_path / "exits.toml"
    study.write_text(screening_study("exits", 'cosine_similarity = "minimize"').replace(
        "batches = 1", 'batches = 1\npredictors = ["cosine_similarity", "quitter", "stopper"]'))
    store = tmp_path / "exits.db"
    result = run_normx(normx_exe, "study", "run", str(study), "--storage", str(store), path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name="exits", storage=f"sqlite:///{store}").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        missing = t.user_attrs["predictors"]["missing"]
        assert missing["quitter"].startswith("SystemExit(0)") and missing["stopper"].startswith("KeyboardInterrupt")


def test_a_real_ctrl_c_during_a_plugin_predictor_still_interrupts(tmp_path, normx_exe):
    """Only a KeyboardInterrupt that no signal caused is the plugin's: SIGINT while a plugin
    predictor computes still ends ``normx score`` as interrupted (130)."""
    import signal
    import time

    make_plugin(tmp_path, "exiting-predictor", "0.1", "exiting_predictor", EXITING)
    marker = tmp_path / "marker"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NORMX_")}
    environ.update(PYTHONPATH=os.pathsep.join([str(tmp_path), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                   NORMX_TEST_MARKER=str(marker))
    process = subprocess.Popen([*normx_exe, "score", "bn", "--model", "plaincnn(depth=2, width=8)", "--batch-size",
                                "4", "--batches", "1", "--predictors", "cosine_similarity,slow", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), process.communicate(timeout=10)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)  # well within the predictor's 120 s sleep
    finally:
        process.kill()
    assert process.returncode == 130, (out, err)
    assert err.strip() == "normx: interrupted" and out == ""


def test_a_plugin_that_exits_while_registering_is_skipped_with_a_warning(tmp_path, normx_exe):
    """A plugin hook calling sys.exit(0) ended every command at once, silently, with status 0."""
    make_plugin(tmp_path, "exiting-at-load", "0.1", "exiting_at_load", EXITING_AT_LOAD)
    result = run_normx(normx_exe, "predictors", path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cosine_similarity" in result.stdout
    assert "plugin 'exiting-at-load:exiting_at_load' failed to load and was skipped: SystemExit: 0" in result.stderr
