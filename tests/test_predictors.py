"""Each predictor against its definition on hand-made tensors, and the recorder's contract."""

import math

import pytest
import torch

from explorer.predictors import (activation_variance, cosine_similarity, grad_explosion_exponent, stable_rank,
                                 variance_growth)


def test_activation_variance_is_channel_variance_averaged():
    y = torch.zeros(2, 2, 1, 2)
    y[:, 0] = torch.tensor([[[1.0, 3.0]], [[1.0, 3.0]]])  # channel 0: values 1,3,1,3 -> var 1
    y[:, 1] = 5.0  # channel 1: constant -> var 0
    assert activation_variance(y).item() == pytest.approx(0.5)
    seq = torch.tensor([[[0.0, 2.0], [2.0, 2.0]]])  # (N=1, L=2, C=2): channel 0 tokens 0,2 -> var 1
    assert activation_variance(seq).item() == pytest.approx(0.5)


def test_cosine_similarity_mean_off_diagonal():
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    # pairs: (1,2)=0, (1,3)=1/sqrt2, (2,3)=1/sqrt2 -> mean over the 3 pairs
    assert cosine_similarity(f).item() == pytest.approx(2 / math.sqrt(2) / 3, rel=1e-6)
    assert cosine_similarity(torch.ones(4, 3)).item() == pytest.approx(1.0)


def test_stable_rank_centered_definition():
    torch.manual_seed(0)
    f = torch.randn(16, 8)
    d = f - f.mean(0)
    s = torch.linalg.svdvals(d)
    assert stable_rank(f).item() == pytest.approx((s**2).sum().item() / s[0].item() ** 2, rel=1e-5)
    # a shared offset (the mean after a ReLU) is removed by centering, not when uncentered
    assert stable_rank(f + 100).item() == pytest.approx(stable_rank(f).item(), rel=1e-4)
    assert stable_rank(f + 100, center=False).item() < 1.01
    assert stable_rank(torch.ones(4, 3)).item() == 0.0  # collapse


