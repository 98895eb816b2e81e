"""The training harness against an independent plain-PyTorch loop, divergence, regularizers, flips."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from explorer.data import load_dataset
from explorer.models import create_model
from explorer.norm import Normalizer
from explorer.training import TrainConfig, random_flip, train

MODEL = "mlp(depth=2, width=16)"


@pytest.fixture(scope="module")
def data():
    return load_dataset("gaussian", "train", limit=64, seed=0), load_dataset("gaussian", "test", limit=32, seed=0)


def _reference(model, dataset, config: TrainConfig) -> list[float]:
    """The paper's recipe written out plainly: SGD, linear lr scaling, ÷10 at 80 %, the same batches."""
    lr = config.base_lr * config.batch_size / config.base_batch_size
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(0.8 * config.steps)], gamma=0.1)
    gen = torch.Generator().manual_seed(config.seed)
    n = dataset.x.shape[0]
    order, cursor, losses = torch.randperm(n, generator=gen), 0, []
    for _ in range(config.steps):
        if cursor + config.batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        index = order[cursor:cursor + config.batch_size]
        cursor += config.batch_size
        loss = F.cross_entropy(model(dataset.x[index]), dataset.y[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def test_harness_matches_a_plain_sgd_loop(data):
    train_data, test_data = data
    config = TrainConfig(steps=10, batch_size=16, base_lr=0.4, augment=False, device="cpu", curve_points=10)
    torch.manual_seed(0)
    model = create_model(MODEL, "ln", num_classes=train_data.num_classes, in_channels=3)
    reference = create_model(MODEL, "ln", num_classes=train_data.num_classes, in_channels=3)
    reference.load_state_dict(model.state_dict())
    result = train(model, train_data, test_data, config)
    expected = _reference(reference, train_data, config)
    assert [step for step, _ in result.loss_curve] == list(range(1, 11))
    assert [loss for _, loss in result.loss_curve] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not result.diverged and result.diverged_step is None
    assert result.steps == 10 and result.device == "cpu"
    assert 0.0 <= result.mean_train_accuracy <= 1.0 and 0.0 <= result.test_accuracy <= 1.0
    assert result.wall_time_s > 0
    assert config.learning_rate() == pytest.approx(0.4 * 16 / 256)


def test_divergence_stops_the_run_and_records_the_step(data):
    train_data, test_data = data
    torch.manual_seed(0)
    model = create_model(MODEL, "none", num_classes=train_data.num_classes, in_channels=3)
    seen = []
    result = train(model, train_data, test_data, TrainConfig(steps=200, batch_size=16, base_lr=1e12, device="cpu"),
                   progress=lambda step, total, loss: seen.append((step, total, loss)))
    assert result.diverged
    assert 1 <= result.diverged_step < 200
    assert result.steps == result.diverged_step
    assert math.isnan(result.loss_curve[-1][1]) or math.isinf(result.loss_curve[-1][1])
    assert result.test_accuracy == pytest.approx(1 / test_data.num_classes)  # chance, not argmax(NaN)
    assert seen and seen[-1][0] == result.diverged_step and math.isnan(seen[-1][2])


def test_regularizer_loss_is_added(data):
    train_data, _ = data
    config = TrainConfig(steps=1, batch_size=16, augment=False, device="cpu")
    losses = {}
    for spec in ("ln", "regnorm(strength=1000.0)"):
        torch.manual_seed(0)
        model = create_model(MODEL, spec, num_classes=train_data.num_classes, in_channels=3)
        if spec != "ln":
            untrained = copy.deepcopy(model)
        losses[spec] = train(model, train_data, None, config).loss_curve[0][1]
    # Same weights and batch: the difference is exactly the batch-mean penalty, which is positive.
    assert losses["regnorm(strength=1000.0)"] > losses["ln"] + 1e-3
    # ... and the penalty by hand on the harness's first batch (its generator seeded with the
    # config's seed): λ · mean_c(mean_b(ŷ)²) per normalizer, ŷ the LayerNorm of its input.
    index = torch.randperm(train_data.x.shape[0], generator=torch.Generator().manual_seed(config.seed))[:16]
    inputs = []
    for module in untrained.modules():
        if isinstance(module, Normalizer):
            module.register_forward_pre_hook(lambda _, args: inputs.append(args[0].detach()))
    cross_entropy = F.cross_entropy(untrained(train_data.x[index]), train_data.y[index]).item()
    assert len(inputs) == 2  # one per hidden layer of mlp(depth=2)
    penalty = sum(1000.0 * F.layer_norm(a, a.shape[1:], eps=1e-5).mean(0).square().mean().item() for a in inputs)
    assert penalty > 1e-3
    assert losses["ln"] == pytest.approx(cross_entropy, rel=1e-5)
    assert losses["regnorm(strength=1000.0)"] == pytest.approx(cross_entropy + penalty, rel=1e-5)


def test_random_flip_flips_whole_images():
    x = torch.randn(64, 3, 4, 5)
    flipped = random_flip(x, torch.Generator().manual_seed(0))
    same = [bool(torch.equal(a, b)) for a, b in zip(flipped, x)]
    mirrored = [bool(torch.equal(a, b.flip(-1))) for a, b in zip(flipped, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54
    features = torch.randn(8, 3)
    assert random_flip(features) is features  # only images are flipped


def test_epochs_and_constant_rule():
    config = TrainConfig(epochs=2, batch_size=32, lr_rule="constant", base_lr=0.05)
    assert config.total_steps(100) == 7
    assert config.learning_rate() == 0.05
