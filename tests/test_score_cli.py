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


def test_score_with_batches_of_one_says_why_each_sample_comparing_predictor_is_missing():
    """Issue 24, item 14: ``--batch-size 1 --predictors all`` printed cosine ``nan`` with no
    reason, stable rank 0 and jacob_cov -1 (numbers that mean nothing on one sample). The
    predictors that compare the samples of a batch are missing with the reason, in the table
    and in JSON; the others keep their values."""
    args = ["score", "ln", "--model", "mlp(depth=2, width=16)", "--data", "gaussian", "--batch-size", "1",
            "--predictors", "all"]
    proc = normx(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    why = "needs batches of at least 2 samples, got 1"
    comparing = {"cosine_similarity", "stable_rank", "naswot", "jacob_cov"}
    assert data["missing"] == {name: why for name in comparing}
    assert all(data[name] == "nan" for name in comparing)
    for name in ("grad_explosion_exponent", "parameter_count", "snip", "synflow", "weight_grad_norm"):
        assert isinstance(data[name], float) and math.isfinite(data[name]), name
    table = normx(*args)
    assert table.returncode == 0, table.stderr
    rows = {line.split("│")[1].strip(): " ".join(line.split("│")[3].split()) for line in table.stdout.splitlines()
            if line.count("│") >= 4 and line.split("│")[1].strip()}
    for name in ("cosine similarity", "stable rank", "naswot", "jacob cov"):
        assert rows[name].startswith("missing: needs batches of"), (name, rows[name])
    assert "nan" not in table.stdout and "-1.0000" not in rows["jacob cov"]


def test_a_predictor_s_min_batch_is_checked_when_registered():
    from explorer.errors import PluginError
    from explorer.registry import PredictorEntry

    assert PredictorEntry(name="pairs", direction="lower", compute=lambda batch: 0.0, min_batch=2).min_batch == 2
    for bad in (0, 1.5, True):
        with pytest.raises(PluginError, match=f"predictor 'pairs': min_batch must be an integer of at least 1, "
                                              f"got {bad!r}"):
            PredictorEntry(name="pairs", direction="lower", compute=lambda batch: 0.0, min_batch=bad)


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


# ----------------------------------------------------------------------------- found by mutation testing
# In-process (``explorer.score`` and its helpers), so that mutation testing sees what they exercise.

import math  # noqa: E402
import statistics  # noqa: E402

import torch  # noqa: E402

MLP = "mlp(depth=3, width=16, image_size=4)"
CNN = "plaincnn(depth=2, width=8)"
DIRECTIONS = {"cosine_similarity": "lower", "grad_explosion_exponent": "lower", "stable_rank": "higher",
              "variance_growth": "lower", "parameter_count": "higher"}


def _images(n=8, batches=1, channels=3, size=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, channels, size, size, generator=gen) for _ in range(batches)]


def test_score_over_seeds_against_each_seed_scored_alone():
    """seeds=2: each seed is the model built after manual_seed(s); numbers are the mean of the
    seeds' values with their stdev as the spread; the variance growth (a kind and a rate) is
    fitted again on the seed-mean curve, its spread the stdev of the seeds' rates."""
    from explorer import score
    from explorer.models import create_model
    from explorer.predictors import variance_growth

    x = _images(batches=2)
    resnet = "resnet(blocks=2, width=8)"  # three stages: the growth is fitted per stage
    both = score("ln", model=resnet, inputs=x, seeds=2)
    alone = []
    for seed in range(2):
        torch.manual_seed(seed)
        alone.append(score("ln", model=create_model(resnet, "ln", num_classes=10, in_channels=3), inputs=x, seeds=5))
    assert [r["seeds"] for r in alone] == [1, 1]  # a built model is scored once, whatever seeds says
    assert both["seeds"] == 2 and both["batches"] == 2 and both["device"] == "cpu" and both["model"] == resnet
    assert both["missing"] == {} and both["directions"] == DIRECTIONS
    for key in ("cosine_similarity", "stable_rank", "grad_explosion_exponent", "parameter_count"):
        values = [r[key] for r in alone]
        assert both[key] == pytest.approx(statistics.fmean(values), rel=1e-6), key
        assert both["spread"][key] == pytest.approx(statistics.stdev(values), rel=1e-6, abs=1e-12), key
    assert both["parameter_count"] == sum(p.numel() for p in create_model(resnet, "ln").parameters())
    assert both["variance_growth"] == variance_growth(both["activation_variance"], [0, 0, 0, 1, 1, 2, 2])
    rates = [r["variance_growth"]["rate"] for r in alone]
    assert both["spread"]["variance_growth_rate"] == pytest.approx(statistics.stdev(rates), rel=1e-6)
    assert alone[0]["spread"]["cosine_similarity"] == 0.0 and alone[0]["spread"]["variance_growth_rate"] == 0.0


