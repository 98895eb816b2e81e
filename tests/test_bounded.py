"""DyT, Derf and SeeDNorm: each preset against its paper's formula written out here (forward and
gradients w.r.t. the input and every learnable parameter, float64), the ``bound`` slot in
compositions, its canonical forms and errors, and every preset built, scored and trained in
every reference model.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

import explorer
from explorer.norm import Normalizer
from explorer.plugins import get_registry
from explorer.search.space import SearchSpace
from explorer.search.study_file import load_study_file, parse_study_text
from explorer.spec import parse_spec

TOL = 1e-6
EPS = 1e-5

SHAPES = [(4, 6), (3, 5, 4, 4), (2, 7, 6)]  # features, images, a token sequence (N, L, C)


def rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def channels_of(x: torch.Tensor) -> int:
    return x.shape[-1] if x.dim() == 3 else x.shape[1]


def per_channel(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,) vector broadcast over x's channel axis (last for a sequence, else second)."""
    return p if x.dim() == 3 else p.view(-1, *([1] * (x.dim() - 2)))


def randomize(module: nn.Module, seed: int) -> None:
    """Move every learnable parameter off its initial value, so every gradient term is exercised."""
    with torch.no_grad():
        for i, p in enumerate(module.parameters()):
            p.add_(0.3 * rand(seed + i, *p.shape))


def check_against(ours: Normalizer, reference, x: torch.Tensor, seed: int) -> None:
    """Same output, input gradient and gradient of every parameter, in float64."""
    grad = rand(seed + 99, *x.shape)
    params = dict(ours.named_parameters())
    xa = x.clone().requires_grad_(True)
    ya = ours(xa)
    ya.backward(grad)
    xb = x.clone().requires_grad_(True)
    refs = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
    yb = reference(xb, refs)
    yb.backward(grad)
    torch.testing.assert_close(ya, yb, rtol=TOL, atol=TOL)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=TOL, atol=TOL)
    assert params
    for name, p in params.items():
        assert refs[name].grad is not None, name
        torch.testing.assert_close(p.grad, refs[name].grad, rtol=TOL, atol=TOL, msg=lambda m: f"{name}: {m}")


# ----------------------------------------------------------------------------- the papers' formulas


def dyt_reference(x, alpha, gamma, beta):
    """DyT (Zhu et al. 2025): γ ⊙ tanh(α·x) + β."""
    return per_channel(gamma, x) * torch.tanh(alpha * x) + per_channel(beta, x)


def derf_reference(x, alpha, shift, gamma, beta):
    """Derf (arXiv 2512.10938): γ ⊙ erf(α·x + s) + β."""
    return per_channel(gamma, x) * torch.erf(alpha * x + shift) + per_channel(beta, x)


def seednorm_reference(x, alpha, beta, gamma):
    """SeeDNorm (arXiv 2510.22777): [tanh(x·βᵀ)·α + γ] ⊙ x / RMS(x), per token.

    A token is a row of features, a sequence position, or one spatial position of a feature map
    for x·βᵀ; RMS is over the layer's features (channels and positions, as ``rms``/LayerNorm).
    """
    if x.dim() == 4:
        rms = torch.sqrt(x.pow(2).mean(dim=(1, 2, 3), keepdim=True) + EPS)
        dot = torch.einsum("nchw,c->nhw", x, beta).unsqueeze(1)
    else:  # (N, C) features or (N, L, C) tokens: C is the last axis
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + EPS)
        dot = (x * beta).sum(dim=-1, keepdim=True)
    return (torch.tanh(dot) * per_channel(alpha, x) + per_channel(gamma, x)) * x / rms


@pytest.mark.parametrize("shape", SHAPES, ids=["features", "images", "tokens"])
@pytest.mark.parametrize("seed", [0, 1])
def test_dyt_matches_its_formula(shape, seed):
    x = 2 * rand(seed, *shape)
    ours = explorer.create_norm("dyt", channels_of(x), activation=False).double()
    assert isinstance(ours.bound.alpha, nn.Parameter) and ours.bound.alpha.item() == 0.5  # the paper's init
    assert torch.equal(ours.affine.weight, torch.ones(channels_of(x), dtype=torch.float64))
    randomize(ours, seed)
    check_against(ours, lambda x, p: dyt_reference(x, p["bound.alpha"], p["affine.weight"], p["affine.bias"]), x, seed)


