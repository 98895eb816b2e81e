"""Compiled normalized layers (explorer.compile) against the eager path, and every way it may not run.

Real torch.compile (inductor, the C++ backend on this CPU), real training runs and real processes:
the no-compiler test runs ``normx`` with a PATH that holds no C++ compiler. Inductor compiles cost
seconds each on a CPU, so the equivalence test takes every generic preset and a seeded sample of
compositions at tiny shapes, each compiled once (forward + backward) in one process.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
from torch import nn

import explorer
import explorer.compile as compile_module
from explorer.compile import (CompileController, CompileModeError, compile_available, compile_stats, compile_units,
                              parse_compile_mode, structure_key)
from explorer.errors import SpecError
from explorer.plugins import unregister
from explorer.search.space import sample_compositions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "normx-example-plugin"
SHAPE = (4, 32, 4, 4)  # N, C, H, W: 32 channels for GN's 32 groups; every sampled group size divides them

needs_compiler = pytest.mark.skipif(not compile_available("cpu")[0], reason="no C++ compiler for inductor here")


def _builds(spec: explorer.Spec) -> bool:
    try:
        layer = explorer.create_conv(spec, SHAPE[1], SHAPE[1]).double()
        layer(torch.randn(SHAPE, dtype=torch.float64)).sum().backward()
        return True
    except (SpecError, explorer.NormxError):
        return False


GENERIC_PRESETS = sorted(name for name in explorer.get_registry().presets
                         if compile_units(explorer.create_conv(name, SHAPE[1], SHAPE[1])))
SAMPLED = [str(s) for s in sample_compositions(5, seed=10, accept=_builds)]


def _pass(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    out = layer(x)
    loss = (out * grad).sum() + explorer.regularizer_loss(layer)
    loss.backward()
    return (out.detach(), x.grad, *(p.grad.clone() for p in layer.parameters() if p.grad is not None),
            *(b.clone() for b in layer.buffers()))


@needs_compiler
@pytest.mark.slow
def test_every_generic_preset_and_sampled_compositions_match_eager_in_float64():
    assert {"evo_b0", "bmlv", "frn", "lmbv", "preln", "wn", "sws", "rms", "dyt"} <= set(GENERIC_PRESETS)
    assert not {"bn", "ln", "gn", "in", "regnorm"} & set(GENERIC_PRESETS)  # fused kernels stay eager
    assert len(SAMPLED) == 5
    failed_before = compile_stats()["fallbacks"]
    for spec in GENERIC_PRESETS + SAMPLED:
        torch.manual_seed(0)
        eager = explorer.create_conv(spec, SHAPE[1], SHAPE[1]).double().train()
        compiled = copy.deepcopy(eager)
        keys = compile_stats()["compiled_keys"]
        with CompileController(compiled, True):
            for step in range(3):  # the first call of a layer runs eager; the next two compiled
                x = torch.randn(SHAPE, dtype=torch.float64)
                grad = torch.randn((SHAPE[0], SHAPE[1], *SHAPE[2:]), dtype=torch.float64)
                want, got = _pass(eager, x, grad), _pass(compiled, x, grad)
                assert len(want) == len(got)
                for a, b in zip(want, got):
                    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-8, msg=lambda m: f"{spec}, step {step}: {m}")
                eager.zero_grad(), compiled.zero_grad()
        assert compile_stats()["compiled_keys"] > keys, f"{spec} did not run compiled"
    assert compile_stats()["fallbacks"] == failed_before


@needs_compiler
def test_compiled_relu_keeps_relus_gradient_at_zero():
    """Compiled units trace ReLU as where(y > 0, y, 0) (inductor's own ReLU backward is slow on AVX-512):
    values and gradients stay ReLU's, 0 where the pre-activation is exactly 0."""
    torch.manual_seed(0)
    eager = explorer.create_norm("rms", 32).double().train()
    compiled = copy.deepcopy(eager)
    x = torch.randn(SHAPE, dtype=torch.float64)
    x[:, :, :2] = 0.0  # RMS scaling and a bias-free affine keep these exactly 0
    grad = torch.randn(SHAPE, dtype=torch.float64)
    def compiled_calls() -> int:  # compiled now, or compiled code reused (another test may have compiled this key)
        return compile_stats()["compiled_keys"] + compile_stats()["cache_hits"]

    before = compiled_calls()
    with CompileController(compiled, True):
        for _ in range(2):  # the first call runs eager, the second compiled
            want, got = _pass(eager, x, grad), _pass(compiled, x, grad)
            eager.zero_grad(), compiled.zero_grad()
    assert compiled_calls() > before
    assert torch.equal(got[1][:, :, :2], torch.zeros_like(got[1][:, :, :2]))  # ReLU's 0 (a where(y >= 0, …) would give 1)
    for a, b in zip(want, got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-8)


@needs_compiler
def test_float32_channels_last_matches_eager_within_float32_tolerance():
    """The CUDA mode's layout (channels_last) on the CPU: compiled code for that stride, same results."""
    torch.manual_seed(0)
    eager = explorer.create_conv("evo_b0", 32, 32).train().to(memory_format=torch.channels_last)
    compiled = copy.deepcopy(eager)
    with CompileController(compiled, True):
        for _ in range(2):
            x = torch.randn(SHAPE).contiguous(memory_format=torch.channels_last)
            grad = torch.randn(SHAPE)
            for a, b in zip(_pass(eager, x, grad), _pass(compiled, x, grad)):
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@needs_compiler
def test_training_never_recompiles_per_step_and_a_second_run_reuses_the_code():
    from torch._dynamo.utils import counters

    from explorer.data import load_dataset
    from explorer.training import TrainConfig, train

    data = load_dataset("gaussian", "train", limit=40, seed=0)  # 40 = 3 batches of 12 + a remainder
    test = load_dataset("gaussian", "test", limit=30, seed=0)  # evaluation in batches of 16: 16 + 14
    spec = "mean(bx) | std(cx) | affine | relu"
    config = TrainConfig(steps=8, batch_size=12, device="cpu", compile=True, eval_batch_size=16)
    graphs: list[int] = []

    def progress(step, total, loss):
        graphs.append(counters["stats"]["unique_graphs"])

    torch.manual_seed(0)
    model = explorer.create_model("plaincnn(depth=2, width=8)", spec, num_classes=data.num_classes, in_channels=3)
    reference = copy.deepcopy(model)
    result = train(model, data, test, config, progress=progress, progress_every=1)
    assert result.compile == "compiled (compile = true)" and not result.diverged
    assert graphs[1] == graphs[-1], f"graphs compiled after step 2: {graphs}"  # the epoch's wrap-around too
    after_training = counters["stats"]["unique_graphs"]
    assert after_training == graphs[-1]  # evaluation (eval mode, a partial batch) compiled nothing
    eager = train(reference, data, test, TrainConfig(**{**config.__dict__, "compile": False}))
    assert [v for _, v in result.loss_curve] == pytest.approx([v for _, v in eager.loss_curve], rel=1e-4)
    # one prediction may flip: inductor's vector code rounds otherwise than the eager kernels
    assert result.test_accuracy == pytest.approx(eager.test_accuracy, abs=1 / len(test.y) + 1e-9)

    keys = compile_stats()["compiled_keys"]
    torch.manual_seed(1)  # other parameter values, the same structure: the same compiled code
    again = explorer.create_model("plaincnn(depth=2, width=8)", spec, num_classes=data.num_classes, in_channels=3)
    train(again, data, None, config)
    assert compile_stats()["compiled_keys"] == keys
    assert counters["stats"]["unique_graphs"] == after_training
    assert all("forward" not in vars(m) for m in model.modules())  # the model is left as it was


def test_structure_key_ignores_values_and_sees_constants():
    torch.manual_seed(0)
    a = explorer.create_conv("gn(group_size=2) | tlu", 32, 32)
    b = explorer.create_conv("gn(group_size=2) | tlu", 32, 32)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    assert structure_key(a) == structure_key(b)
    assert structure_key(a) != structure_key(explorer.create_conv("gn(group_size=4) | tlu", 32, 32))
    assert structure_key(a) != structure_key(explorer.create_conv("gn(group_size=2) | tlu", 8, 16))


class TickingClock:
    """A fake clock: every read is ``tick`` seconds after the previous one, whatever the machine's load."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_auto_compiles_only_when_the_saving_pays_for_it(monkeypatch):
    """What auto decides from the measured seconds, on a fake clock (1 ms a read) and without
    compile times measured by earlier tests in this process: a busy machine decided otherwise."""
    from explorer.data import load_dataset
    from explorer.training import TrainConfig, train

    monkeypatch.setattr(compile_module, "clock", TickingClock(0.001))
    monkeypatch.setitem(compile_module._STATS, "compile_s", [])
    monkeypatch.setitem(compile_module._STATS, "key_pass_s", [])
    data = load_dataset("gaussian", "train", limit=32, seed=0)
    model = explorer.create_model("plaincnn(depth=2, width=8)", "evo_b0", num_classes=data.num_classes, in_channels=3)
    keys = compile_stats()["compiled_keys"]
    result = train(model, data, None, TrainConfig(steps=6, batch_size=16, device="cpu"))  # compile="auto"
    assert result.compile.startswith("eager (auto: 4 passes x ") and compile_stats()["compiled_keys"] == keys
    # The rule itself, on a real model's measured eager pass: a long run pays, none does not.
    controller = CompileController(model, "auto", planned=10**9)
    x = torch.randn(16, 3, 32, 32)
    for _ in range(2):
        model(x).sum().backward()
        controller.pass_done()
    assert controller.decision.startswith("compiled (auto: ") or not compile_available("cpu")[0]
    assert controller.decide(controller.eager_pass_s or 1.0, 0)[0] is False
    controller.close()
    assert explorer.create_model("cnn10", "bn") is not None and not compile_units(explorer.create_model("cnn10", "bn"))


def test_compile_mode_values():
    assert [parse_compile_mode(v) for v in ("auto", True, False, "true", "FALSE")] == ["auto", True, False, True, False]
    with pytest.raises(CompileModeError, match=r"compile must be \"auto\", true or false, got 'maybe'"):
        parse_compile_mode("maybe")


def test_compile_maybe_in_a_study_file_is_one_line_with_file_and_line(tmp_path, normx_exe):
    study = tmp_path / "s.toml"
    study.write_text('name = "s"\nmodels = ["cnn10"]\n[objectives]\ntest_accuracy = "maximize"\n'
                     '[space]\npresets = ["bn"]\n[screening]\ncompile = "maybe"\n')
    done = subprocess.run([*normx_exe, "study", "run", str(study), "--storage", f"sqlite:///{tmp_path}/x.db"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f'normx: error: {study}:8: screening.compile: must be "auto", true or false, got \'maybe\''
    assert not (tmp_path / "x.db").exists()
    done = subprocess.run([*normx_exe, "score", "bn", "--compile", "maybe"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "normx: error: compile must be \"auto\", true or false, got 'maybe'"]


class HostMax(nn.Module):
    """Reads a value on the host (``float(tensor)``): inductor's generated backward fails on it."""

    def forward(self, x3):
        return x3.new_full((1, 1, 1), float(x3.detach().abs().max()) + 1e-5)


class Branchy(nn.Module):
    """Branches on a tensor's value: not one graph (dynamo's data-dependent control flow)."""

    def forward(self, x3):
        scale = x3.square().mean(dim=(1, 2), keepdim=True).add(1e-5).sqrt()
        if bool((scale > 1e6).any()):
            return scale.clamp(max=1e6)
        return scale


def _plugin(module_class: type) -> types.ModuleType:
    plugin = types.ModuleType("breaking_plugin")

    @explorer.hookimpl
    def register_primitives(register):
        register(explorer.Primitive(name="breaker", slot="scale", factory=lambda channels: module_class()))

    plugin.register_primitives = register_primitives
    return plugin


@needs_compiler
@pytest.mark.parametrize("module_class", [HostMax, Branchy], ids=["host-value", "data-dependent-branch"])
def test_a_primitive_that_breaks_tracing_runs_eager_with_one_warning(capfd, module_class):
    explorer.register_plugin(_plugin(module_class), name="breaking")
    try:
        torch.manual_seed(0)
        eager = explorer.create_conv("mean(cx) | breaker | affine | relu", 32, 32).train()
        compiled = copy.deepcopy(eager)
        with CompileController(compiled, True):
            for _ in range(3):
                x, grad = torch.randn(SHAPE), torch.randn(SHAPE)
                for a, b in zip(_pass(eager, x, grad), _pass(compiled, x, grad)):
                    torch.testing.assert_close(b, a)
        lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("normx:")]
        assert len(lines) == 1, lines
        assert lines[0].startswith("normx: warning: torch.compile failed for mean(cx) | breaker | affine | relu ("), lines
        assert lines[0].endswith("; running eager (same results, slower)")
    finally:
        unregister("breaking")


