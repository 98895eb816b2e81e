"""``normx report`` on a real SQLite study: the rich report, JSON and CSV exports, bad input; and the
catalog commands rendering through the shared components."""

from __future__ import annotations

import csv
import io
import json

import pytest
from test_tui_model import write_study

from explorer.cli import main


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'study.db'}"
    write_study(url, n=30, running=1)
    return url


def test_rich_report_has_pareto_best_and_validation(url, capsys):
    import optuna

    assert main(["report", "demo", "--storage", url, "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="demo", storage=url)
    assert f"Pareto front ({len(study.best_trials)} of 31 trials)" in out
    assert "best per objective" in out and "predictor validation" in out and "Kendall" in out
    assert "speed–stability trade-off" in out


def test_json_export_matches_optuna_and_scipy(url, capsys):
    import optuna
    from scipy import stats

    assert main(["report", "demo", "--storage", url, "--json", "--resamples", "100"]) == 0
    data = json.loads(capsys.readouterr().out)
    study = optuna.load_study(study_name="demo", storage=url)
    assert {r["number"] for r in data["pareto"]} == {t.number for t in study.best_trials}
    assert len(data["trials"]) == 31
    assert data["summary"]["counts"]["running"] == 1 and data["summary"]["budget"] == 31
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best_acc = max(complete, key=lambda t: t.values[0])
    assert data["best"]["test_accuracy"]["number"] == best_acc.number
    pair = next(p for p in data["validation"]["pairs"]
                if p["predictor"] == "cosine_similarity" and p["measure"] == "test_accuracy")
    x = [t.user_attrs["predictors"]["cosine_similarity"] for t in complete]
    y = [t.user_attrs["train"]["test_accuracy"] for t in complete]
    assert pair["kendall_tau"]["value"] == pytest.approx(stats.kendalltau(x, y)[0])
    assert pair["spearman_rho"]["value"] == pytest.approx(stats.spearmanr(x, y)[0])


def test_csv_export_and_atomic_output(url, tmp_path, capsys):
    assert main(["report", "demo", "--storage", url, "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 31
    assert {"number", "spec", "state", "pareto", "cosine_similarity", "test_accuracy", "reason"} <= set(rows[0])
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned and all(r["reason"].startswith("grad_explosion_exponent") for r in pruned)
    out = tmp_path / "report.csv"
    assert main(["report", "demo", "--storage", url, "--csv", "-o", str(out)]) == 0
    assert out.read_text().count("\n") == 32
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]  # no temporary file left behind


def test_report_bad_input_is_one_line(url, tmp_path, capsys):
    assert main(["report", "nope", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no study named 'nope'" in err and "studies: demo" in err
    assert main(["report", "demo", "--storage", str(tmp_path / "missing.db")]) == 2
    assert "no SQLite storage file" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()
    assert main(["report", "demo", "--storage", "postgresql://u:pw123@127.0.0.1:9/db", "--json"]) == 2
    err = capsys.readouterr().err
    assert "pw123" not in err and "u:***@" in err
    assert main(["report", "demo", "--storage", url, "-o", str(tmp_path / "no" / "dir.txt")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_study_without_trained_trials_still_reports(tmp_path, capsys):
    import optuna

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="fresh", storage=url, directions=["maximize", "minimize"])
    assert main(["report", "fresh", "--storage", url]) == 0
    assert "no trials yet" in capsys.readouterr().out
    assert main(["report", "fresh", "--storage", url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trials"] == [] and isinstance(data["validation"], str)


def test_catalog_commands_render_through_the_shared_tables(capsys):
    from explorer.cli.catalog import normalizers_data

    assert main(["normalizers"]) == 0
    out = capsys.readouterr().out
    assert "normalizers (presets)" in out and "bn" in out
    # formulas with brackets are printed as text, never parsed as rich markup
    from rich.console import Console

    from explorer.cli.catalog_tables import normalizers_table, score_table

    console = Console(file=io.StringIO(), width=200)
    console.print(normalizers_table([{"name": "x", "composition": "mean(bx)", "formula": "[b]A[/b] / σ", "params": {}}]))
    assert "[b]A[/b] / σ" in console.file.getvalue()
    assert len(normalizers_data()) >= 10
    console = Console(file=io.StringIO(), width=120)
    console.print(score_table({"spec": "mean(bx) | std(bx) | affine | relu", "model": "cnn10",
                               "cosine_similarity": 0.25, "grad_explosion_exponent": 0.1, "stable_rank": 4.0,
                               "activation_variance": [1.0, 2.0], "grad_norm": [3.0, 1.0], "overflow": False,
                               "variance_growth": {"kind": "linear", "rate": 1.0}, "spread": {"cosine_similarity": 0.01}}))
    text = console.file.getvalue()
    assert "0.2500" in text and "linear" in text and "1.000 2.000" in text
    assert main(["plugins"]) == 0 and "statistics" in capsys.readouterr().out
    from explorer.cli.catalog_tables import models_table

    console = Console(file=io.StringIO(), width=200)
    console.print(models_table([{"name": "resnet56", "params": {"variant": {"default": "standard", "choices": ["standard", "preact"]}},
                                 "description": "[32, block(32,9)]", "plugin": "models"}]))
    assert "variant=standard [standard|preact]" in console.file.getvalue() and "[32, block(32,9)]" in console.file.getvalue()


def test_json_trials_carry_each_models_predictors_and_training(url, capsys):
    """A study over several models (the transformer placements) is compared per model from --json."""
    import optuna

    assert main(["report", "demo", "--storage", url, "--json", "--resamples", "100"]) == 0
    data = json.loads(capsys.readouterr().out)
    study = optuna.load_study(study_name="demo", storage=url)
    for record in data["trials"]:
        stored = study.trials[record["number"]].user_attrs.get("predictors_by_model")
        if stored:
            assert record["by_model"]["cnn10"]["predictors"]["cosine_similarity"] == pytest.approx(
                stored["cnn10"]["cosine_similarity"])