@pytest.mark.parametrize("shape", SHAPES, ids=["features", "images", "tokens"])
@pytest.mark.parametrize("seed", [0, 1])
def test_derf_matches_its_formula(shape, seed):
    x = 2 * rand(seed, *shape)
    ours = explorer.create_norm("derf(alpha=0.8, shift=0.1)", channels_of(x), activation=False).double()
    assert (ours.bound.alpha.item(), ours.bound.shift.item()) == pytest.approx((0.8, 0.1))
    randomize(ours, seed)
    check_against(ours, lambda x, p: derf_reference(x, p["bound.alpha"], p["bound.shift"], p["affine.weight"],
                                                    p["affine.bias"]), x, seed)


@pytest.mark.parametrize("shape", SHAPES, ids=["features", "images", "tokens"])
@pytest.mark.parametrize("seed", [0, 1])
def test_seednorm_matches_its_formula(shape, seed):
    x = 2 * rand(seed, *shape)
    ours = explorer.create_norm("seednorm", channels_of(x), activation=False).double()
    # at initialization (β = 0) SeeDNorm is RMSNorm with γ = 1
    rms = seednorm_reference(x, torch.zeros(channels_of(x), dtype=torch.float64),
                             torch.zeros(channels_of(x), dtype=torch.float64), torch.ones(channels_of(x), dtype=torch.float64))
    torch.testing.assert_close(ours(x), rms, rtol=TOL, atol=TOL)
    randomize(ours, seed)
    check_against(ours, lambda x, p: seednorm_reference(x, p["gate.alpha"], p["gate.beta"], p["gate.gamma"]), x, seed)


def test_gradcheck_of_every_learnable_scalar():
    x = rand(3, 2, 3, 4, 4).requires_grad_(True)
    for spec in ("dyt", "derf", "seednorm", "mean(cx) | std(cx) | erf_scale | affine"):
        module = explorer.create_norm(spec, 3, activation=False).double()
        randomize(module, 5)
        names = [n for n, _ in module.named_parameters()]

        def fn(x, *values, module=module, names=names):
            return torch.func.functional_call(module, dict(zip(names, values)), (x,))

        inputs = (x, *[p.detach().clone().requires_grad_(True) for p in module.parameters()])
        assert torch.autograd.gradcheck(fn, inputs), spec


def test_bound_slot_runs_after_the_statistics_and_before_the_affine():
    """``mean(cx) | std(cx) | tanh_scale | affine``: LN's output, bounded, then γ, β — never the
    native kernel with γ, β folded in before the map."""
    x = rand(7, 3, 4, 5, 5)
    ours = explorer.create_norm("mean(cx) | std(cx) | tanh_scale(alpha=2) | affine", 4, activation=False).double()
    randomize(ours, 7)

    def reference(x, p):
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        return dyt_reference((x - mu) / torch.sqrt(var + EPS), p["bound.alpha"], p["affine.weight"], p["affine.bias"])

    check_against(ours, reference, x, 7)


# ----------------------------------------------------------------------------- specs


def test_canonical_forms_and_equivalence():
    assert str(parse_spec("dyt")) == "tanh_scale | affine | relu"
    assert parse_spec("dyt(alpha=0.5)") == parse_spec("tanh_scale(alpha=0.50) | affine | relu")
    assert str(parse_spec("derf")) == "erf_scale | affine | relu"
    assert str(parse_spec("derf(shift=0.25, alpha=1)")) == "erf_scale(alpha=1, shift=0.25) | affine | relu"
    assert str(parse_spec("seednorm")) == "root_mean_square(cx) | tanh_gain | relu"
    # the bound slot is written in slot order, wherever it is written
    assert str(parse_spec("relu | affine | tanh_scale | mean(cx)")) == "mean(cx) | tanh_scale | affine | relu"
    # a primitive replaces the preset's step in its slot
    assert str(parse_spec("dyt | erf_scale")) == "erf_scale | affine | relu"
    assert str(parse_spec("bn | tanh_scale")) == "mean(bx) | std(bx) | tanh_scale | affine | relu"
    for text in ("dyt", "derf(alpha=2, shift=-0.5)", "seednorm", "mean(cx) | tanh_scale | affine | relu"):
        spec = parse_spec(text)
        assert parse_spec(str(spec)) == spec


@pytest.mark.parametrize("text, message", [
    ("tanh_scael | affine", "unknown primitive or preset 'tanh_scael'; closest: tanh_scale"),
    ("tanh_scale(alpha=0)", "must be finite and > 0, got 0.0"),
    ("tanh_scale(alpha=-1)", "must be finite and > 0"),
    ("erf_scale(alpha=nan)", "must be finite and > 0, got nan"),
    ("erf_scale(alpha=inf)", "must be finite and > 0, got inf"),
    ("erf_scale(shift=inf)", "'shift' (s's initial value) must be finite"),
    ("tanh_scale(alpha=abc)", "parameter 'alpha' must be float, got 'abc'"),
    ("tanh_scale(shift=1)", "tanh_scale has no parameter 'shift'"),
    ("dyt(alpha=0)", "dyt: tanh_scale: parameter 'alpha'"),
    ("tanh_scale | erf_scale", "two steps fill the bound slot"),
])
def test_bad_bounded_maps_are_one_spec_error(text, message):
    with pytest.raises(explorer.SpecError, match=None) as err:
        parse_spec(text)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["tanh_scael | affine", "erf_scale(alpha=nan)", "dyt(alpha=x)"])