def test_grad_explosion_exponent_sign_and_units():
    # forward order: input side first; gradients 10x larger per layer toward the input
    assert grad_explosion_exponent([1000.0, 100.0, 10.0, 1.0]) == pytest.approx(1.0)
    assert grad_explosion_exponent([1.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert math.isnan(grad_explosion_exponent([1.0, float("inf")]))


def test_variance_growth_kinds():
    assert variance_growth([1 + 0.5 * i for i in range(10)])["kind"] == "linear"
    exp = variance_growth([2.0**i for i in range(10)])
    assert exp["kind"] == "exponential" and exp["rate"] == pytest.approx(1.0)
    assert variance_growth([1.0, 1.01, 0.99, 1.0, 1.02])["kind"] == "flat"
    # a sawtooth of linear runs, one per stage, is linear with the shared slope
    lin = variance_growth([1, 2, 3, 4, 1, 2, 3, 4], stages=[0, 0, 0, 0, 1, 1, 1, 1])
    assert lin["kind"] == "linear" and lin["rate"] == pytest.approx(1.0)


def test_score_deterministic_and_fields():
    import explorer

    torch.manual_seed(0)
    batches = [torch.randn(8, 3, 16, 16) for _ in range(2)]
    a = explorer.score("bn", model="plaincnn(depth=4, width=8)", inputs=batches, seeds=2)
    b = explorer.score("bn", model="plaincnn(depth=4, width=8)", inputs=batches, seeds=2)
    assert a == b
    assert a["spec"] == "mean(bx) | std(bx) | affine | relu" and a["model"] == "plaincnn(depth=4, width=8)"
    assert len(a["activation_variance"]) == len(a["grad_norm"]) == 4
    assert set(a["spread"]) >= {"cosine_similarity", "grad_explosion_exponent", "stable_rank"}
    assert a["seeds"] == 2 and a["batches"] == 2 and a["overflow"] is False


def test_grad_norm_matches_autograd_of_layer_outputs():
    """The recorded norms equal d loss / d output computed independently with retain_grad."""
    import explorer
    from explorer.models import create_model

    torch.manual_seed(3)
    model = create_model("plaincnn(depth=3, width=8)", "ln")
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    result = explorer.score("ln", model=model, inputs=[(x, y)])
    outs = []

    def keep(module, inputs, output):
        output.retain_grad()
        outs.append(output)

    handles = [m.register_forward_hook(keep) for m in model.probes]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for h in handles:
        h.remove()
    expected = [o.grad.norm().item() for o in outs]
    assert result["grad_norm"] == pytest.approx(expected, rel=1e-4)
    assert result["activation_variance"] == pytest.approx([activation_variance(o).item() for o in outs], rel=1e-4)


def test_overflow_is_a_result():
    import explorer

    x = torch.full((4, 3, 8, 8), 1e30)
    result = explorer.score("none", model="plaincnn(depth=6, width=8)", inputs=[x])
    assert result["overflow"] is True
    from explorer.records import json_safe

    assert "nan" in str(json_safe(result)) or "inf" in str(json_safe(result))


def test_batch_statistics_with_batch_one_refused_before_compute():
    import explorer
    from explorer.scoring import ScoreError

    with pytest.raises(ScoreError, match="batch size"):
        explorer.score("bn", model="cnn10", inputs=[torch.randn(1, 3, 32, 32)])
    explorer.score("ln", model="plaincnn(depth=2, width=8)", inputs=[torch.randn(1, 3, 8, 8)])  # fine


def test_partly_infinite_or_huge_features_are_flagged_not_crashed():
    from explorer import score

    x = torch.randn(8, 3, 16, 16)
    x[0, 0, 0, 0] = float("inf")
    r = score("bn", model="plaincnn(depth=2, width=8)", inputs=[x])
    assert r["overflow"] and math.isnan(r["stable_rank"]) and math.isnan(r["cosine_similarity"])
    assert not x.requires_grad  # the caller's tensors are left alone
    # LN on inputs whose variance overflows float32: the features collapse to 0, which must not
    # read as the best possible (lowest) cosine similarity.
    r = score("ln", model="plaincnn(depth=2, width=8)", inputs=[torch.randn(8, 3, 16, 16) * 1e19])
    assert r["overflow"] and math.isnan(r["cosine_similarity"])


def test_cosine_similarity_of_huge_finite_features_does_not_overflow():
    f = torch.randn(6, 50)
    assert cosine_similarity(f * 1e30).item() == pytest.approx(cosine_similarity(f).item(), abs=1e-6)
    assert math.isnan(cosine_similarity(torch.zeros(4, 10)).item())


# ----------------------------------------------------------------------------- found by mutation testing


def test_least_squares_slope_edge_cases():
    from explorer.predictors import least_squares_slope

    assert math.isnan(least_squares_slope([0.0], [1.0]))  # one point: no line
    assert least_squares_slope([0.0, 2.0], [1.0, 5.0]) == pytest.approx(2.0)  # two points are enough
    assert math.isnan(least_squares_slope([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # no spread in x
    assert math.isnan(least_squares_slope([0.0, 1.0, 2.0], [1.0, math.inf, 3.0]))


def test_activation_variance_by_layout_against_a_hand_computation():
    from explorer.predictors import activation_variance

    torch.manual_seed(0)
    tokens = torch.randn(3, 5, 4) * torch.arange(1.0, 5.0)  # (N, L, C): N·L samples of C features
    flat = tokens.reshape(15, 4)
    per_feature = ((flat - flat.mean(0)) ** 2).mean(0)
    assert activation_variance(tokens).item() == pytest.approx(per_feature.mean().item(), rel=1e-6)
    assert activation_variance(flat).item() == pytest.approx(per_feature.mean().item(), rel=1e-6)
    images = torch.randn(4, 3, 2, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    per_channel = images.permute(1, 0, 2, 3).reshape(3, -1).var(dim=1, correction=0)
    assert activation_variance(images).item() == pytest.approx(per_channel.mean().item(), rel=1e-6)


def test_variance_growth_kinds_and_rates_exactly():
    from explorer.predictors import variance_growth

    assert variance_growth([2.0 ** i for i in range(6)]) == {"kind": "exponential", "rate": pytest.approx(1.0)}
    assert variance_growth([4.0 ** i for i in range(6)])["rate"] == pytest.approx(2.0)  # doublings per layer
    assert variance_growth([1.0 + 2.0 * i for i in range(6)]) == {"kind": "linear", "rate": pytest.approx(2.0)}
    assert variance_growth([3.0] * 6) == {"kind": "flat", "rate": 0.0}
    assert variance_growth([1.0, 2.0]) == {"kind": "flat", "rate": 0.0}  # too few layers to call it growth
    assert variance_growth([1.0, math.inf, 2.0, 3.0]) == {"kind": "exponential", "rate": math.inf}
    assert variance_growth([1.0, 0.0, 2.0, 3.0]) == {"kind": "flat", "rate": 0.0}  # a dead layer: no fit
    # stages of one layer are left out: the stem alone does not count
    assert variance_growth([100.0] + [1.0 + i for i in range(5)], stages=[0, 1, 1, 1, 1, 1])["kind"] == "linear"
    # flat: below 1.5x over the stage, both ways
    assert variance_growth([1.0, 1.05, 1.1, 1.15])["kind"] == "flat"
    assert variance_growth([1.0, 1.3, 1.7, 2.2])["kind"] != "flat"


def test_scores_are_averaged_over_batches():
    """Two batches give the mean of the two one-batch measurements (same seed, same weights)."""
    import explorer

    torch.manual_seed(0)
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))) for _ in range(2)]
    both = explorer.score("bn", model="mlp(depth=3, width=16)", inputs=batches, seeds=1)
    one = [explorer.score("bn", model="mlp(depth=3, width=16)", inputs=[b], seeds=1) for b in batches]
    for key in ("cosine_similarity", "stable_rank"):
        assert both[key] == pytest.approx((one[0][key] + one[1][key]) / 2, rel=1e-5), key
    for a, b, mean in zip(one[0]["activation_variance"], one[1]["activation_variance"], both["activation_variance"]):
        assert mean == pytest.approx((a + b) / 2, rel=1e-5)


def test_explosion_exponent_is_fitted_per_seed_then_averaged():
    """score(seeds=2) averages each seed's fitted exponent (docs/predictors.md), which is not the
    exponent fitted on the seed-mean gradient norms; each seed is the model built after manual_seed(s)."""
    import explorer
    from explorer.models import create_model

    torch.manual_seed(0)
    batches = [(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))]
    both = explorer.score("ln", model="mlp(depth=4, width=16)", inputs=batches, seeds=2)
    per_seed = []
    for seed in range(2):
        torch.manual_seed(seed)
        model = create_model("mlp(depth=4, width=16)", "ln", num_classes=10, in_channels=3)
        per_seed.append(explorer.score("ln", model=model, inputs=batches))
    exponents = [r["grad_explosion_exponent"] for r in per_seed]
    assert both["grad_explosion_exponent"] == pytest.approx(sum(exponents) / 2, rel=1e-6)
    assert both["grad_explosion_exponent"] != pytest.approx(grad_explosion_exponent(both["grad_norm"]), rel=1e-3)
    assert both["spread"]["grad_explosion_exponent"] > 0


def test_variance_growth_fits_against_least_squares():
    """Rates against independent fits: linear r = slope of v, exponential k/ln 2 = slope of log2 v;
    the kind from the better fit in log space, on noisy curves (no fit is exact)."""
    import statistics

    from explorer.predictors import variance_growth

    noisy_linear = [1.0, 3.2, 4.9, 7.1, 9.0, 10.8]
    assert variance_growth(noisy_linear) == {
        "kind": "linear", "rate": pytest.approx(statistics.linear_regression(range(6), noisy_linear).slope)}
    noisy_exponential = [1.0, 2.1, 3.9, 8.2, 15.8, 32.5]
    log2 = [math.log2(v) for v in noisy_exponential]
    assert variance_growth(noisy_exponential) == {
        "kind": "exponential", "rate": pytest.approx(statistics.linear_regression(range(6), log2).slope)}
    # decaying 10x per layer: a line through it would go negative, so it is exponential
    assert variance_growth([10.0 ** -i for i in range(5)]) == {"kind": "exponential",
                                                               "rate": pytest.approx(-math.log2(10))}
    assert variance_growth([1.0, 2.0, 3.0]) == {"kind": "linear", "rate": pytest.approx(1.0)}  # 3 layers suffice


def test_variance_growth_stages_share_the_slope():
    from explorer.predictors import variance_growth

    # a stage of two layers counts: slopes 2 (stage 0, 2 layers) and 1 (stage 1, 4 layers) pooled
    # by their spread in position, (0.5·2 + 5·1) / (0.5 + 5)
    assert variance_growth([5.0, 7.0, 1.0, 2.0, 3.0, 4.0], stages=[0, 0, 1, 1, 1, 1]) == {
        "kind": "linear", "rate": pytest.approx(6 / 5.5)}
    # two stages of two layers: slope 1 over a position spread of 1; growth per stage 2x then 1.1x
    # (mean stage length 2) is below 1.5x in log space on average: flat, with the linear rate
    assert variance_growth([1.0, 2.0, 10.0, 11.0], stages=[0, 0, 1, 1]) == {"kind": "flat", "rate": pytest.approx(1.0)}
    # the 1.5x threshold is over the mean stage length (layers per stage - 1)
    assert variance_growth([1.0, 1.12, 1.25, 1.4])["kind"] == "flat"  # 1.4x over 3 layers
    assert variance_growth([1.0, 1.16, 1.33, 1.55])["kind"] == "exponential"  # 1.55x over 3 layers
    assert variance_growth([1.0, 1.05, 1.1, 1.15] * 2, stages=[0] * 4 + [1] * 4)["kind"] == "flat"


def test_grad_explosion_exponent_of_a_zero_gradient_is_nan():
    assert math.isnan(grad_explosion_exponent([1.0, 0.0, 1.0]))  # a dead layer has no log
    assert math.isnan(grad_explosion_exponent([1.0, -1.0, 1.0]))


def test_cosine_similarity_small_batches_and_extreme_scales():
    f = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    assert cosine_similarity(f).item() == pytest.approx(1 / math.sqrt(2), rel=1e-6)  # one pair
    assert math.isnan(cosine_similarity(torch.ones(1, 3)).item())  # one sample: no pair
    for scale in (1e200, 1e-200):  # float64 features: neither overflow nor underflow
        assert cosine_similarity(f * scale).item() == pytest.approx(1 / math.sqrt(2), rel=1e-6)
    mixed = torch.tensor([[1e300, 0.0], [1e-300, 1e-300]], dtype=torch.float64)  # each sample scaled alone
    assert cosine_similarity(mixed).item() == pytest.approx(1 / math.sqrt(2), rel=1e-6)


def test_stable_rank_is_scale_invariant():
    torch.manual_seed(0)
    f = torch.randn(16, 8)
    for scale in (1e-3, 1e3):
        assert stable_rank(f * scale).item() == pytest.approx(stable_rank(f).item(), rel=1e-4)


def test_layer_weights_are_the_linear_and_conv_weights():
    from explorer.models import create_model
    from explorer.predictors import layer_weights

    mlp = create_model("mlp(depth=2, width=8, image_size=4)", "ln")
    linears = [m.weight for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [id(p) for p in layer_weights(mlp)] == [id(w) for w in linears] and len(linears) == 3


def test_probes_of_a_reference_model_and_of_any_module():
    """A reference model is probed where it says (ResNet: the stem and each block, stages by
    resolution; the growth is fitted per stage); any other module at its normalized layers, with
    its last Linear as the classifier; a module with neither is refused."""
    import explorer
    from explorer.errors import NormxError
    from explorer.models import create_model
    from explorer.predictors import find_probes

    torch.manual_seed(0)
    resnet = create_model("resnet(blocks=2, width=8)", "ln")
    probes, stages, head = find_probes(resnet)
    assert probes == resnet.probes and stages == [0, 0, 0, 1, 1, 2, 2] and head is resnet.head
    x = torch.randn(4, 3, 8, 8)
    r = explorer.score("ln", model=resnet, inputs=[x])
    assert len(r["activation_variance"]) == 7
    assert r["variance_growth"] == variance_growth(r["activation_variance"], stages)
    assert r["variance_growth"] != variance_growth(r["activation_variance"])  # the stages matter here

    body = create_model("mlp(depth=2, width=8, image_size=4)", "ln")
    wrapped = torch.nn.Sequential(body)  # no probes, no head attribute
    probes, stages, head = find_probes(wrapped)
    assert probes == body.probes and stages == [0, 0] and head is body.head
    with pytest.raises(NormxError) as err:
        find_probes(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))
    assert str(err.value) == "the model has no normalized layers or no linear classifier to probe"


def test_recorder_batch_pass_carries_the_shared_pass():
    """What a per-batch predictor receives: the batch, the loss of its logits, the probes' outputs
    and their gradients (whose norms are the grad_norm curve), the classifier input, the layer
    weights, their gradients only when asked for, and the stages."""
    from explorer.models import create_model
    from explorer.predictors import Recorder, layer_weights
    from explorer.registry import PredictorEntry

    torch.manual_seed(0)
    model = create_model("resnet(blocks=1, width=8)", "ln")
    x, y = torch.randn(4, 3, 8, 8, requires_grad=True), torch.tensor([0, 1, 2, 3])
    seen = {}

    def keep(batch):
        seen[len(seen)] = batch
        return 0.0

    entries = [PredictorEntry(name="keep", direction="higher", compute=keep),
               PredictorEntry(name="grads", direction="higher", compute=lambda b: 1.0, needs=("weight_gradients",))]
    for asked in (entries[:1], entries):
        with Recorder(model, asked) as recorder:
            recorder.step(x, y)
            result = recorder.result()
        batch = seen[len(seen) - 1]
        assert batch.model is model and batch.x is x and torch.equal(batch.y, y)
        assert batch.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(batch.logits, y).item())
        assert len(batch.outputs) == len(batch.output_grads) == 4 and batch.stages == [0, 0, 1, 2]
        assert [torch.linalg.vector_norm(g).item() for g in batch.output_grads] == pytest.approx(result["grad_norm"])
        assert batch.features.shape == (4, 8 * 4)
        assert [id(w) for w in batch.weights] == [id(w) for w in layer_weights(model)]
        if len(asked) == 1:
            assert batch.weight_grads is None
        else:
            assert len(batch.weight_grads) == len(batch.weights)
            assert all(g.shape == w.shape for g, w in zip(batch.weight_grads, batch.weights))
    with pytest.raises(RuntimeError, match="^no batch was recorded$"):
        Recorder(model).result()


