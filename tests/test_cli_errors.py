"""Bad input gives one clear line and a non-zero exit, never a traceback or a NaN.

Through the installed ``normx`` (subprocess), through ``explorer.cli.main`` in-process, and through
the Python API, whose build-time and forward-time errors must all be :class:`NormxError`.
"""

from __future__ import annotations

import subprocess

import pytest
import torch

import explorer
from explorer.cli import main
from explorer.errors import NormxError, SpecError

BATCH_PRESETS = ["bn", "vn", "bmlv", "lmbv", "evo_b0"]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- the installed command


@pytest.mark.parametrize(("spec", "words"), [
    ("bnn", ["unknown primitive or preset 'bnn'", "closest:", "bn"]),
    ("mean(bx) | std(bx", ["expected ')'", "at position 17", "std(bx⟨here⟩"]),
])
def test_normx_command_prints_one_line_and_fails(normx_exe, spec, words):
    result = subprocess.run([*normx_exe, "spec", spec], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert line.startswith("normx: error: ")
    for word in words:
        assert word in line


# ----------------------------------------------------------------------------- explorer.cli.main in-process


@pytest.mark.parametrize(("argv", "words"), [
    (["spec", "bnn"], ["unknown primitive or preset 'bnn'", "bn"]),
    (["spec", "ln | tluu"], ["'tluu'", "tlu", "at position 5"]),
    (["spec", "gn(group=3)"], ["no parameter 'group'", "groups", "group_size"]),
    (["spec", "mean(bx) | std(gx, groups=4, eps=)"], ["expected a value for 'eps'", "at position 33"]),
    (["spec", "bn | | relu"], ["expected a name", "at position 5"]),
    (["spec", "gn(groups=3)", "--width", "64"], ["groups=3", "64 channels"]),
    (["spec", "gn(group_size=5)", "--width", "64"], ["group_size=5", "64 channels"]),
    (["spec", "evo_s0", "--width", "48"], ["groups=32", "48 channels"]),
    (["spec", "bn", "--width", "0"], ["at least 1"]),
    (["spec", "bn", "--batch", "4"], ["--batch needs --width"]),
    (["spec", "in", "--width", "4", "--batch", "0"], ["at least 1"]),
    (["spec"], ["the following arguments are required: spec"]),
    (["no-such-command"], ["invalid choice"]),
])
def test_cli_errors_are_one_line_with_exit_2(capsys, argv, words):
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    line = one_line(err)
    for word in words:
        assert word in line, line


@pytest.mark.parametrize("preset", BATCH_PRESETS)
def test_batch_statistics_with_batch_size_one_is_a_clear_error(capsys, preset):
    code, out, err = run_main(capsys, "spec", preset, "--width", "8", "--batch", "1")
    assert code == 2
    line = one_line(err)
    assert "batch size 1" in line and "more than one sample" in line
    code, out, err = run_main(capsys, "spec", preset, "--width", "8", "--batch", "2")
    assert code == 0 and err == ""
    assert out.strip() == str(explorer.parse_spec(preset))


def test_spec_width_resolves_the_canonical_form(capsys):
    code, out, _ = run_main(capsys, "spec", "gn(group_size=16)", "--width", "16")
    assert code == 0 and out.strip() == str(explorer.parse_spec("ln"))
    code, out, _ = run_main(capsys, "spec", "gn(group_size=4)", "--width", "16", "--batch", "2")
    assert code == 0 and out.strip() == str(explorer.parse_spec("gn(groups=4)"))


# ----------------------------------------------------------------------------- the Python API


@pytest.mark.parametrize(("build", "words"), [
    (lambda: explorer.create_norm("gn(groups=3)", 64), ["groups=3", "64 channels"]),
    (lambda: explorer.create_norm("gn(group_size=6)", 64), ["group_size=6", "64 channels"]),
    (lambda: explorer.create_conv("gn(groups=3)", 3, 64), ["groups=3", "64 channels"]),
    (lambda: explorer.create_conv("mean(gx, groups=2, at=pre) | std(cx)", 3, 8), ["groups=2", "3 channels"]),
    (lambda: explorer.create_linear("evo_s0", 4, 40), ["groups=32", "40 channels"]),
    (lambda: explorer.create_norm("bnn", 8), ["unknown primitive or preset 'bnn'"]),
    (lambda: explorer.create_norm("preln", 8), ["create_normalized_layer"]),
    (lambda: explorer.create_norm("wn", 8), ["create_normalized_layer"]),
    (lambda: explorer.create_normalized_layer("bn", torch.nn.ReLU()), ["conv or linear op"]),
])
def test_build_errors_are_normx_errors(build, words):
    with pytest.raises(NormxError) as info:
        build()
    for word in words:
        assert word in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("preset", BATCH_PRESETS)
@pytest.mark.parametrize("shape", [(1, 8, 4, 4), (1, 8), (1, 1, 8)])
def test_batch_of_one_in_training_raises_and_eval_works(preset, shape):
    norm = explorer.create_norm(preset, 8)
    with pytest.raises(NormxError, match="batch size 1"):
        norm(torch.randn(*shape))
    layer = explorer.create_conv(preset, 3, 8)
    with pytest.raises(NormxError, match="batch size 1"):
        layer(torch.randn(1, 3, 4, 4))
    if len(shape) < 4 and preset == "evo_b0":
        return  # EvoNorm-B0's instance statistic needs spatial input (see the next test)
    wide = (2,) + shape[1:]
    norm(torch.randn(*wide))  # one training step fills the running statistics
    norm.eval()
    y = norm(torch.randn(*shape))  # eval uses them: a single sample is fine
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(("spec", "x", "words"), [
    ("bn", torch.randn(4, 6, 3, 3), ["built for 8 channels, got 6"]),
    ("gn(groups=2)", torch.randn(4, 6), ["built for 8 channels, got 6"]),
    ("ln", torch.randn(2, 3, 6), ["built for 8 channels, got 6", "last dim"]),
    ("rms", torch.randn(8), ["(N, C), (N, L, C) or (N, C, H, W)"]),
    ("in", torch.randn(4, 8), ["spatial"]),
    ("frn", torch.randn(4, 8), ["spatial"]),
    ("evo_b0", torch.randn(4, 8), ["spatial"]),
    ("mean(b) | std(b)", None, ["running statistics are empty"]),
])
def test_forward_errors_are_normx_errors(spec, x, words):
    norm = explorer.create_norm(spec, 8)
    if x is None:  # eval before any training step: no running statistics yet
        norm.eval()
        x = torch.randn(4, 8, 3, 3)
    with pytest.raises(NormxError) as info:
        norm(x)
    for word in words:
        assert word in str(info.value)


def test_layer_forward_errors_are_normx_errors():
    conv = explorer.create_conv("bn", 3, 8)
    for x in (torch.randn(2, 4, 5, 5), torch.randn(2, 3), torch.randn(3, 5, 5)):
        with pytest.raises(NormxError, match="C = 3"):
            conv(x)
    linear = explorer.create_linear("ln", 3, 8)
    with pytest.raises(NormxError, match="C = 3"):
        linear(torch.randn(2, 4))
    assert linear(torch.randn(2, 5, 3)).shape == (2, 5, 8)  # a sequence: the op acts on the last dim


def test_spec_errors_are_value_errors_too():
    """Callers that catch ValueError (e.g. argument validation) also see spec errors."""
    with pytest.raises(ValueError):
        explorer.parse_spec("bn |")
    assert issubclass(SpecError, NormxError)


def test_control_characters_in_the_input_are_escaped_in_its_error(tmp_path, normx_exe):
    """An escape sequence in a spec (here: set the terminal's title, ring the bell) is shown, not run."""
    for args in (["spec", "bn | \x1b]0;PWNED\x07relu"], ["score", "bn", "--model", "cnn\x1b[2J10"]):
        done = subprocess.run([*normx_exe, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.startswith("normx: error: ")
        assert "\x1b" not in done.stderr and "\x07" not in done.stderr, repr(done.stderr)
        assert "\\x1b" in done.stderr
    study = tmp_path / "s.toml"
    study.write_text('name = "s"\nmodels = ["cnn10"]\n[objectives]\ntest_accuracy = "maximize"\n'
                     '[space]\npresets = ["bn\\u001b]0;PWNED\\u0007"]\n')
    done = subprocess.run([*normx_exe, "study", "run", str(study), "--storage", str(tmp_path / "s.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "\x1b" not in done.stderr and "\\x1b" in done.stderr, repr(done.stderr)
