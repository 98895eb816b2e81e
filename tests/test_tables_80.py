"""Every table the CLI prints fits 80 columns: compositions and names kept whole (stacked, or
abbreviated with a legend). The commands run in a subprocess like a user's, with ``COLUMNS=80`` and
stdout a pipe (rich then prints plain text at that width); their output is compared with reviewed
snapshots in tests/snapshots/ (see tests/snapshot_check.py: a missing snapshot fails)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from snapshot_check import check_snapshot
from test_tui_model import write_study

WIDTH = 80


def normx(*args: str) -> str:
    env = {**os.environ, "COLUMNS": str(WIDTH), "LINES": "50"}
    env.pop("FORCE_COLOR", None)
    proc = subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def check_fits(text: str, whole: list[str]) -> None:
    """No line is wider than 80 columns, and each of ``whole`` is on one line (not wrapped, not cut)."""
    from rich.cells import cell_len

    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= WIDTH
    for name in whole:
        assert any(name in line for line in lines), f"{name!r} is wrapped or cut"
    assert "…" not in text


def test_normalizers_at_80_columns():
    text = normx("normalizers")
    rows = json.loads(normx("normalizers", "--json"))
    check_fits(text, [r["composition"] for r in rows] + [r["formula"] for r in rows] + [r["name"] for r in rows])
    check_snapshot("cli_normalizers_80", text)


def test_primitives_at_80_columns():
    text = normx("primitives")
    rows = json.loads(normx("primitives", "--json"))
    check_fits(text, [r["name"] for r in rows] + [r["formula"] for r in rows])
    check_snapshot("cli_primitives_80", text)


def test_models_at_80_columns():
    text = normx("models")
    rows = json.loads(normx("models", "--json"))
    choices = [f"[{'|'.join(p['choices'])}]" for r in rows for p in r["params"].values() if p.get("choices")]
    check_fits(text, [r["name"] for r in rows] + choices)
    check_snapshot("cli_models_80", text)


def test_score_at_80_columns():
    args = ("score", "gn(group_size=4)", "--model", "resnet(blocks=2, width=8)", "--data", "gaussian",
            "--batch-size", "8", "--batches", "1")
    text = normx(*args)
    result = json.loads(normx(*args, "--json"))
    check_fits(text, [result["spec"], result["model"], "grad explosion exponent"])
    for value in result["activation_variance"]:  # every layer shown, none cut
        assert f"{value:.3f}" in text
    for key in ("cosine_similarity", "grad_explosion_exponent", "stable_rank"):
        assert f"{result[key]:.4f}" in text, key
    # the layout, with every measured number masked: a value that went through BLAS rounds to
    # another last digit on another CPU (the stable rank sits 5e-6 from a rounding boundary here)
    check_snapshot("cli_score_80", re.sub(r"\d+\.\d+(?:e[+-]\d+)?", lambda m: "#" * len(m.group()), text))


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('tables') / 'study.db'}"
    write_study(url, n=40, running=0, n_trials=50)
    return url


def test_validate_at_80_columns(study_db):
    text = normx("study", "validate", "demo", "--storage", study_db, "--resamples", "200")
    check_fits(text, ["cosine_similarity", "grad_explosion_exponent", "stable_rank", "mean training accuracy"])
    check_snapshot("cli_validate_80", text)


def test_report_tables_at_80_columns(study_db):
    """The report's tables (best, Pareto front, validation) keep each composition whole on a line."""
    text = normx("report", "demo", "--storage", study_db, "--resamples", "100")
    data = json.loads(normx("report", "demo", "--storage", study_db, "--resamples", "100", "--json"))
    from rich.cells import cell_len

    assert max(cell_len(line) for line in text.splitlines()) <= WIDTH
    for trial in data["pareto"]:
        assert any(f"#{trial['number']}  {trial['spec']}" in line for line in text.splitlines())


@pytest.mark.parametrize("claim", ["claim4", "normfree"])
def test_reproduce_tables_at_80_columns(claim, monkeypatch, capsys):
    """One table per model, the spec and its growth stacked, short number headers with their legend."""
    from rich.cells import cell_len
    from test_figures import MICRO

    from explorer import claims
    from explorer.cli.reproduce import SHORT, _print_report

    result = claims.CLAIMS[claim](MICRO)
    result.update(scale="small", wall_time_s=1.0)
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    _print_report(result, claims.verdict(result), [])
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= WIDTH and "…" not in text
    for row in claims.table_rows(result):
        first_cells = [line.split("│")[1].strip() for line in lines if line.count("│") > 2]
        assert row["spec"] in first_cells  # each spec whole in the first column
        assert any(f"model {row['model']}" in line for line in lines)
    assert "cos sim = cosine_similarity" in text or claim == "claim4"
    assert SHORT["grad_explosion_exponent"] in text