@needs_compiler
def test_a_plugins_new_primitive_is_compiled_without_doing_anything():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import normx_example_plugin

        explorer.register_plugin(normx_example_plugin, name="example")
        try:
            torch.manual_seed(0)
            eager = explorer.create_conv("mean(cx) | mad(cx) | affine | relu", 32, 32).double().train()
            compiled = copy.deepcopy(eager)
            keys = compile_stats()["compiled_keys"]
            with CompileController(compiled, True):
                for _ in range(2):
                    x, grad = torch.randn(SHAPE, dtype=torch.float64), torch.randn(SHAPE, dtype=torch.float64)
                    for a, b in zip(_pass(eager, x, grad), _pass(compiled, x, grad)):
                        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-8)
            assert compile_stats()["compiled_keys"] == keys + 1
        finally:
            unregister("example")
    finally:
        sys.path.remove(str(EXAMPLE))


NO_COMPILER_STUDY = """
name = "nocc"
models = ["plaincnn(depth=2, width=8)"]
n_trials = 2
[objectives]
test_accuracy = "maximize"
[data]
name = "gaussian"
train_limit = 64
test_limit = 32
[space]
presets = ["evo_b0", "mean(bx) | std(cx) | affine | relu"]
[screening]
batch_size = 16
batches = 3
compile = true
[training]
steps = 4
batch_size = 16
compile = true
"""