def test_zero_cost_predictors_from_the_shared_pass():
    import explorer

    r = explorer.score("ln", model="mlp(depth=2, width=8, image_size=4)", inputs=[torch.randn(8, 3, 4, 4)],
                       predictors="naswot,jacob_cov,weight_grad_norm,forward_flops,synflow")
    assert r["missing"] == {}
    assert all(math.isfinite(r[k]) for k in ("jacob_cov", "weight_grad_norm", "forward_flops", "synflow"))
    assert r["weight_grad_norm"] > 0 and r["forward_flops"] > 0


def test_exponential_growth_whose_linear_fit_stays_positive():
    from explorer.predictors import variance_growth

    # 1.5x per layer over 6 layers: the line through it stays positive, the exponential fits exactly
    assert variance_growth([1.5 ** i for i in range(6)]) == {"kind": "exponential", "rate": pytest.approx(math.log2(1.5))}


def test_overflow_flags_a_collapsed_sample_of_a_batch():
    """A sample whose last probed output is all zero has no direction: the batch is flagged when
    it has two or more samples; one sample alone has no pair to compare anyway; small (not zero)
    outputs are not a collapse."""
    import explorer

    x = torch.randn(2, 3, 8, 8)
    x[0] = 0.0  # LayerNorm of zeros, zero biases: every output of that sample is 0
    assert explorer.score("ln", model="plaincnn(depth=2, width=8)", inputs=[x])["overflow"] is True
    assert explorer.score("ln", model="plaincnn(depth=2, width=8)", inputs=[torch.zeros(1, 3, 8, 8)])["overflow"] is False
    torch.manual_seed(0)
    small = explorer.score("none", model="plaincnn(depth=2, width=8)", inputs=[torch.randn(8, 3, 8, 8) * 1e-3])
    assert small["overflow"] is False and math.isfinite(small["cosine_similarity"])