def test_the_cli_says_one_line_and_exits_2(text):
    proc = subprocess.run([sys.executable, "-m", "explorer", "spec", text], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("normx: error: ") and "Traceback" not in proc.stderr


def test_normalizers_lists_the_presets_with_formula_and_paper():
    rows = {p.name: p for p in get_registry().presets.values()}
    assert "tanh(α·A)" in rows["dyt"].formula and "CVPR 2025" in rows["dyt"].doc
    assert "erf(α·A + s)" in rows["derf"].formula and "2512.10938" in rows["derf"].doc
    assert "RMS" in rows["seednorm"].formula and "2510.22777" in rows["seednorm"].doc
    assert get_registry().primitives["tanh_scale"].plugin == "bounded"


# ----------------------------------------------------------------------------- models

MODELS = ["cnn10(width_multiplier=0.125)", "cnn20(width_multiplier=0.125)", "plaincnn(depth=4, width=8)",
          "resnet(blocks=1, width=8)", "resnet(blocks=1, width=8, variant=skipinit)",
          "resnet(blocks=1, width=8, variant=resrelu)", "resnet(blocks=1, width=8, variant=preact)",
          "mlp(depth=3, width=16, image_size=16)",
          *(f"transformer(layers=2, width=16, heads=2, image_size=16, placement={p})" for p in ("pre", "post", "peri"))]
# 2 transformer layers: an explosion exponent needs two
PRESETS = ["dyt", "derf", "seednorm", "mean(cx) | tanh_scale | affine | relu"]


@pytest.mark.parametrize("model", MODELS)
def test_every_preset_builds_scores_and_trains_in_every_model(model):
    x = rand(11, 8, 3, 16, 16).float()
    y = torch.arange(8) % 10
    for spec in PRESETS:
        result = explorer.score(spec, model=model, inputs=[(x, y)], seeds=1)
        assert not result["overflow"], (model, spec)
        for key in ("cosine_similarity", "grad_explosion_exponent", "stable_rank"):
            assert math.isfinite(result[key]), (model, spec, key, result[key])
        net = explorer.create_model(model, spec)
        bounded = [m for m in net.modules() if isinstance(m, Normalizer) and (m.bound is not None or m.gate is not None)]
        assert bounded, (model, spec)  # the new step is at the normalization sites
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        learned = [(n, p.grad) for n, p in net.named_parameters() if ".bound." in n or ".gate." in n]
        assert learned and all(g is not None and torch.isfinite(g).all() for _, g in learned), (model, spec)
        opt.step()
        assert math.isfinite(loss.item()) and all(torch.isfinite(p).all() for p in net.parameters())


# ----------------------------------------------------------------------------- studies


def test_a_study_samples_the_bound_slot():
    config = parse_study_text(
        'name = "b"\nmodels = ["plaincnn(depth=2, width=8)"]\n[objectives]\ntest_accuracy = "maximize"\n'
        '[space]\nfixed = "affine | relu"\n[space.slots]\ncenter = ["none", "mean"]\nbound = ["tanh_scale", "erf_scale"]\n'
        '[space.params]\naxes = ["cx"]\n[space.params.erf_scale]\nalpha = [0.5, 1.0]\nshift = [0.0, 0.5]\n')
    space = SearchSpace(config, get_registry())
    space.check()
    seen = set()
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = sampler.ask()
        candidate = space.sample(trial)
        assert candidate.spec is not None, candidate.invalid
        seen.add(str(candidate.spec))
        sampler.tell(trial, 0.0)
    assert "tanh_scale | affine | relu" in seen and "mean(cx) | tanh_scale | affine | relu" in seen
    assert "erf_scale(alpha=1, shift=0.5) | affine | relu" in seen


def test_normalizer_free_study_file_is_valid():
    config = load_study_file(Path(__file__).parent.parent / "studies" / "normalizer_free.toml")
    SearchSpace(config, get_registry()).check()
    assert {"bn", "dyt", "derf", "seednorm"} <= set(config.space.presets)
    assert config.data.name == "digits"  # real images, no download: the README's finding is on them
    assert config.screening.policy == "thresholds"  # every candidate trains, to hold predictors against training
