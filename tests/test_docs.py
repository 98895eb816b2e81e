"""The README's commands, run for real: every ``bash`` block line is either run here (the cheap
ones, through the same ``main`` as the ``normx`` script) or named with the test that covers it or
the reason it cannot run here (downloads, GPUs, other machines). A new README command must be
classified, so the README cannot drift from what the CLI does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from explorer.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: cheap commands -> text their output must contain (from the README's own comment where it gives one)
CHEAP: dict[str, str] = {
    "normx spec 'gn(group_size=1)'": "mean(x) | std(x) | affine | relu",
    "normx normalizers": "γ ⊙ tanh(α·A) + β",  # DyT, as the README writes it
    "normx primitives": "W = g·V/‖V‖",  # weight_norm
    "normx plugins": "statistics",
    "normx predictors": "cosine_similarity",
    "normx spec 'gn(group_size=64)' --width 64 --batch 8": "mean(cx) | std(cx) | affine | relu",
}
#: commands that read the quick study (run here on a small study named quick that normx study run made)
ON_THE_QUICK_STUDY: dict[str, str] = {
    "normx study pareto quick": "quick",
    "normx study validate quick": "",
    "normx study list": "quick",
    "normx report quick": "quick",
    "normx report quick --json > quick.json": "",
    "normx study validate quick --json --resamples 2000": "combined",
    "normx report quick --plots figs/": "quick",
}
#: the others: where they are tested, or why they cannot run in a test
ELSEWHERE: dict[str, str] = {
    "pip install -e '.[test]' && normx study run studies/quick.toml": "the set-up, and the quick study (minutes)",
    "pytest": "this suite",
    "pip install ./examples/normx-example-plugin && normx plugins": "test_plugins.py installs the example",
    "normx spec 'mean(cx) | mad(cx) | affine | relu' --width 64 --batch 8": "test_plugins.py (needs the example)",
    "normx score bn --model cnn10 --data synthetic --batch-size 64 --batches 4 --seeds 3": "test_score_cli.py",
    "normx score 'gn(group_size=4)' --model 'resnet56(variant=preact)' --json": "test_score_cli.py (smaller)",
    "normx study run studies/quick.toml": "minutes; test_search.py runs studies end to end, and below a small quick",
    "normx study run studies/paper_normalizers.toml --storage sqlite:///paper.db": "CIFAR-100 and hours",
    "pip install -e '.[postgres]'": "the postgres extra: psycopg2, in the test extra too",
    "normx score bn --predictors default,snip,synflow,naswot": "test_predictor_plugins.py (the CLI subset)",
    "normx study run studies/quick.toml --workers 2": "about a minute; test_screening_study.py runs the quick study small",
    "export NORMX_STORAGE='postgresql+psycopg2://user:password@db-host/normx'": "a shell variable: the default storage "
        "(explorer.search.default_storage)",
    "normx study run studies/batch_free.toml --workers 4": "test_distributed.py (a throwaway PostgreSQL server)",
    "python benchmarks/bench_screening.py": "a benchmark (minutes); test_screening_study.py checks its accounting",
    "python benchmarks/bench_screening.py --quick": "a benchmark; test_screening_study.py runs its accounting",
    "python benchmarks/bench_screening.py --json": "a benchmark (minutes)",
    "pip install optuna-dashboard": "not a dependency",
    "optuna-dashboard sqlite:///normx.db": "a web server",
    "normx view quick": "test_tui_app.py (Textual's Pilot)",
    "normx reproduce claim3 --small --out runs/reproduce": "test_score_cli.py::test_reproduce_claim3_small_for_real",
    "normx reproduce claim4 --data cifar100 --download": "downloads CIFAR-100",
    "normx reproduce fig9 --small --train-epochs 4": "trains six group sizes (minutes)",
    "normx table build studies/normbench/digits.toml --workers 2 --storage runs/normbench.db":
        "about an hour of 2 cores; test_normbench.py builds (and kills and resumes) a tiny table",
    "normx table list": "test_normbench.py::test_the_table_commands",
    "normx table show digits": "test_normbench.py::test_the_table_commands (on the built tiny table)",
    "normx table learned": "test_learned.py::test_the_table_learned_command_prints_json_and_a_table (hand-made tables)",
    "normx table replay digits --plots figures/": "test_normbench.py::test_the_table_commands (a tiny table)",
}


def readme_commands() -> list[str]:
    """Every command line of the README's ``bash`` blocks, without its trailing comment."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            command = re.split(r"\s+#\s", " " + line, maxsplit=1)[0].strip()
            if command:
                commands.append(command)
    return commands


def run(command: str, capsys) -> str:
    """``normx ARGS [> FILE]`` through the CLI's main; the output (written to FILE when redirected)."""
    words = shlex.split(command)
    target = None
    if ">" in words:
        words, target = words[:words.index(">")], words[words.index(">") + 1]
    assert words[0] == "normx"
    capsys.readouterr()
    code = main(words[1:])
    out, err = capsys.readouterr()
    assert code == 0, f"{command}: exit {code}: {err}"
    assert "Traceback" not in err
    if target:
        Path(target).write_text(out)
    return out


def test_every_readme_command_is_run_or_accounted_for():
    commands = readme_commands()
    assert len(commands) >= 25
    known = {**CHEAP, **ON_THE_QUICK_STUDY, **ELSEWHERE}
    unclassified = [c for c in commands if c not in known]
    assert not unclassified, f"README commands no test runs or names: {unclassified}"
    stale = [c for c in known if c not in commands]
    assert not stale, f"no longer in the README: {stale}"


@pytest.mark.parametrize("command", list(CHEAP))
def test_cheap_readme_command(command, capsys):
    assert CHEAP[command] in run(command, capsys)


QUICK = """\
name = "quick"
models = ["mlp(depth=2, width=16)"]
n_trials = 4
[objectives]
test_accuracy = "maximize"
cosine_similarity = "minimize"
grad_explosion_exponent = "minimize"
[data]
name = "gaussian"
train_limit = 96
test_limit = 32
[space]
presets = ["bn", "ln", "rms", "gn(group_size=4)"]
[screening]
batch_size = 32
batches = 1
reject_variance_growth = []
[training]
steps = 3
batch_size = 32
"""


def test_readme_commands_on_a_quick_study(tmp_path, monkeypatch, capsys, normx_exe):
    """Every README command that reads the quick study, in a fresh directory with the README's
    default storage (sqlite:///normx.db), on a study named quick that ``normx study run`` made
    (a small one: the shipped quick.toml takes minutes)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NORMX_STORAGE", raising=False)
    (tmp_path / "quick.toml").write_text(QUICK)
    made = subprocess.run([*normx_exe, "study", "run", "quick.toml"], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "NORMX_STORAGE"})
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "normx.db").exists()
    for command, expected in ON_THE_QUICK_STUDY.items():
        assert expected in run(command, capsys), command
    report = json.loads((tmp_path / "quick.json").read_text())
    assert report["study"] == "quick" and len(report["trials"]) == 4 and report["summary"]["budget"] == 4
