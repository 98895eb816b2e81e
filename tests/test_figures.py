"""Figures, verdicts and the ``normx reproduce`` report: figures from the real claim code at a tiny
scale, verdicts on results that hold and that do not, the CLI without matplotlib and with a bad --out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from explorer import claims
from explorer.cli import main

pytest.importorskip("matplotlib")
from explorer.plots import claim_figures as figures  # noqa: E402  (needs matplotlib, an optional extra)

#: The smallest scale every claim runs at: seconds per claim on a CPU.
MICRO = claims.Scale(resnet="resnet(blocks=2, width=8)", cnn=["cnn10(width_multiplier=0.125)"], plaincnn_depth=4,
                     plaincnn_width=8, image_size=32, batch_size=8, batches=1, seeds=1, small_batch=4,
                     small_batches=1, min_width=4, fig_resnet="resnet(blocks=2, width=8)", rank_image_size=8,
                     train_epochs=1, train_batch_size=16, train_limit=32, test_limit=16)
MICRO_ARGS = ", ".join(f"{k}={v!r}" for k, v in MICRO.__dict__.items())


@pytest.mark.parametrize("claim", sorted(claims.CLAIMS))
def test_each_figure_writes_png_and_svg_from_the_claim_code(claim, tmp_path):
    steps: list[claims.Step] = []
    result = claims.CLAIMS[claim](MICRO, progress=steps.append)
    assert [s.index for s in steps] == list(range(1, steps[-1].total + 1))  # every measurement reported, in order
    paths = figures.write_figure(result, tmp_path / claim)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 5000
    svg = paths[1].read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    title = figures.create_figure(result)._suptitle.get_text()
    assert title.startswith("Figure "), title  # the paper's figure number in the title
    assert not list(tmp_path.glob(".*.tmp"))
    held = claims.verdict(result)
    assert held is not None and held[1].split(":")[0] in {f"{n} {v}" for n in (
        "Claim 1", "Claim 2", "Claim 3", "Claim 4", "Figure 6b", "Figure 9's trade-off")
        for v in ("holds", "does not hold", "holds only in part")} | {"No verdict"} | {
        f"Normalization-free layers {v} like BN at initialization" for v in ("look", "do not look")}


def test_fig9_trained_result_has_test_accuracy():
    result = claims.fig9(MICRO)
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in result["rows"])
    assert "best_group_size" in result["summary"][MICRO.cnn[0]]


def _claim3(ranks: list[float]) -> dict:
    rows = [{"group_size": g, "sqrt_width_over_group_size": (32 / g) ** 0.5, "stable_rank": r}
            for g, r in zip((1, 2, 4, 8, 16, 32), ranks)]
    fit = claims.linear_fit([r["sqrt_width_over_group_size"] for r in rows], ranks) if len(rows) > 1 else None
    return {"claim": "claim3", "rows": rows, "summary": {"fit": fit}}


def test_claim3_verdict_holds_and_does_not():
    holds, sentence = claims.verdict(_claim3([11.8, 7.4, 6.2, 5.0, 4.5, 4.3]))
    assert holds and sentence.startswith("Claim 3 holds: stable rank falls with group size (τ = -1.00")
    assert "R² = 0.9" in sentence and "criterion" in sentence
    holds, sentence = claims.verdict(_claim3([4.3, 4.5, 5.0, 6.2, 7.4, 11.8]))
    assert not holds and sentence.startswith("Claim 3 does not hold: stable rank does not fall")


def _growth(kind: str, rate: float) -> dict:
    return {"kind": kind, "rate": rate}


def _layers(claim: str, keys: list[dict], value: str) -> list[dict]:
    return [dict(k, layer=i, **{value: 1.0 + i}) for k in keys for i in range(4)]


def test_claim1_verdict():
    specs = ["bn", "gn(group_size=4)", "ln"]
    rows = _layers("claim1", [{"spec": s} for s in specs], "activation_variance")
    good = {"claim": "claim1", "rows": rows, "summary": {s: _growth("linear", 0.3) for s in specs}}
    assert claims.verdict(good) == (True, claims.verdict(good)[1]) and "linearly" in claims.verdict(good)[1]
    bad = dict(good, summary=dict(good["summary"], ln=_growth("exponential", 1.2)))
    holds, sentence = claims.verdict(bad)
    assert not holds and "LN grows exponentially (1.20 doublings per block)" in sentence


def test_claim2_verdict_says_figure_3c_does_not_reproduce():
    keys = [{"spec": s, "variant": v} for v in ("standard", "skipinit", "resrelu") for s in ("wn", "sws")]
    summary = {"wn/standard": _growth("exponential", 2.3), "sws/standard": _growth("exponential", 2.1),
               "wn/skipinit": _growth("exponential", 1.9), "sws/skipinit": _growth("flat", 0.0),
               "wn/resrelu": _growth("exponential", 1.6), "sws/resrelu": _growth("exponential", 1.5)}
    result = {"claim": "claim2", "rows": _layers("claim2", keys, "activation_variance"), "summary": summary}
    holds, sentence = claims.verdict(result)
    assert holds and sentence.startswith("Claim 2 holds") and "Figure 3c does not reproduce" in sentence
    summary["sws/standard"] = _growth("linear", 0.4)
    holds, sentence = claims.verdict(result)
    assert not holds and sentence.startswith("Claim 2 does not hold: SWS does not grow exponentially")


def test_claim4_verdict_names_the_setting_out_of_order():
    order = dict(zip(claims.GRADIENT_ORDER, (0.20, 0.15, 0.10, 0.05)))
    summary = {f"cnn10/batch={b}/{s}": e for b in (256, 16) for s, e in order.items()}
    keys = [{"model": "cnn10", "batch_size": b, "spec": s} for b in (256, 16) for s in order]
    result = {"claim": "claim4", "rows": _layers("claim4", keys, "grad_norm"), "summary": summary}
    assert claims.verdict(result)[0]
    summary["cnn10/batch=16/ln"] = 0.3
    holds, sentence = claims.verdict(result)
    assert not holds and "1 of 2 settings" in sentence and "cnn10, batch 16: 0.200 ≥ 0.150 ≥ 0.100 ≥ 0.300 (out" in sentence


def test_one_group_size_is_said_in_one_line_not_plotted():
    result = _claim3([5.0])
    holds, sentence = claims.verdict(result)
    assert not holds and sentence.startswith("No verdict: claim3 measured one group size only (1)")
    with pytest.raises(ValueError, match="one group size only"):
        figures.create_figure(result)


def test_kendall_tau():
    assert claims.kendall_tau([1, 2, 3], [3, 2, 1]) == -1
    assert claims.kendall_tau([1, 2, 3], [1, 1, 2]) == pytest.approx(2 / 3)


CLI_WITHOUT_MATPLOTLIB = f"""
import sys
sys.modules["matplotlib"] = None  # importing matplotlib now fails as when it is not installed
from explorer import claims
claims.SMALL = claims.Scale({MICRO_ARGS})
from explorer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_cli_without_matplotlib_hints_and_still_writes_json_and_csv(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-c", CLI_WITHOUT_MATPLOTLIB, "reproduce", "claim3", "--small", "--out",
                           str(out), "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'norm-explorer[plots]'" in proc.stderr
    assert [line for line in proc.stderr.splitlines() if "matplotlib" in line] == [figures_hint()]
    assert "[1/4] claim3: gn(group_size=1) on plaincnn(depth=4, width=8), seed 1/1" in proc.stderr  # piped progress
    assert "Claim 3" in proc.stdout and "criterion" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["claim3.csv", "claim3.json"]
    saved = json.loads((out / "claim3.json").read_text())
    assert saved["verdict"]["sentence"].startswith("Claim 3")


def figures_hint() -> str:
    from explorer.cli.reproduce import PLOTS_HINT

    return PLOTS_HINT


def test_cli_json_includes_verdict_and_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(claims, "SMALL", MICRO)
    code = main(["reproduce", "claim3", "--small", "--out", str(tmp_path), "--device", "cpu", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert isinstance(printed["verdict"]["holds"], bool) and printed["verdict"]["sentence"].startswith("Claim 3")
    assert sorted(Path(f).suffix for f in printed["files"]) == [".csv", ".json", ".png", ".svg"]
    assert all(Path(f).stat().st_size > 0 for f in printed["files"])


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_out_that_is_not_a_writable_directory_is_one_line_exit_2(where, tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    out = blocker if where == "file" else blocker / "sub"
    code = main(["reproduce", "claim3", "--small", "--out", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"normx: error: --out {out}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and blocker.read_text() == "not a directory"