def test_without_a_cxx_compiler_on_path_everything_runs_eager_with_one_warning(tmp_path):
    """For real: a PATH without c++/g++/cc, CXX unset, in subprocesses (normx and a whole study)."""
    bin_dir = tmp_path / "bin"  # an empty PATH entry: the interpreter itself is run by its absolute path
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CXX", "CC")}
    env.update(PATH=str(bin_dir), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    normx = [sys.executable, "-m", "explorer"]
    probe = subprocess.run([sys.executable, "-c", "import shutil; print(shutil.which('g++'), shutil.which('c++'))"],
                           capture_output=True, text=True, env=env)
    assert probe.stdout.split() == ["None", "None"]
    args = ["score", "mean(bx) | std(cx) | affine | relu", "--model", "plaincnn(depth=2, width=8)", "--data", "gaussian",
            "--batch-size", "8", "--batches", "3", "--json"]
    done = subprocess.run([*normx, *args, "--compile"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert warnings == ["normx: warning: torch.compile needs a C++ compiler (CXX or g++ on PATH) and found none; "
                        "running eager (same results, slower)"]
    eager = subprocess.run([*normx, *args, "--compile", "false"], capture_output=True, text=True, env=env, timeout=300)
    assert eager.returncode == 0 and eager.stderr.strip() == ""
    assert json.loads(done.stdout)["grad_norm"] == json.loads(eager.stdout)["grad_norm"]

    study = tmp_path / "nocc.toml"
    study.write_text(textwrap.dedent(NO_COMPILER_STUDY))
    run = subprocess.run([*normx, "study", "run", str(study), "--storage", f"sqlite:///{tmp_path}/nocc.db"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("normx: warning: torch.compile needs a C++ compiler") == 1
    import optuna

    trials = optuna.load_study(study_name="nocc", storage=f"sqlite:///{tmp_path}/nocc.db").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(t.user_attrs["train"]["compile"].startswith("eager (torch.compile needs a C++ compiler") for t in trials)