def test_score_defaults_and_a_plain_module():
    from explorer import score

    r = score("ln", inputs=_images(n=2, size=32))  # the default model, one seed
    assert r["model"] == "cnn10" and r["seeds"] == 1 and len(r["grad_norm"]) == 10

    class Wrapped(torch.nn.Module):  # no reference-model attributes: probed at its normalized layers
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    from explorer.models import create_model

    torch.manual_seed(0)
    inner = create_model(MLP, "ln")
    x = _images(size=4)
    direct = score("ln", model=inner, inputs=x)
    wrapped = score("ln", model=Wrapped(inner), inputs=x)
    assert wrapped["model"] == "Wrapped" and direct["model"] == MLP
    for key in ("activation_variance", "grad_norm", "cosine_similarity", "stable_rank", "grad_explosion_exponent"):
        assert wrapped[key] == pytest.approx(direct[key], rel=1e-6), key
    assert len(wrapped["grad_norm"]) == 3


def test_score_inputs_forms_and_labels():
    """Bare tensors get labels drawn from a generator seeded 0 in [0, 10), batch after batch; a
    1-tuple is a bare tensor; float64 inputs and int32 labels are converted."""
    from explorer import score

    x = _images(batches=2)
    gen = torch.Generator().manual_seed(0)
    labels = [torch.randint(0, 10, (8,), generator=gen) for _ in x]
    keys = ("cosine_similarity", "stable_rank", "grad_norm", "activation_variance")
    bare = score("ln", model=CNN, inputs=x)
    for inputs in ([(a, b) for a, b in zip(x, labels)], [(a,) for a in x],
                   [(a.double(), b.int()) for a, b in zip(x, labels)]):
        other = score("ln", model=CNN, inputs=inputs)
        for key in keys:
            assert other[key] == pytest.approx(bare[key], rel=1e-5), key


def test_score_model_shape_follows_the_inputs():
    """One-channel images build a one-channel model; labels up to 11 (no num_classes) a 12-class head."""
    from explorer import score
    from explorer.models import create_model

    gray = score("ln", model=CNN, inputs=_images(channels=1))
    assert gray["parameter_count"] == sum(p.numel() for p in create_model(CNN, "ln", in_channels=1).parameters())
    y = torch.arange(8) + 4  # 4 .. 11
    wide = score("ln", model=CNN, inputs=[(_images()[0], y)])
    assert wide["parameter_count"] == sum(p.numel() for p in create_model(CNN, "ln", num_classes=12).parameters())
    assert score("bn", model=CNN, inputs=_images(n=2))["overflow"] is False  # batch statistics of 2 samples: fine


@pytest.mark.parametrize("kwargs,message", [
    (dict(inputs=[]), "no input batches to score"),
    (dict(inputs=[7]), "inputs must be tensors or (x, y) pairs, got int"),
    (dict(inputs=[("a", "b")]), "inputs must be tensors or (x, y) pairs, got tuple"),
    (dict(inputs="x"), "inputs must be tensors or (x, y) pairs, got str"),
    (dict(seeds=0), "seeds must be at least 1, got 0"),
    (dict(inputs=[(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))], num_classes=3),
     "labels reach 3 but num_classes is 3"),
])
def test_score_errors(kwargs, message):
    from explorer import score
    from explorer.scoring import ScoreError

    kwargs.setdefault("inputs", _images(n=4))
    with pytest.raises(ScoreError) as err:
        score("ln", model=CNN, **kwargs)
    assert str(err.value) == message


def test_score_refuses_a_missing_cuda_device():
    from explorer import score
    from explorer.scoring import ScoreError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ScoreError) as err:
        score("ln", model=CNN, inputs=_images(), device="cuda")
    assert str(err.value) == "device cuda was asked for but torch sees no CUDA device"


def test_resolve_predictors_names_and_order():
    from explorer.errors import PredictorError
    from explorer.plugins import get_registry
    from explorer.records import DEFAULT_PREDICTORS
    from explorer.scoring import resolve_predictors

    def names(arg):
        return [e.name for e in resolve_predictors(arg)]

    every = list(get_registry().predictors)
    others = sorted(n for n in every if n not in DEFAULT_PREDICTORS)
    assert names(None) == names("default") == list(DEFAULT_PREDICTORS)
    assert names("synflow, snip,stable_rank") == ["stable_rank", "snip", "synflow"]  # defaults first, then by name
    assert names(["snip", "default"]) == [*DEFAULT_PREDICTORS, "snip"]
    assert names("all") == names("snip,all") == [*DEFAULT_PREDICTORS, *others]
    with pytest.raises(PredictorError) as err:
        resolve_predictors(" , ")
    assert str(err.value) == f"no predictors were asked for; valid: {', '.join(sorted(every))}"
    with pytest.raises(PredictorError, match="stable_rnk"):
        resolve_predictors("stable_rnk")


