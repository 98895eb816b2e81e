"""Third-party plugins, found by entry point like the built-ins: listed, composable, and their
failure modes (duplicate names, import errors, strict mode, disabling) reported in one line.

Each test runs ``normx`` in a subprocess with a temporary directory on PYTHONPATH that holds the
plugin: either the example package pip-installed there, or a module with a hand-made
``*.dist-info`` (METADATA + entry_points.txt), which is all importlib.metadata needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

import explorer
from explorer.models import ModelError
from explorer.plugins import unregister

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "normx-example-plugin"


def run_normx(normx_exe: list[str], *args: str, path: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NORMX_")}
    if path is not None:
        environ["PYTHONPATH"] = os.pathsep.join([str(path), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    environ.update(env)
    return subprocess.run([*normx_exe, *args], capture_output=True, text=True, env=environ, timeout=120)


def make_plugin(root: Path, dist: str, version: str, module: str, source: str, entry: str | None = None) -> Path:
    """A plugin module plus a real ``*.dist-info`` declaring it in the ``normx`` entry-point group."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[normx]\n{entry or module} = {module}\n")
    return root


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """The example plugin package pip-installed into a temporary target directory."""
    work = tmp_path_factory.mktemp("example")
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=300,
    )
    assert list(target.glob("normx_example_plugin-0.2.0.dist-info"))
    return target


def test_installed_example_plugin_is_listed_with_version_and_primitives(installed_example, normx_exe):
    result = run_normx(normx_exe, "plugins", "--json", path=installed_example)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    row = rows["normx-example-plugin:mad"]
    assert row["version"] == "0.2.0"
    # the example also contributes a predictor (tests/test_predictor_plugins.py computes it)
    assert row["contributes"] == {"scale": ["mad"], "presets": ["mad_ln"], "predictors": ["dead_unit_fraction"]}
    assert "statistics" in rows and rows["statistics"]["contributes"]["scale"]  # the built-ins as well


