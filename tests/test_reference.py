"""Every preset against an independent reference: torch's own modules where one exists, the
formula written out here (NOTES.md) where none does. Forward and gradients (input and parameters),
float64, tolerance 1e-5, random shapes drawn by hypothesis.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import explorer
from explorer.norm import Normalizer

TOL = 1e-5
EPS = 1e-5
RELU_GAIN = math.sqrt(2 * math.pi / (math.pi - 1))


# ----------------------------------------------------------------------------- helpers


def rand(seed: int, *shape: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def norm(spec: str, channels: int, fuse: bool = True, **kwargs) -> Normalizer:
    """Our bare normalizer (no activation), in float64; ``fuse=False``: the generic path, not torch's kernel."""
    module = explorer.create_norm(spec, channels, activation=False, **kwargs).double()
    return module if fuse else unfused(module)


#: Every torch-twin test runs both ways: the native kernel (which must be a faithful twin) and
#: the generic composition of primitives (which would be compared with nothing but torch otherwise).
both_paths = pytest.mark.parametrize("fuse", [True, False], ids=["native", "generic"])


def set_affine(module: nn.Module, seed: int, bias: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random γ (and β) in our affine step; returned for the reference."""
    c = module.affine.weight.numel()
    gamma, beta = 1 + 0.5 * rand(seed + 1, c), 0.5 * rand(seed + 2, c)
    with torch.no_grad():
        module.affine.weight.copy_(gamma)
        if bias:
            module.affine.bias.copy_(beta)
    return gamma, beta if bias else None


def chan(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-channel vector shaped to broadcast against a channels-second tensor."""
    return p.view(-1, *([1] * (like.dim() - 2)))


def forward_backward(fn, x: torch.Tensor, grad: torch.Tensor, params: list[torch.Tensor]):
    """Output, input gradient and parameter gradients of ``fn`` for the upstream ``grad``."""
    x = x.detach().clone().requires_grad_(True)
    for p in params:
        p.grad = None
    y = fn(x)
    y.backward(grad)
    return y.detach(), x.grad.detach(), [p.grad.detach().clone() for p in params]


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str = "") -> None:
    torch.testing.assert_close(a, b, rtol=TOL, atol=TOL, msg=lambda m: f"{what}: {m}")


def assert_same(ours, ours_params, ref, ref_params, x: torch.Tensor, grad: torch.Tensor) -> None:
    """Same forward, same input gradient, same gradients of corresponding parameters."""
    y1, gx1, gp1 = forward_backward(ours, x, grad, ours_params)
    y2, gx2, gp2 = forward_backward(ref, x, grad, ref_params)
    assert_close(y1, y2, "forward")
    assert_close(gx1, gx2, "input gradient")
    for i, (a, b) in enumerate(zip(gp1, gp2)):
        assert_close(a, b.reshape(a.shape), f"gradient of parameter {i}")