def test_probes_of_modules_with_a_head_or_probes_alone():
    from explorer.models import create_model
    from explorer.predictors import failure_reason, find_probes

    body = create_model("mlp(depth=2, width=8, image_size=4)", "ln")

    class HeadOnly(torch.nn.Module):  # a head but no probes: probed at its normalized layers
        def __init__(self):
            super().__init__()
            self.body, self.head = body, torch.nn.Linear(10, 3)

    model = HeadOnly()
    probes, stages, head = find_probes(model)
    assert probes == body.probes and stages == [0, 0] and head is model.head  # its last Linear

    class ProbesNoStages(torch.nn.Module):  # probes and head, no probe_stages: one stage
        def __init__(self):
            super().__init__()
            self.body, self.probes, self.head = body, body.probes, body.head

    assert find_probes(ProbesNoStages())[1] == [0, 0]
    assert len(failure_reason(ValueError("x" * 400))) == 300  # one line, at most 300 characters


class _ThreeBlocks(torch.nn.Module):
    """Three residual blocks (identity weights, no bias), each one a probe; the block at ``relu_at``
    ends in a ReLU, so it outputs 0 for a sample whose inputs are all negative while the residual
    sum, and so the classifier's input, keeps that sample's values."""

    def __init__(self, relu_at: int | None, skip: int | None = None):
        super().__init__()
        self.skip = skip
        blocks = []
        for i in range(3):
            linear = torch.nn.Linear(4, 4, bias=False)
            with torch.no_grad():
                linear.weight.copy_(torch.eye(4))
            blocks.append(torch.nn.Sequential(linear, torch.nn.ReLU()) if i == relu_at else linear)
        self.blocks = torch.nn.ModuleList(blocks)
        self.probes = list(self.blocks)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        for i, block in enumerate(self.blocks):
            if i != self.skip:
                x = x + block(x)
        return self.head(x)