def test_installed_example_plugin_composes_into_a_working_normalizer(installed_example, normx_exe):
    result = run_normx(normx_exe, "spec", "gn(groups=4) | mad(gx, groups=4)", "--width", "8", "--batch", "4",
                       path=installed_example)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mean(gx, groups=4) | mad(gx, groups=4) | affine | relu"
    # forward and backward through a conv layer, against the formula, in a process that sees the plugin
    script = textwrap.dedent("""
        import torch, explorer
        assert str(explorer.parse_spec("mad_ln")) == "mean(cx) | mad(cx) | affine | relu"
        torch.manual_seed(0)
        layer = explorer.create_conv("mean(bx) | mad(bx) | affine | relu", 3, 4).double()
        x = torch.randn(5, 3, 6, 6, dtype=torch.float64, requires_grad=True)
        y = layer(x)
        # the formula on independent leaves: conv, centre by the batch mean, divide by the mean
        # absolute deviation (+ eps), γ = 1, β = 0, ReLU
        x_ref = x.detach().clone().requires_grad_(True)
        w_ref = layer.op.weight.detach().clone().requires_grad_(True)
        assert layer.op.bias is None  # a centering step makes the conv's bias redundant
        z = layer.op._conv_forward(x_ref, w_ref, None)
        mu = z.mean(dim=(0, 2, 3), keepdim=True)
        mad = (z - mu).abs().mean(dim=(0, 2, 3), keepdim=True)
        ref = torch.relu((z - mu) / (mad + 1e-5))
        assert torch.allclose(y, ref, atol=1e-9), (y - ref).abs().max()
        grad = torch.randn_like(y)
        y.backward(grad)
        ref.backward(grad)
        for ours, theirs in ((x.grad, x_ref.grad), (layer.op.weight.grad, w_ref.grad)):
            assert torch.allclose(ours, theirs, atol=1e-9), (ours - theirs).abs().max()
        assert x.grad.abs().sum() > 0
        # eval: the running estimates after one training step (momentum 0.1 from 0), as BatchNorm
        layer.eval()
        with torch.no_grad():
            expected = torch.relu((z - 0.1 * mu) / (0.1 * mad + 1e-5))
            assert torch.allclose(layer(x), expected, atol=1e-9), (layer(x) - expected).abs().max()
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMX_")}
    env["PYTHONPATH"] = str(installed_example)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_example_plugin_registered_from_python(tmp_path):
    """``explorer.register_plugin`` adds a plugin object without an entry point."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        import normx_example_plugin

        explorer.register_plugin(normx_example_plugin, name="example")
        try:
            registry = explorer.get_registry()
            assert registry.primitives["mad"].plugin == "example"
            assert registry.plugin_versions["example"] == "0.2.0"
            norm = explorer.create_norm("mean(x) | mad(x) | affine", 3)
            x = torch.randn(2, 3, 4, 4, requires_grad=True)
            norm(x).sum().backward()
            assert x.grad is not None
        finally:
            from explorer.plugins import unregister

            unregister("example")
        assert "mad" not in explorer.get_registry().primitives
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("normx_example_plugin", None)


DUPLICATE = """
    from torch import nn
    from explorer import Primitive, hookimpl

    @hookimpl
    def register_primitives(register):
        register(Primitive(name="relu", slot="activation", factory=lambda channels: nn.ReLU()))
"""

BROKEN = """
    import a_module_that_does_not_exist
"""


def test_duplicate_primitive_names_both_plugins(tmp_path, normx_exe):
    make_plugin(tmp_path, "dup-relu", "1.0", "dup_relu", DUPLICATE)
    result = run_normx(normx_exe, "primitives", path=tmp_path)
    assert_one_line_error(result, "'relu'", "'activations'", "'dup-relu:dup_relu'")


def test_plugin_that_fails_to_import_is_named_and_the_rest_load(tmp_path, installed_example, normx_exe):
    make_plugin(tmp_path, "broken-plugin", "0.3", "broken_plugin", BROKEN)
    path = Path(f"{tmp_path}{os.pathsep}{installed_example}")
    result = run_normx(normx_exe, "plugins", "--json", path=path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "warning" in warnings[0] and "broken-plugin:broken_plugin" in warnings[0]
    assert "a_module_that_does_not_exist" in warnings[0]
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert "a_module_that_does_not_exist" in rows["broken-plugin:broken_plugin"]["error"]
    assert rows["normx-example-plugin:mad"]["contributes"]["scale"] == ["mad"]
    assert "bn" in rows["presets"]["contributes"]["presets"]


HALF_BROKEN = """
    import torch
    from explorer import Primitive, hookimpl

    @hookimpl
    def register_primitives(register):
        register(Primitive(name="half", slot="scale", factory=lambda channels: (lambda x3: torch.full_like(x3, 2.0))))
        raise RuntimeError("the plugin broke after registering half")
"""

BAD_SLOT = """
    from explorer import Primitive, hookimpl

    @hookimpl
    def register_primitives(register):
        register(Primitive(name="oddity", slot="nowhere", factory=lambda channels: None))
"""


@pytest.mark.parametrize(("source", "words"), [
    (HALF_BROKEN, ["the plugin broke after registering half"]),
    (BAD_SLOT, ["unknown slot 'nowhere'"]),
], ids=["raises-after-registering", "malformed-primitive"])
def test_a_plugin_whose_hook_fails_registers_nothing_and_the_rest_work(tmp_path, normx_exe, source, words):
    make_plugin(tmp_path, "shaky-plugin", "0.1", "shaky_plugin", source)
    result = run_normx(normx_exe, "plugins", "--json", path=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "shaky-plugin:shaky_plugin" in warnings[0], result.stderr
    assert all(word in warnings[0] for word in words), warnings[0]
    rows = [row for row in json.loads(result.stdout) if row["name"] == "shaky-plugin:shaky_plugin"]
    assert len(rows) == 1 and not rows[0]["contributes"] and rows[0]["error"]
    # nothing of it is usable, and the built-ins are
    result = run_normx(normx_exe, "spec", "bn | half", path=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 2 and "Traceback" not in result.stderr
    assert "warning" in lines[0] and "unknown primitive or preset 'half'" in lines[1]
    assert run_normx(normx_exe, "spec", "bn", path=tmp_path).returncode == 0
    strict = run_normx(normx_exe, "plugins", path=tmp_path, NORMX_STRICT_PLUGINS="1")
    assert_one_line_error(strict, "shaky-plugin:shaky_plugin", *words)


def test_strict_plugins_turns_an_import_failure_into_an_error(tmp_path, normx_exe):
    make_plugin(tmp_path, "broken-plugin", "0.3", "broken_plugin", BROKEN)
    result = run_normx(normx_exe, "plugins", path=tmp_path, NORMX_STRICT_PLUGINS="1")
    assert_one_line_error(result, "broken-plugin:broken_plugin", "failed to load")


def test_disable_plugins_skips_third_party_but_loads_builtins(tmp_path, installed_example, normx_exe):
    make_plugin(tmp_path, "broken-plugin", "0.3", "broken_plugin", BROKEN)
    path = Path(f"{tmp_path}{os.pathsep}{installed_example}")
    result = run_normx(normx_exe, "plugins", "--json", path=path, NORMX_DISABLE_PLUGINS="1")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    names = {row["name"] for row in json.loads(result.stdout)}
    assert {"statistics", "affine", "activations", "presets"} <= names
    assert not any("example" in n or "broken" in n for n in names)


def test_builtins_are_plugins_of_the_same_entry_point_group():
    from importlib import metadata

    builtin = {ep.name: ep.value for ep in metadata.entry_points(group="normx")
               if ep.dist is not None and ep.dist.name == "norm-explorer"}
    assert {"statistics", "affine", "gates", "activations", "weight_norms", "regularizers", "presets"} <= set(builtin)
    assert all(value.startswith("normx_plugins.") for value in builtin.values())
    registry = explorer.get_registry()
    assert registry.primitives["std"].plugin == "statistics"
    assert registry.presets["bn"].plugin == "presets"


def docs_model_source() -> str:
    """The model plugin written out in docs/plugins.md (section 7), so the guide's example is the tested one."""
    section = (ROOT / "docs" / "plugins.md").read_text().split("## 7. Models", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_third_party_model_registered_with_model_entry_builds_with_create_model():
    module = types.ModuleType("ladder_models")
    exec(compile(docs_model_source(), "docs/plugins.md", "exec"), module.__dict__)
    explorer.register_plugin(module, name="ladder")
    try:
        registry = explorer.get_registry()
        assert registry.models["ladder"].plugin == "ladder"
        assert registry.contributions()["ladder"] == {"models": ["ladder"]}
        model = explorer.create_model("ladder(4, width=4)", "gn(group_size=2)", num_classes=5)
        assert model.model_name == "ladder(rungs=4, width=4)"
        assert [layer.op.out_channels for layer in model.normalized_layers] == [4, 8, 16, 32]
        assert all(str(layer.spec) == "mean(gx, group_size=2) | std(gx, group_size=2) | affine | relu"
                   for layer in model.normalized_layers)
        assert model.probes == model.normalized_layers
        x = torch.randn(3, 3, 8, 8, requires_grad=True)
        out = model(x)
        assert out.shape == (3, 5)
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert explorer.create_model("ladder", "bn").model_name == "ladder"  # defaults: the bare name
        with pytest.raises(ModelError, match="ladder has no parameter 'rung' .*did you mean 'rungs'"):
            explorer.create_model("ladder(rung=2)", "bn")
        with pytest.raises(ModelError, match="ladder: rungs and width must be at least 1"):
            explorer.create_model("ladder(rungs=0)", "bn")
        result = explorer.score("bn", model="ladder(rungs=2)", inputs=[torch.randn(4, 3, 8, 8)])
        assert result["model"] == "ladder(rungs=2)" and len(result["activation_variance"]) == 2
    finally:
        unregister("ladder")
    assert "ladder" not in explorer.get_registry().models


OLD_STYLE_MODEL = """
    from explorer import hookimpl

    @hookimpl
    def register_models(register):
        register("oldnet", lambda spec, **params: None, "registered without a ModelEntry")
"""


def test_installed_model_plugin_is_listed_and_an_old_style_registration_is_refused(tmp_path, normx_exe):
    make_plugin(tmp_path / "ladder", "ladder-models", "0.1", "ladder_models", docs_model_source())
    make_plugin(tmp_path / "old", "old-models", "0.1", "old_models", OLD_STYLE_MODEL)
    path = Path(f"{tmp_path / 'ladder'}{os.pathsep}{tmp_path / 'old'}")
    result = run_normx(normx_exe, "models", "--json", path=path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "old-models:old_models" in warnings[0] and "explorer.ModelEntry" in warnings[0]
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert "oldnet" not in rows
    assert rows["ladder"]["plugin"] == "ladder-models:ladder_models"
    assert rows["ladder"]["params"]["rungs"]["default"] == 3
    assert rows["resnet56"]["plugin"] == "models"  # the built-ins, registered the same way