def affine_ref(y: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
    y = y * chan(gamma, y)
    return y + chan(beta, y) if beta is not None else y


def bvar(x: torch.Tensor, dims) -> torch.Tensor:
    return x.var(dim=dims, unbiased=False, keepdim=True)


# Shapes: (N, C, H, W) images with C a multiple of the group counts drawn below.
images = st.tuples(st.integers(2, 4), st.sampled_from([4, 6, 8]), st.integers(1, 4), st.integers(2, 4))
seeds = st.integers(0, 2**31 - 1)


# ----------------------------------------------------------------------------- torch twins


@both_paths
@settings(max_examples=8)
@given(shape=images, seed=seeds)
def test_bn_matches_batchnorm2d_in_training_and_eval(fuse, shape, seed):
    n, c, h, w = shape
    ours, ref = norm("bn", c, fuse), nn.BatchNorm2d(c).double()
    gamma, beta = set_affine(ours, seed)
    with torch.no_grad():
        ref.weight.copy_(gamma)
        ref.bias.copy_(beta)
    params = [ours.affine.weight, ours.affine.bias]
    ref_params = [ref.weight, ref.bias]
    for step in range(3):  # several updates of the running statistics
        x = rand(seed + 10 + step, *shape) * (1 + step) + step
        assert_same(ours, params, ref, ref_params, x, rand(seed + 20 + step, *shape))
    assert_close(ours.center.stats.running_mean.view(-1), ref.running_mean, "running_mean")
    assert_close(ours.scale.stats.running_var.view(-1), ref.running_var, "running_var")
    # the saved state counts the batches as torch's does, on the native path too
    assert int(ours.center.stats.num_batches_tracked) == int(ours.scale.stats.num_batches_tracked) \
        == int(ref.num_batches_tracked) > 0
    ours.eval(), ref.eval()
    assert_same(ours, params, ref, ref_params, rand(seed + 30, *shape), rand(seed + 31, *shape))


@settings(max_examples=8)
@given(shape=images, seed=seeds)
def test_bn_generic_path_keeps_the_same_running_statistics(shape, seed):
    n, c, h, w = shape
    fused, ref = norm("bn", c), nn.BatchNorm2d(c).double()
    generic = Normalizer(copy.deepcopy(fused.center), copy.deepcopy(fused.scale), affine=copy.deepcopy(fused.affine),
                         fuse=False)
    assert fused.native and not generic.native
    for step in range(3):
        x = rand(seed + step, *shape) * 2 + 1
        assert_close(generic(x), ref(x), "training forward")
    assert_close(generic.center.stats.running_mean.view(-1), ref.running_mean, "running_mean")
    assert_close(generic.scale.stats.running_var.view(-1), ref.running_var, "running_var")
    generic.eval(), ref.eval()
    x = rand(seed + 9, *shape)
    assert_close(generic(x), ref(x), "eval forward")


@both_paths
@pytest.mark.parametrize("preset", ["ln", "in", "gn(groups={g})", "gn(group_size={s})"])
@settings(max_examples=6)
@given(shape=images, seed=seeds, g=st.sampled_from([1, 2]))
def test_group_presets_match_groupnorm(fuse, preset, shape, seed, g):
    n, c, h, w = shape
    s = c // g  # a group size that divides the width
    spec = preset.format(g=g, s=s)
    groups = {"ln": 1, "in": c}.get(preset, g if "groups=" in preset else c // s)
    ours, ref = norm(spec, c, fuse), nn.GroupNorm(groups, c).double()
    gamma, beta = set_affine(ours, seed)
    with torch.no_grad():
        ref.weight.copy_(gamma)
        ref.bias.copy_(beta)
    for mode in ("train", "eval"):  # no batch statistics: eval is the same computation
        getattr(ours, mode)(), getattr(ref, mode)()
        assert_same(ours, [ours.affine.weight, ours.affine.bias], ref, [ref.weight, ref.bias],
                    rand(seed, *shape) * 3 - 1, rand(seed + 5, *shape))


@both_paths
@settings(max_examples=8)
@given(shape=images, seed=seeds)
def test_rms_matches_rmsnorm_with_per_channel_gain(fuse, shape, seed):
    n, c, h, w = shape
    ours = norm("rms", c, fuse)
    gamma, _ = set_affine(ours, seed, bias=False)
    assert ours.affine.bias is None
    ref_norm = nn.RMSNorm([c, h, w], eps=EPS, elementwise_affine=False).double()
    ref_gamma = gamma.clone().requires_grad_(True)
    assert_same(ours, [ours.affine.weight], lambda x: ref_norm(x) * chan(ref_gamma, x), [ref_gamma],
                rand(seed, *shape) + 0.5, rand(seed + 1, *shape))


@pytest.mark.parametrize("layer", ["conv", "linear"])
@settings(max_examples=6)
@given(cin=st.integers(1, 5), cout=st.integers(1, 5), seed=seeds)
def test_wn_weight_matches_torch_weight_norm(layer, cin, cout, seed):
    torch.manual_seed(seed)
    if layer == "conv":
        ours = explorer.create_conv("wn", cin, cout, activation=False).double()
        shape = (2, cin, 4, 3)
        plain = nn.Conv2d(cin, cout, 3, padding=1).double()
    else:
        ours = explorer.create_linear("wn", cin, cout, activation=False).double()
        shape = (3, cin)
        plain = nn.Linear(cin, cout).double()
    with torch.no_grad():
        plain.bias.copy_(ours.op.bias)
    ref = nn.utils.parametrizations.weight_norm(plain, dim=0)
    v_ours = ours.op.parametrizations.weight.original
    g_ours = ours.op.parametrizations.weight[0].g
    with torch.no_grad():  # ours: g·V/‖V‖ with g initialised to 1; set torch's g the same
        g_ours.copy_(1 + 0.5 * rand(seed, cout))
        ref.parametrizations.weight.original0.copy_(g_ours.view_as(ref.parametrizations.weight.original0))
        ref.parametrizations.weight.original1.copy_(v_ours)
    assert_close(ours.op.weight, ref.weight, "normalized weight")
    assert_same(ours, [v_ours, g_ours, ours.op.bias], ref,
                [ref.parametrizations.weight.original1, ref.parametrizations.weight.original0, ref.bias],
                rand(seed + 1, *shape), rand(seed + 2, *((shape[0], cout) + shape[2:])))


def test_wn_preset_applies_the_corrected_relu():
    torch.manual_seed(0)
    layer = explorer.create_linear("wn", 3, 4).double()
    x = rand(1, 5, 3)
    z = F.linear(x, layer.op.weight, layer.op.bias)
    assert_close(layer(x), RELU_GAIN * (F.relu(z) - math.sqrt(1 / (2 * math.pi))), "wn output")


# ----------------------------------------------------------------------------- formulas (no torch twin)


@settings(max_examples=8)
@given(shape=images, seed=seeds)
def test_frn_formula(shape, seed):
    n, c, h, w = shape
    ours = explorer.create_norm("frn", c).double()  # its activation, TLU, is part of FRN
    gamma, beta = set_affine(ours, seed)
    with torch.no_grad():
        ours.activation.tau.copy_(0.3 * rand(seed + 3, c))
    g, b, tau = (t.clone().requires_grad_(True) for t in (gamma, beta, ours.activation.tau.detach()))

    def frn(x):
        nu2 = x.square().mean(dim=(2, 3), keepdim=True)
        return torch.maximum(affine_ref(x / torch.sqrt(nu2 + EPS), g, b), chan(tau, x))

    assert_same(ours, [ours.affine.weight, ours.affine.bias, ours.activation.tau], frn, [g, b, tau],
                rand(seed, *shape), rand(seed + 4, *shape))


def _two_batches_then_eval(ours, formula, formula_eval, shape, seed, params, ref_params):
    """Training on two batches (forward + gradients), then eval with the running estimates."""
    for step in range(2):
        assert_same(ours, params, formula, ref_params, rand(seed + step, *shape) * 2 + 1, rand(seed + 7, *shape))
    ours.eval()
    x = rand(seed + 3, *shape)
    assert_same(ours, params, formula_eval, ref_params, x, rand(seed + 8, *shape))


def _running(batches: list[torch.Tensor], stat) -> torch.Tensor:
    """torch's running estimate (momentum 0.1, init ``stat`` of nothing) after ``batches``."""
    value = None
    for xb in batches:
        value = stat(xb, value)
    return value


@settings(max_examples=6)
@given(shape=images, seed=seeds)
def test_vn_formula_with_running_variance(shape, seed):
    n, c, h, w = shape
    ours = norm("vn", c)
    gamma, beta = set_affine(ours, seed)
    g, b = gamma.clone().requires_grad_(True), beta.clone().requires_grad_(True)
    batches = [rand(seed + step, *shape) * 2 + 1 for step in range(2)]
    running = torch.ones(1, c, 1, 1, dtype=torch.float64)
    for xb in batches:  # two forwards per batch in _two_batches_then_eval (ours, then the formula)
        unbiased = xb.var(dim=(0, 2, 3), unbiased=True, keepdim=True)
        running = 0.9 * running + 0.1 * unbiased

    def vn(x):
        return affine_ref(x / torch.sqrt(bvar(x, (0, 2, 3)) + EPS), g, b)

    def vn_eval(x):
        return affine_ref(x / torch.sqrt(running + EPS), g, b)

    _two_batches_then_eval(ours, vn, vn_eval, shape, seed, [ours.affine.weight, ours.affine.bias], [g, b])


@settings(max_examples=6)
@given(shape=images, seed=seeds)
def test_evo_b0_formula_in_training_and_eval(shape, seed):
    n, c, h, w = shape
    ours = norm("evo_b0", c)
    gamma, beta = set_affine(ours, seed)
    with torch.no_grad():
        ours.scale.v.copy_(1 + 0.5 * rand(seed + 3, c))
    g, b, v = (t.detach().clone().requires_grad_(True) for t in (gamma, beta, ours.scale.v))
    running = torch.ones(1, c, 1, 1, dtype=torch.float64)
    for step in range(2):
        xb = rand(seed + step, *shape) * 2 + 1
        running = 0.9 * running + 0.1 * xb.var(dim=(0, 2, 3), unbiased=True, keepdim=True)

    def evo(x, batch_var):
        instance_std = torch.sqrt(bvar(x, (2, 3)) + EPS)
        return affine_ref(x / torch.maximum(torch.sqrt(batch_var + EPS), chan(v, x) * x + instance_std), g, b)

    _two_batches_then_eval(ours, lambda x: evo(x, bvar(x, (0, 2, 3))), lambda x: evo(x, running), shape, seed,
                           [ours.affine.weight, ours.affine.bias, ours.scale.v], [g, b, v])


@settings(max_examples=6)
@given(shape=images, seed=seeds, groups=st.sampled_from([1, 2]))
def test_evo_s0_formula(shape, seed, groups):
    n, c, h, w = shape
    ours = norm(f"evo_s0(groups={groups})", c)
    gamma, beta = set_affine(ours, seed)
    with torch.no_grad():
        ours.gate.v.copy_(1 + 0.5 * rand(seed + 3, c))
    g, b, v = (t.detach().clone().requires_grad_(True) for t in (gamma, beta, ours.gate.v))

    def evo_s0(x):
        grouped = x.reshape(n, groups, c // groups, h, w)
        std = torch.sqrt(bvar(grouped, (2, 3, 4)) + EPS).expand_as(grouped).reshape(x.shape)
        return affine_ref(x * torch.sigmoid(chan(v, x) * x) / std, g, b)

    assert_same(ours, [ours.affine.weight, ours.affine.bias, ours.gate.v], evo_s0, [g, b, v],
                rand(seed, *shape), rand(seed + 4, *shape))


@settings(max_examples=6)
@given(shape=images, seed=seeds)
def test_bmlv_and_lmbv_formulas_with_running_statistics(shape, seed):
    n, c, h, w = shape
    batches = [rand(seed + step, *shape) * 2 + 1 for step in range(2)]
    running_mean = torch.zeros(1, c, 1, 1, dtype=torch.float64)
    running_var = torch.ones(1, c, 1, 1, dtype=torch.float64)
    for xb in batches:
        running_mean = 0.9 * running_mean + 0.1 * xb.mean(dim=(0, 2, 3), keepdim=True)
        running_var = 0.9 * running_var + 0.1 * xb.var(dim=(0, 2, 3), unbiased=True, keepdim=True)

    def layer_mean(x):
        return x.mean(dim=(1, 2, 3), keepdim=True)

    def layer_std(x):
        return torch.sqrt(bvar(x, (1, 2, 3)) + EPS)

    for preset in ("bmlv", "lmbv"):
        ours = norm(preset, c)
        gamma, beta = set_affine(ours, seed)
        g, b = gamma.clone().requires_grad_(True), beta.clone().requires_grad_(True)
        if preset == "bmlv":  # (A − μ{b,x}) / σ{c,x}
            train = lambda x: affine_ref((x - x.mean(dim=(0, 2, 3), keepdim=True)) / layer_std(x), g, b)  # noqa: E731
            evaluate = lambda x: affine_ref((x - running_mean) / layer_std(x), g, b)  # noqa: E731
        else:  # (A − μ{c,x}) / σ{b,x}
            train = lambda x: affine_ref((x - layer_mean(x)) / torch.sqrt(bvar(x, (0, 2, 3)) + EPS), g, b)  # noqa: E731
            evaluate = lambda x: affine_ref((x - layer_mean(x)) / torch.sqrt(running_var + EPS), g, b)  # noqa: E731
        _two_batches_then_eval(ours, train, evaluate, shape, seed, [ours.affine.weight, ours.affine.bias], [g, b])


@settings(max_examples=6)
@given(cin=st.integers(1, 4), cout=st.integers(1, 4), seed=seeds)
def test_sws_formula(cin, cout, seed):
    torch.manual_seed(seed)
    ours = explorer.create_conv("sws", cin, cout, activation=False).double()
    v = ours.op.parametrizations.weight.original
    g = ours.op.parametrizations.weight[0].g
    with torch.no_grad():
        g.copy_(1 + 0.5 * rand(seed, cout))
    v_ref, g_ref, bias_ref = (t.detach().clone().requires_grad_(True) for t in (v, g, ours.op.bias))

    def sws(x):
        rows = v_ref.reshape(cout, -1)
        fan_in = rows.shape[1]
        mean, var = rows.mean(dim=1, keepdim=True), rows.var(dim=1, unbiased=False, keepdim=True)
        weight = RELU_GAIN * g_ref.view(-1, 1) * (rows - mean) / (torch.sqrt(var + EPS) * math.sqrt(fan_in))
        return F.conv2d(x, weight.view_as(v_ref), bias_ref, padding=1)

    assert_same(ours, [v, g, ours.op.bias], sws, [v_ref, g_ref, bias_ref],
                rand(seed + 1, 2, cin, 4, 4), rand(seed + 2, 2, cout, 4, 4))


@settings(max_examples=6)
@given(cin=st.integers(1, 4), cout=st.integers(2, 4), seed=seeds)
def test_preln_formula_centers_before_the_op_and_scales_after(cin, cout, seed):
    torch.manual_seed(seed)
    ours = explorer.create_conv("preln", cin, cout, activation=False).double()
    gamma, beta = set_affine(ours.post, seed)
    weight = ours.op.weight
    w_ref, g, b = (t.detach().clone().requires_grad_(True) for t in (weight, gamma, beta))

    def preln(x):
        z = F.conv2d(x - x.mean(dim=(1, 2, 3), keepdim=True), w_ref, padding=1)
        return affine_ref(z / torch.sqrt(bvar(z, (1, 2, 3)) + EPS), g, b)

    assert_same(ours, [weight, ours.post.affine.weight, ours.post.affine.bias], preln, [w_ref, g, b],
                rand(seed + 1, 3, cin, 4, 4) + 1, rand(seed + 2, 3, cout, 4, 4))


@settings(max_examples=6)
@given(shape=images, seed=seeds, strength=st.sampled_from([0.1, 2.5]))
def test_regnorm_is_layernorm_plus_the_batch_mean_loss(shape, seed, strength):
    n, c, h, w = shape
    ours = norm(f"regnorm(strength={strength})", c)
    gamma, beta = set_affine(ours, seed)
    x = rand(seed, *shape).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = ours(x)
    ln = F.group_norm(x_ref, 1, None, None, EPS)  # LN over (C, H, W); the loss sees it before the affine
    assert_close(y, affine_ref(ln, gamma, beta), "forward")
    loss = explorer.regularizer_loss(ours)
    loss_ref = strength * ln.mean(dim=(0, 2, 3)).square().mean()
    assert_close(loss, loss_ref, "loss")
    loss.backward()
    loss_ref.backward()
    assert_close(x.grad, x_ref.grad, "gradient of the loss")
    ours.eval()
    ours(x)
    assert float(explorer.regularizer_loss(ours)) == 0.0  # no loss outside training


# ----------------------------------------------------------------------------- sequences and features


sequences = st.tuples(st.integers(1, 3), st.integers(1, 4), st.sampled_from([2, 4, 6]))


def assert_ln_and_rms_match_torch(c, fuse, seed, x, grad):
    """ln against the usual LayerNorm over the last axis (C) and rms against nn.RMSNorm(C) with γ as
    its weight: a token's features (sequences) or a sample's (features) alike."""
    ours = norm("ln", c, fuse)
    gamma, beta = set_affine(ours, seed)
    g, b = gamma.clone().requires_grad_(True), beta.clone().requires_grad_(True)
    assert_same(ours, [ours.affine.weight, ours.affine.bias], lambda t: F.layer_norm(t, (c,), g, b, EPS), [g, b],
                x, grad)
    ours = norm("rms", c, fuse)
    gamma, _ = set_affine(ours, seed, bias=False)
    ref = nn.RMSNorm(c, eps=EPS).double()
    with torch.no_grad():
        ref.weight.copy_(gamma)
    assert_same(ours, [ours.affine.weight], ref, [ref.weight], x, grad)


@both_paths
@settings(max_examples=8)
@given(shape=sequences, seed=seeds)
def test_sequences_are_normalized_per_token(fuse, shape, seed):
    n, length, c = shape
    x, grad = rand(seed, *shape) + 0.5, rand(seed + 1, *shape)
    assert_ln_and_rms_match_torch(c, fuse, seed, x, grad)
    # bn: BatchNorm1d over the N·L tokens (needs more than one token)
    if n * length > 1:
        ours, ref = norm("bn", c, fuse), nn.BatchNorm1d(c).double()
        gamma, beta = set_affine(ours, seed)
        with torch.no_grad():
            ref.weight.copy_(gamma)
            ref.bias.copy_(beta)
        tokens = lambda t: ref(t.reshape(-1, c)).reshape(t.shape)  # noqa: E731
        assert_same(ours, [ours.affine.weight, ours.affine.bias], tokens, [ref.weight, ref.bias], x, grad)
        assert_close(ours.scale.stats.running_var.view(-1), ref.running_var, "running_var")
        ours.eval(), ref.eval()
        assert_same(ours, [ours.affine.weight, ours.affine.bias], tokens, [ref.weight, ref.bias], x, grad)


@both_paths
@settings(max_examples=8)
@given(n=st.integers(2, 5), c=st.sampled_from([2, 3, 8]), seed=seeds)
def test_features_match_torch(fuse, n, c, seed):
    x, grad = rand(seed, n, c) * 2 + 1, rand(seed + 1, n, c)
    ours, ref = norm("bn", c, fuse), nn.BatchNorm1d(c).double()
    gamma, beta = set_affine(ours, seed)
    with torch.no_grad():
        ref.weight.copy_(gamma)
        ref.bias.copy_(beta)
    assert_same(ours, [ours.affine.weight, ours.affine.bias], ref, [ref.weight, ref.bias], x, grad)
    ours.eval(), ref.eval()
    assert_same(ours, [ours.affine.weight, ours.affine.bias], ref, [ref.weight, ref.bias], x, grad)
    assert_ln_and_rms_match_torch(c, fuse, seed, x, grad)


# ----------------------------------------------------------------------------- native kernel vs generic path


def unfused(module: Normalizer) -> Normalizer:
    """A copy of ``module`` that runs the generic path (same parameters and buffers)."""
    m = copy.deepcopy(module)
    return Normalizer(m.center, m.scale, m.gate, m.affine, m.activation, m.regularizer, fuse=False)


@pytest.mark.parametrize("spec", ["bn", "ln", "in", "gn(groups=2)", "rms", "bn | affine(bias=false)",
                                  "regnorm"])
@settings(max_examples=5)
@given(shape=images, seed=seeds)
def test_native_kernel_and_generic_path_agree(spec, shape, seed):
    n, c, h, w = shape
    fast = explorer.create_norm(spec, c).double()  # with the activation
    assert fast.native
    bias = fast.affine.bias is not None
    set_affine(fast, seed, bias=bias)
    slow = unfused(fast)
    assert not slow.native
    params = lambda m: [m.affine.weight] + ([m.affine.bias] if bias else [])  # noqa: E731
    for step in range(2):
        x = rand(seed + step, *shape) * 2 + 1
        assert_same(fast, params(fast), slow, params(slow), x, rand(seed + 5, *shape))
        if fast.regularizer is not None:
            assert_close(explorer.regularizer_loss(fast), explorer.regularizer_loss(slow), "regularizer loss")
    fast.eval(), slow.eval()
    assert_same(fast, params(fast), slow, params(slow), rand(seed + 9, *shape), rand(seed + 5, *shape))


def test_a_composition_fuse_does_not_recognise_runs_the_generic_path():
    # centering and scaling over different axes, or a gate, have no native kernel
    for spec in ("mean(bx) | std(cx) | affine", "std(gx, groups=2) | sigmoid_gate | affine",
                 "mean(cx) | root_mean_square(cx)", "root_mean_square(cx) | affine"):
        assert not explorer.create_norm(spec, 4).native, spec


@pytest.mark.parametrize("spec", ["bn", "gn(groups=2)", "rms"])
def test_native_path_follows_copies_and_dtype_changes(spec):
    """The fused kernel must use the module's own parameters after deepcopy and .double()."""
    base = explorer.create_norm(spec, 4)
    clone = copy.deepcopy(base)
    with torch.no_grad():
        clone.affine.weight.fill_(3.0)
    x = torch.randn(6, 4, 3, 3)
    assert not torch.allclose(base(x), clone(x))
    double = clone.double()
    assert double.native
    generic = unfused(double)  # same parameters and buffers, the composition of primitives
    xd = x.double() * 2 + 1
    y = double(xd)
    assert y.dtype == torch.float64
    assert_close(y, generic(xd), "float64 native vs generic, training")
    # γ = 3 (the copy's) and β = 0 before the ReLU: three times the γ = 1 output of the original
    assert_close(y, 3 * unfused(base).double()(xd), "the copy's own γ")
    double.eval(), generic.eval()
    assert double(xd).dtype == torch.float64
    assert_close(double(xd), generic(xd), "float64 native vs generic, eval (running statistics)")


def test_conv1d_and_linear_on_many_dims_normalize_the_channel_axis():
    """Conv1d's (N, C, L) is channels-second, not a sequence; a linear op on (N, H, W, C) normalizes C."""
    torch.manual_seed(0)
    conv = nn.Conv1d(3, 5, 3, padding=1, bias=False).double()
    layer = explorer.create_normalized_layer("bn", conv, activation=False).double()
    x = rand(1, 4, 3, 5)  # L = C = 5: the ambiguous case
    assert_close(layer(x), F.batch_norm(conv(x), None, None, training=True, eps=EPS), "conv1d + bn")
    linear = nn.Linear(3, 6, bias=False).double()
    layer = explorer.create_normalized_layer("ln", linear, activation=False).double()
    x = rand(2, 2, 4, 6, 3)
    y = layer(x)
    assert y.shape == (2, 4, 6, 6)
    assert_close(y, F.layer_norm(linear(x), (6,), eps=EPS), "linear on (N, H, W, C) + ln")


def test_batch_rms_running_mean_square_momentum_and_eval_formula():
    """root_mean_square(bx): x / sqrt(mean_{b,x}(x²) + eps) in training; its running mean square
    follows BatchNorm's momentum (0.1, from 1), and eval divides by sqrt(running + eps) — squared
    statistics, not their roots."""
    c = 3
    layer = explorer.create_norm("root_mean_square(bx)", c, activation=False).double()
    running = torch.ones(c, dtype=torch.float64)
    for step in range(2):
        x = rand(step, 4, c, 2, 3) * 2 + 1
        ms = x.square().mean(dim=(0, 2, 3))
        assert_close(layer(x), x / torch.sqrt(ms + EPS).view(1, c, 1, 1), f"training step {step}")
        running = 0.9 * running + 0.1 * ms
    layer.eval()
    x = rand(5, 2, c, 2, 3)
    assert_close(layer(x), x / torch.sqrt(running + EPS).view(1, c, 1, 1), "eval from the running mean square")


# ----------------------------------------------------------------------------- statistics' errors and running estimates


#: The messages of a batch of one in training and of spatial statistics without positions.
BATCH_OF_ONE = ("batch statistics over {axes} need more than one sample per batch in training mode (got batch size 1); "
                "use a larger batch or a batch-free normalizer")
NO_POSITIONS = "statistics over spatial positions alone need spatial input (N, C, H, W); got features of shape (N, 4)"


@pytest.mark.parametrize(("spec", "shape", "error", "message"), [
    ("ln", (3,), "ShapeError", "a normalizer needs (N, C), (N, L, C) or (N, C, H, W) input; got shape (3,)"),
    ("ln", (2, 5, 3, 3), "ShapeError",
     "this normalizer was built for 4 channels, got 5 (the second dim of an input of shape (2, 5, 3, 3))"),
    ("ln", (2, 3, 5), "ShapeError",
     "this normalizer was built for 4 channels, got 5 (the last dim of an input of shape (2, 3, 5))"),
    ("ln", (2, 5), "ShapeError", "this normalizer was built for 4 channels, got 5 (the second dim of an input of shape (2, 5))"),
    ("bn", (1, 4), "BatchSizeError", BATCH_OF_ONE.format(axes="{batch,spatial}")),
    ("bn", (1, 4, 2, 2), "BatchSizeError", BATCH_OF_ONE.format(axes="{batch,spatial}")),
    ("mean(bx) | std(cx)", (1, 4, 2, 2), "BatchSizeError", BATCH_OF_ONE.format(axes="{batch,spatial}")),
    ("root_mean_square(b)", (1, 4), "BatchSizeError", BATCH_OF_ONE.format(axes="{batch}")),
    ("in", (2, 4), "SpecError", NO_POSITIONS),
    ("in", (2, 4, 1, 1), "SpecError", NO_POSITIONS),
    ("in", (2, 3, 4), "SpecError", NO_POSITIONS),  # a sequence's tokens are samples: it reaches the steps as (6, 4, 1)
    ("mean(x) | std(cx)", (2, 4), "SpecError", NO_POSITIONS),
    ("root_mean_square(x)", (2, 4), "SpecError", NO_POSITIONS),
    ("mean(b) | std(b)", (2, 4, 3, 3), "NormxError", "running statistics are empty: run the model in training mode first"),
    ("root_mean_square(b)", (2, 4), "NormxError", "running statistics are empty: run the model in training mode first"),
])
def test_statistics_errors_word_for_word(spec, shape, error, message):
    layer = explorer.create_norm(spec, 4, activation=False)
    if error == "NormxError":
        layer.eval()  # eval before any training step: nothing to use yet
    with pytest.raises(explorer.errors.NormxError) as info:
        layer(torch.randn(*shape))
    assert type(info.value).__name__ == error and str(info.value) == message


@pytest.mark.parametrize(("spec", "message"), [
    ("gn(group_size=3)", "group_size=3 does not divide the 8 channels of this layer"),
    ("gn(groups=3)", "groups=3 does not divide the 8 channels of this layer"),
])
def test_groups_that_do_not_divide_the_width_are_refused(spec, message):
    with pytest.raises(explorer.SpecError) as info:
        explorer.create_norm(spec, 8)
    assert str(info.value) == message


def test_a_batch_of_one_is_fine_in_eval_and_without_batch_statistics_as_is_one_channel():
    layer = explorer.create_norm("bn", 4, activation=False).double()
    layer(rand(0, 3, 4))
    layer.eval()
    x = rand(1, 1, 4)
    stats = layer.center.stats.running_mean.view(1, -1), layer.scale.stats.running_var.view(1, -1)
    assert_close(layer(x), (x - stats[0]) / torch.sqrt(stats[1] + EPS),
                 "eval, batch of one")
    x = rand(2, 1, 4, 2, 2)
    assert_close(explorer.create_norm("ln", 4, activation=False).double()(x), F.group_norm(x, 1, eps=EPS), "ln, batch of one")
    assert_close(explorer.create_norm("in", 4, activation=False).double()(x), F.group_norm(x, 4, eps=EPS), "in, batch of one")
    x = rand(3, 2, 1, 2, 2)
    assert_close(explorer.create_norm("in", 1, activation=False).double()(x), F.group_norm(x, 1, eps=EPS), "in, one channel")


@pytest.mark.parametrize("spec", ["mean(b) | std(b)", "mean(b) | root_mean_square(b)"])
def test_batch_statistics_without_the_spatial_axis_are_per_position(spec):
    """Over b alone the statistics (and their running estimates) are per channel *and* position."""
    n, c, h, w = 4, 3, 2, 2
    layer = explorer.create_norm(spec, c, activation=False).double()
    rms = "root_mean_square" in spec
    running_mean = torch.zeros(1, c, h, w, dtype=torch.float64)
    running_scale = torch.ones(1, c, h, w, dtype=torch.float64)  # running variance, or mean square
    for step in range(2):
        x = rand(40 + step, n, c, h, w) * (1 + step) + step
        mean = x.mean(dim=0, keepdim=True)
        num = x - mean
        denom = x.square().mean(dim=0, keepdim=True) if rms else bvar(x, 0)  # the scale sees the step's input
        assert_close(layer(x), num / torch.sqrt(denom + EPS), f"training step {step}")
        running_mean = 0.9 * running_mean + 0.1 * mean
        running_scale = 0.9 * running_scale + 0.1 * (denom if rms else x.var(dim=0, unbiased=True, keepdim=True))
    assert int(layer.center.stats.num_batches_tracked) == int(layer.scale.stats.num_batches_tracked) == 2
    layer.eval()
    x = rand(50, 2, c, h, w)
    assert_close(layer(x), (x - running_mean) / torch.sqrt(running_scale + EPS), "eval")


@pytest.mark.parametrize(("spec", "groups"), [
    ("mean(bgx, groups=2) | std(bgx, groups=2)", 2),
    ("mean(bcx) | std(bcx)", 1),
    ("mean(bx) | std(bx)", 4),
    ("root_mean_square(bcx)", 1),
    ("mean(bgx, groups=2) | root_mean_square(bgx, groups=2)", 2),
])
def test_batch_statistics_keep_one_running_estimate_per_statistic(spec, groups):
    """Over the batch, the channel groups (or all channels, or none) and the positions: one running
    estimate per group, momentum 0.1 from 0 (mean) and 1 (unbiased variance, or mean square)."""
    n, c, h, w = 3, 4, 2, 3
    layer = explorer.create_norm(spec, c, activation=False).double()
    centered, rms = spec.startswith("mean"), "root_mean_square" in spec
    if groups == 2:
        assert "AxisStatistics(axes={batch,channel groups,spatial}, groups=2)" in str(layer)
    stats = (1, groups, 1, 1, 1)
    running_mean = torch.zeros(stats, dtype=torch.float64)
    running_scale = torch.ones(stats, dtype=torch.float64)
    dims = (0, 2, 3, 4)
    for step in range(2):
        x = rand(60 + step, n, c, h, w) * 2 + step
        xg = x.reshape(n, groups, c // groups, h, w)
        mean = xg.mean(dim=dims, keepdim=True)
        scale = xg.square().mean(dim=dims, keepdim=True) if rms else bvar(xg, dims)
        expected = ((xg - mean) if centered else xg) / torch.sqrt(scale + EPS)
        assert_close(layer(x), expected.reshape(x.shape), f"training step {step}")
        running_mean = 0.9 * running_mean + 0.1 * mean
        running_scale = 0.9 * running_scale + 0.1 * (scale if rms else xg.var(dim=dims, unbiased=True, keepdim=True))
    assert layer.scale.stats.running_var.numel() == groups
    layer.eval()
    x = rand(70, 2, c, h, w)
    xg = x.reshape(2, groups, c // groups, h, w)
    expected = ((xg - running_mean) if centered else xg) / torch.sqrt(running_scale + EPS)
    assert_close(layer(x), expected.reshape(x.shape), "eval")


@both_paths
@pytest.mark.parametrize(("spec", "groups"), [
    ("mean(bx) | std(bx, eps=0.1)", None), ("mean(cx) | std(cx, eps=0.1)", 1), ("mean(x) | std(x, eps=0.1)", 4),
    ("mean(gx, groups=2) | std(gx, groups=2, eps=0.1)", 2), ("root_mean_square(cx, eps=0.1)", None),
])
def test_a_written_eps_reaches_both_paths(fuse, spec, groups):
    """eps=0.1 (not the default) in BatchNorm, GroupNorm (1, C and 2 groups) and RMSNorm."""
    x = rand(80, 3, 4, 2, 3) * 0.3
    layer = norm(spec, 4, fuse)
    assert layer.native == fuse
    if groups is not None:
        expected = F.group_norm(x, groups, eps=0.1)
    elif spec.startswith("root"):
        expected = F.rms_norm(x, x.shape[1:], eps=0.1)
    else:
        expected = F.batch_norm(x, None, None, training=True, eps=0.1)
    assert_close(layer(x), expected, spec)