def test_overflow_looks_at_the_last_probe_where_the_cosine_similarity_is_taken():
    """The cosine similarity is taken of the last probe's output: a sample that collapses to 0
    there (a dead ReLU) has no direction, so the similarity is NaN and ``overflow`` says why, even
    though the earlier probes and the classifier's input are alive. The same collapse in a middle
    probe leaves the last one, and so the similarity, well defined: no overflow."""
    import explorer

    torch.manual_seed(0)
    x = torch.rand(4, 4) + 0.5
    x[0] = -x[0]  # every input of sample 0 negative: a ReLU block outputs 0 for it
    y = torch.tensor([0, 1, 2, 0])
    outputs = {}
    for relu_at in (2, 1):
        model = _ThreeBlocks(relu_at)
        hooks = [m.register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(k, o.detach()))
                 for k, m in enumerate(model.probes)]
        hooks.append(model.head.register_forward_pre_hook(lambda m, i: outputs.__setitem__("features", i[0].detach())))
        model(x)
        for hook in hooks:
            hook.remove()
        dead = [k for k in range(3) if not outputs[k][0].any()]
        assert dead == [relu_at] and outputs["features"][0].abs().min() > 0  # only that probe collapsed
        result = explorer.score("none", model=model, inputs=[(x, y)], compile=False)
        if relu_at == 2:
            assert result["overflow"] is True and math.isnan(result["cosine_similarity"])
        else:
            assert result["overflow"] is False and math.isfinite(result["cosine_similarity"])
        assert all(math.isfinite(v) for v in result["activation_variance"] + result["grad_norm"])


def test_a_probe_that_does_not_run_is_scored_without_it():
    """A probe the forward pass skips (a block left out for this input) has no output: its curve
    entries are 0, the predictors use the probes that ran, and the overflow check falls back to the
    classifier's input, where a sample collapsed to 0 is still flagged."""
    import explorer

    torch.manual_seed(0)
    model = _ThreeBlocks(relu_at=None, skip=2)
    x, y = torch.rand(4, 4) + 0.5, torch.tensor([0, 1, 2, 0])
    result = explorer.score("none", model=model, inputs=[(x, y)], compile=False)
    assert result["overflow"] is False and math.isfinite(result["cosine_similarity"])
    assert result["activation_variance"][2] == 0.0 and result["grad_norm"][2] == 0.0
    assert all(v > 0 for v in result["activation_variance"][:2] + result["grad_norm"][:2])
    x[0] = 0.0  # no bias anywhere: that sample's features are 0
    assert explorer.score("none", model=model, inputs=[(x, y)], compile=False)["overflow"] is True
