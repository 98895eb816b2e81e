"""Zero-cost proxies against hand computations on tiny models (docs/predictors.md)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from normx_plugins import zero_cost_proxies as zc


def two_layer(w1, w2):
    model = nn.Sequential(nn.Linear(len(w1[0]), len(w1), bias=False), nn.ReLU(), nn.Linear(len(w2[0]), len(w2), bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(w1, dtype=torch.float32))
        model[2].weight.copy_(torch.tensor(w2, dtype=torch.float32))
    return model


def test_parameter_count_and_flops_per_sample():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    assert zc.parameter_count(model) == (3 * 2 + 2) + (2 + 1)
    # one multiply and one add per weight: 2·3·2 + 2·2·1 per sample, whatever the batch size
    assert zc.forward_flops(model, torch.randn(4, 3)) == 2 * 3 * 2 + 2 * 2 * 1
    assert zc.forward_flops(model, torch.randn(1, 3)) == 16


def test_grad_norm_is_the_sum_of_layer_norms_and_snip_the_saliency_sum():
    grads = [torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])]
    assert zc.grad_norm(grads) == pytest.approx(5.0 + 1.0)
    weights = [torch.tensor([[1.0, -2.0]]), torch.tensor([[5.0, 5.0], [5.0, 5.0]])]
    assert zc.snip(weights, grads) == pytest.approx(abs(1 * 3) + abs(-2 * 4) + 5 * 1)


def test_grad_norm_on_a_linear_model_matches_the_closed_form_gradient():
    # L = Σ_b Σ_i (W x_b)_i  ->  ∂L/∂W_ij = Σ_b x_bj
    model = two_layer([[1.0, -2.0], [3.0, 0.5]], [[1.0, 1.0]])[:1]
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    model(x).sum().backward()
    expected = torch.tensor([[4.0, 1.0], [4.0, 1.0]])
    assert torch.allclose(model[0].weight.grad, expected)
    assert zc.grad_norm([model[0].weight.grad]) == pytest.approx(math.sqrt(2 * (16 + 1)))


def test_synflow_of_a_bias_free_relu_net_is_twice_the_path_sum():
    # |W1| = [[1,2],[3,0]], |W2| = [[1,1]]: on ones, R = Σ_j |W2|_j Σ_k |W1|_jk = 3 + 3 = 6; each
    # layer's Σ |W ⊙ ∂R/∂W| equals R for a bias-free linear chain, so synflow = 2R.
    model = two_layer([[1.0, -2.0], [3.0, 0.0]], [[1.0, -1.0]])
    before = [p.detach().clone() for p in model.parameters()]
    assert zc.synflow(model, (2,)) == pytest.approx(12.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the caller's model is untouched


def test_synflow_runs_normalizers_in_eval_mode():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 0.0]]))
        model[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
    # eval BN at init: y = x / sqrt(1 + eps) (γ=1, β=0 are parameters too, |.| leaves them)
    scale = 1 / math.sqrt(1 + 1e-5)
    r = scale * (2 + 2)
    assert zc.synflow(model, (2,)) == pytest.approx(2 * r, rel=1e-6)


def test_naswot_is_the_log_determinant_of_the_agreement_kernel():
    codes = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 0, 1]])
    # K = [[3,2,2],[2,3,1],[2,1,3]], det = 8
    assert zc.naswot(codes) == pytest.approx(math.log(8.0))
    assert zc.naswot(torch.tensor([[1, 0], [1, 0]])) == -math.inf


def test_naswot_of_a_singular_kernel_is_minus_infinity_on_every_cpu():
    """Distinct codes can still give a singular K: N samples on U units span at most 2U − 1
    directions (c and 1 − c sum to ones). LU's sign on such a K depends on the CPU's rounding (an
    AMD EPYC gave -inf where an Intel Xeon gave a finite log-determinant): the rank decides."""
    assert zc.naswot(torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])) == -math.inf
    for seed in range(20):
        codes = torch.rand(16, 8, generator=torch.Generator().manual_seed(seed)) > 0.5  # 16 samples, rank ≤ 15
        assert zc.naswot(codes) == -math.inf, seed
    full = torch.rand(16, 64, generator=torch.Generator().manual_seed(0)) > 0.5
    c = full.double()
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    assert zc.naswot(full) == pytest.approx(float(torch.linalg.slogdet(kernel)[1]), rel=1e-9)


def test_activation_codes_are_the_relu_pattern():
    out = nn.functional.relu(torch.tensor([[1.0, -1.0, 0.0], [2.0, 3.0, -4.0]]))
    assert zc.activation_codes([out]).tolist() == [[True, False, False], [True, True, False]]


def test_jacob_cov_on_two_anticorrelated_jacobians():
    rows = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])  # correlation matrix [[1,-1],[-1,1]]: λ = 0, 2
    eps = zc.JACOB_COV_EPS
    expected = -((math.log(eps) + 1 / eps) + (math.log(2 + eps) + 1 / (2 + eps)))
    assert zc.jacob_cov(rows) == pytest.approx(expected)
    assert math.isnan(zc.jacob_cov(torch.tensor([[1.0, 1.0], [1.0, 2.0]])))


def test_input_jacobians_of_a_linear_model_are_the_column_sums():
    model = two_layer([[1.0, -2.0], [3.0, 0.5]], [[1.0, 1.0]])[:1]
    jac = zc.input_jacobians(model, torch.randn(3, 2))
    assert torch.allclose(jac, torch.tensor([[4.0, -1.5]]).expand(3, 2))


def test_naswot_one_product_kernel_equals_the_two_product_definition_on_many_units():
    codes = torch.rand(12, 50_000, generator=torch.Generator().manual_seed(0)) > 0.5
    c = codes.double()
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    assert zc.naswot(codes) == pytest.approx(float(torch.linalg.slogdet(kernel)[1]), rel=1e-12)
