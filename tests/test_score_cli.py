"""``normx score``, ``normx models`` and ``normx reproduce`` end to end, in a subprocess like a user."""

import json
import subprocess
import sys

import pytest


def normx(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, cwd=cwd)


def test_score_json_fields():
    proc = normx("score", "gn(group_size=4)", "--model", "plaincnn(depth=3, width=8)", "--data", "gaussian",
                 "--batch-size", "8", "--batches", "2", "--seeds", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["spec"] == "mean(gx, group_size=4) | std(gx, group_size=4) | affine | relu"
    assert data["model"] == "plaincnn(depth=3, width=8)"
    for key in ("cosine_similarity", "grad_explosion_exponent", "stable_rank", "activation_variance", "grad_norm",
                "variance_growth", "spread", "overflow"):
        assert key in data
    assert len(data["activation_variance"]) == 3 and data["seeds"] == 2


def test_score_table_and_models():
    proc = normx("score", "ln", "--model", "plaincnn(depth=2, width=8)", "--batch-size", "4", "--batches", "1")
    assert proc.returncode == 0, proc.stderr
    assert "stable rank" in proc.stdout
    proc = normx("models", "--json")
    names = {row["name"] for row in json.loads(proc.stdout)}
    assert {"cnn10", "cnn20", "plaincnn", "resnet56", "mlp", "transformer"} <= names


@pytest.mark.parametrize("args,message", [
    (["score", "bn", "--batch-size", "1"], "batch size of at least 2"),
    (["score", "bn", "--model", "vgg"], "valid models: cnn10"),
    (["score", "bn", "--data", "mnist"], "valid datasets: gaussian"),
    (["score", "bn", "--data", "cifar100", "--data-dir", "/nonexistent"], "/nonexistent/cifar-100-python"),
    (["score", "bnn"], "unknown primitive or preset"),
])
def test_bad_input_is_one_line(args, message):
    proc = normx(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_reproduce_writes_json_and_csv(tmp_path, monkeypatch):
    from explorer import claims
    from explorer.cli import main

    tiny = claims.Scale(resnet="resnet(blocks=3, width=8)", cnn=["cnn10(width_multiplier=0.125)"], plaincnn_depth=4,
                        plaincnn_width=8, image_size=32, batch_size=8, batches=1, seeds=1, small_batch=4,
                        small_batches=1, min_width=8, fig_resnet="resnet(blocks=2, width=8)", rank_image_size=8)
    monkeypatch.setattr(claims, "SMALL", tiny)
    assert main(["reproduce", "claim4", "--small", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "claim4.json").read_text())
    assert data["scale"] == "small" and data["rows"]
    header = (tmp_path / "claim4.csv").read_text().splitlines()[0]
    assert "grad_norm" in header and "spec" in header


@pytest.mark.slow
def test_reproduce_claim3_small_for_real(tmp_path):
    """The real ``--small`` scale (not a patched one), as the README's gallery ran it: the files,
    the verdict and the fit it reports (R² = 0.94, τ = −1 from group size 1 to 32)."""
    from explorer.cli import main

    assert main(["reproduce", "claim3", "--small", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "claim3.json").read_text())
    assert data["scale"] == "small" and data["verdict"]["holds"]
    assert [r["group_size"] for r in data["rows"]] == [1, 2, 4, 8, 16, 32]
    ranks = [r["stable_rank"] for r in data["rows"]]
    assert ranks == sorted(ranks, reverse=True)  # τ = −1: every step of group size lowers it
    assert data["summary"]["fit"]["r2"] == pytest.approx(0.94, abs=0.02)
    assert "R² = 0.94" in data["verdict"]["sentence"]
    assert (tmp_path / "claim3.csv").read_text().splitlines()[0].count(",") >= 2