def test_score_computes_the_predictors_asked_for_with_weight_gradients():
    """snip needs the weight gradients of the shared backward: Σ |W ⊙ ∂L/∂W| over the weights of
    two or more dimensions (an MLP's are all matrices), computed here independently."""
    from explorer import score
    from explorer.models import create_model

    torch.manual_seed(0)
    model = create_model(MLP, "ln")
    x, y = torch.randn(8, 3, 4, 4), torch.arange(8) % 10
    r = score("ln", model=model, inputs=[(x, y)], predictors="snip,parameter_count")
    assert r["directions"] == {"parameter_count": "higher", "snip": "higher"} and r["missing"] == {}
    weights = [p for p in model.parameters() if p.dim() >= 2]
    grads = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), weights)
    expected = sum((w * g).abs().sum().item() for w, g in zip(weights, grads))
    assert r["snip"] == pytest.approx(expected, rel=1e-4)
    assert all(p.requires_grad for p in model.parameters())  # the model is left as built
    assert "cosine_similarity" not in r["directions"]


def _entry(name, compute, per="batch"):
    from explorer.registry import PredictorEntry

    return PredictorEntry(name=name, direction="higher", compute=compute, per=per)


def _fails(_):
    raise ValueError("no  good\n here")


def test_a_failing_predictor_is_nan_with_its_reason_and_the_others_go_on():
    """Third-party predictors (entries passed to measure): the failing ones are NaN, their reason
    one line under ``missing``; a 0-d tensor or an int is a float; aggregate keeps the first reason."""
    from explorer.models import create_model
    from explorer.scoring import aggregate, measure

    torch.manual_seed(0)
    model = create_model(MLP, "ln")
    model.eval()
    batches = [(torch.randn(4, 3, 4, 4), torch.tensor([0, 1, 2, 3])) for _ in range(2)]
    calls = []

    def second_fails(batch):  # fine on the first batch, fails on the second: missing all the same
        calls.append(1)
        if len(calls) % 2 == 0:
            raise RuntimeError("second batch")
        return 1.0

    entries = [_entry("bad_batch", _fails), _entry("flaky", second_fails), _entry("one_batch", lambda b: b.loss * 0 + 1.5),
               _entry("bad_seed", _fails, per="seed"), _entry("int_seed", lambda s: 3, per="seed"),
               _entry("tensor_seed", lambda s: torch.tensor(2.5), per="seed")]
    runs = [measure(model, batches, entries) for _ in range(2)]
    assert not model.training  # left in its mode
    for r in runs:
        assert math.isnan(r["bad_batch"]) and math.isnan(r["bad_seed"]) and math.isnan(r["flaky"])
        assert r["missing"] == {"bad_batch": "ValueError: no good here", "bad_seed": "ValueError: no good here",
                                "flaky": "RuntimeError: second batch"}
        assert r["one_batch"] == 1.5 and r["int_seed"] == 3.0 and isinstance(r["int_seed"], float)
        assert r["tensor_seed"] == 2.5
    runs[1]["missing"]["bad_batch"] = "other reason"
    out = aggregate(runs, spec="ln")
    assert out["spec"] == "ln" and out["seeds"] == 2
    assert math.isnan(out["bad_batch"]) and math.isnan(out["bad_seed"])
    assert out["missing"] == {"bad_batch": "ValueError: no good here", "bad_seed": "ValueError: no good here",
                              "flaky": "RuntimeError: second batch"}
    assert out["one_batch"] == 1.5 and out["tensor_seed"] == 2.5 and out["spread"]["int_seed"] == 0.0
    assert out["directions"] == {e.name: "higher" for e in entries}
    # measure with predictor names resolves them like score
    named = measure(model, batches, "parameter_count")
    assert named["directions"] == {"parameter_count": "higher"}


def test_predictor_record_keeps_the_fixed_keys_and_the_computed_predictors():
    from explorer import score
    from explorer.records import PREDICTOR_KEYS
    from explorer.scoring import predictor_record

    r = score("ln", model=CNN, inputs=_images(), predictors="default,snip")
    record = predictor_record(r)
    assert list(record) == [k for k in dict.fromkeys([*PREDICTOR_KEYS, *r["directions"]]) if k in r]
    assert record["snip"] == r["snip"] and "spec" not in record and "seeds" not in record


def test_flat_inputs_build_a_three_channel_model():
    """Inputs that are not images (N, features) build the model for 3 input channels."""
    from explorer import score

    r = score("ln", model="mlp(depth=2, width=8, image_size=4)", inputs=[torch.randn(8, 48)])
    assert len(r["grad_norm"]) == 2 and r["missing"] == {}


def test_aggregate_and_record_of_minimal_results():
    """Results without ``directions`` or ``missing`` (hand-made or older records) aggregate and
    store as results with none."""
    from explorer.scoring import aggregate, predictor_record

    run = {"activation_variance": [1.0, 2.0], "grad_norm": [3.0, 4.0], "overflow": False, "stages": [0, 0]}
    out = aggregate([run, dict(run, overflow=True)], model="m")
    assert out["directions"] == {} and out["missing"] == {} and out["spread"] == {}
    assert out["overflow"] is True and out["activation_variance"] == [1.0, 2.0] and out["model"] == "m"
    assert predictor_record({"cosine_similarity": 0.5, "spec": "ln"}) == {"cosine_similarity": 0.5}
