"""The training harness against an independent plain-PyTorch loop, divergence, regularizers, flips."""

from __future__ import annotations

import copy
import math
import time
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from explorer.data import Dataset, load_dataset
from explorer.models import create_model
from explorer.norm import Normalizer
from explorer.training import TrainConfig, get_device, random_flip, train

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


# ----------------------------------------------------------------------------- found by mutation testing


def _model(train_data, spec="ln", seed=0):
    torch.manual_seed(seed)
    return create_model(MODEL, spec, num_classes=train_data.num_classes, in_channels=3)


def _accuracy(model, dataset) -> float:
    with torch.no_grad():
        return (model(dataset.x).argmax(dim=1) == dataset.y).float().mean().item()


def test_progress_every_n_steps_and_at_the_end_with_that_steps_loss(data):
    train_data, _ = data
    config = TrainConfig(steps=25, batch_size=16, augment=False, device="cpu", curve_points=25)
    seen = []
    result = train(_model(train_data), train_data, None, config,
                   progress=lambda step, total, loss: seen.append((step, total, loss)))
    losses = dict(result.loss_curve)  # one point per step: {step: its loss}
    assert [(step, total) for step, total, _ in seen] == [(10, 25), (20, 25), (25, 25)]
    assert [loss for _, _, loss in seen] == pytest.approx([losses[10], losses[20], losses[25]], rel=1e-6)
    assert result.steps == 25 and not result.diverged


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_learning_rate_is_divided_by_ten_at_80_percent_of_the_run(data, steps):
    """Against plain SGD with the rates written out: 80 % of 1 step is still the first step (full
    rate); of 2 steps, the second runs at lr/10; of 5 steps, the fifth."""
    train_data, _ = data
    n = train_data.x.shape[0]
    config = TrainConfig(steps=steps, batch_size=n, base_lr=2.0, augment=False, device="cpu")
    model = _model(train_data)
    reference = _model(train_data)
    train(model, train_data, None, config)
    lr = 2.0 * n / 256
    rates = {1: [lr], 2: [lr, lr / 10], 5: [lr] * 4 + [lr / 10]}[steps]
    opt = torch.optim.SGD(reference.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    for rate in rates:  # the batch is the whole data set: its order does not change the mean loss
        for group in opt.param_groups:
            group["lr"] = rate
        opt.zero_grad()
        F.cross_entropy(reference(train_data.x), train_data.y).backward()
        opt.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_epochs_default_to_one_and_a_run_has_at_least_one_step(data):
    assert TrainConfig(batch_size=32).total_steps(100) == 4  # neither steps nor epochs: one epoch
    assert TrainConfig(epochs=0.01, batch_size=32).total_steps(100) == 1
    assert TrainConfig(steps=3, epochs=5.0, batch_size=32).total_steps(100) == 3  # steps win
    train_data, _ = data
    result = train(_model(train_data), train_data, None, TrainConfig(epochs=0.5, batch_size=16, device="cpu"))
    assert result.steps == 2 and len(result.loss_curve) == 2  # half an epoch of 64 samples


def test_accuracies_of_a_model_that_does_not_move(data):
    """lr 0: the model stays as built, so the mean training accuracy is its accuracy on the batches
    it saw (every sample, three times) and the test accuracy its accuracy on the test set."""
    train_data, test_data = data
    model = _model(train_data)
    expected_train, expected_test = _accuracy(model, train_data), _accuracy(model, test_data)
    config = TrainConfig(steps=3, batch_size=64, base_lr=0.0, augment=False, device="cpu", eval_batch_size=8,
                         compile=False)
    result = train(model, train_data, test_data, config)
    assert result.mean_train_accuracy == pytest.approx(expected_train, abs=1e-9)
    assert result.test_accuracy == pytest.approx(expected_test, abs=1e-9)
    assert 0 < expected_test < 1 and 0 < expected_train < 1
    assert model.training  # left in training mode after the evaluation
    assert result.compile == "eager (compile = false)"
    # one sample, classified right: accuracy 1 (not 1/2)
    one = Dataset(train_data.x[:1], _model(train_data)(train_data.x[:1]).argmax(dim=1).detach(), 10, "one")
    result = train(_model(train_data), one, None, TrainConfig(steps=1, base_lr=0.0, augment=False, device="cpu"))
    assert result.mean_train_accuracy == 1.0


def test_divergence_at_the_first_step_and_chance_of_unlabelled_test_data(data):
    """Infinite inputs: the first loss is NaN. No progress callback is needed; the chance level of
    test data without ``num_classes`` is one over the classes its labels reach, not 1."""
    train_data, test_data = data
    bad = Dataset(torch.full_like(train_data.x, math.inf), train_data.y, train_data.num_classes, "inf")
    test = SimpleNamespace(x=test_data.x, y=torch.arange(32) % 4)
    start = time.perf_counter()
    result = train(_model(train_data), bad, test, TrainConfig(steps=50, batch_size=16, device="cpu"))
    elapsed = time.perf_counter() - start
    assert result.diverged and result.diverged_step == 1 and result.steps == 1
    assert len(result.loss_curve) == 1 and result.loss_curve[0][0] == 1 and math.isnan(result.loss_curve[0][1])
    assert result.test_accuracy == pytest.approx(0.25)
    assert 0 < result.wall_time_s <= elapsed
    # a data set's num_classes wins over the labels it happens to hold; one class is chance 1
    for test, chance in [(Dataset(test_data.x, torch.arange(32) % 4, 10, "four"), 0.1),
                         (SimpleNamespace(x=test_data.x, y=torch.zeros(32, dtype=torch.long)), 1.0)]:
        result = train(_model(train_data), bad, test, TrainConfig(steps=5, batch_size=16, device="cpu"))
        assert result.diverged and result.test_accuracy == pytest.approx(chance)


def test_divergence_stops_at_the_first_non_finite_loss(data):
    train_data, test_data = data
    seen = []
    config = TrainConfig(steps=200, batch_size=16, base_lr=1e12, device="cpu", curve_points=200)
    result = train(_model(train_data, "none"), train_data, test_data, config,
                   progress=lambda step, total, loss: seen.append((step, total, loss)))
    curve = [loss for _, loss in result.loss_curve]  # one point per step run
    assert result.diverged and len(curve) == result.diverged_step == result.steps
    assert all(math.isfinite(v) for v in curve[:-1]) and not math.isfinite(curve[-1])
    assert all(step <= result.diverged_step for step, _, _ in seen)  # no progress after it
    assert seen[-1][:2] == (result.diverged_step, 200) and math.isnan(seen[-1][2])
    # the run stops at once: the mean training accuracy is that of a run of exactly those steps
    # (no decay within either: decay_at = 1)
    config = TrainConfig(steps=200, batch_size=16, base_lr=1e12, device="cpu", decay_at=1.0)
    long = train(_model(train_data, "none"), train_data, None, config)
    config.steps = long.diverged_step
    short = train(_model(train_data, "none"), train_data, None, config)
    assert short.loss_curve[:-1] == long.loss_curve[:-1] and short.steps == long.steps
    assert short.mean_train_accuracy == long.mean_train_accuracy


def test_a_divergence_found_between_checks_reports_what_checking_every_step_reports(data):
    """On a GPU the loss is checked every 10 steps (a sync each time). A run that diverges between
    two checks must still end at its first bad step: the steps after it neither count in the mean
    training accuracy nor reach the loss curve or the progress callback."""
    train_data, _ = data
    config = TrainConfig(steps=200, batch_size=16, base_lr=1e12, device="cpu", curve_points=200, decay_at=1.0)

    def run(check_every, progress_every=10):
        torch.manual_seed(0)
        seen, passes = [], []
        model = _model(train_data, "none")
        model.register_forward_pre_hook(lambda module, args: passes.append(1))  # training steps run
        result = train(model, train_data, None, config, check_every=check_every,
                       progress=lambda step, total, loss: seen.append((step, total, repr(loss))),
                       progress_every=progress_every)
        return result, seen, len(passes)

    each, each_seen, each_passes = run(None)  # on a CPU: every step, so it stops at once
    assert each.diverged and 1 < each.diverged_step < 10  # the premise: it diverges inside the first window
    assert each_passes == each.diverged_step
    for check_every, progress_every in [(10, 10), (10, 200), (50, 3), (4, 200), (2, 200)]:  # (2: after a clean check)
        late, late_seen, passes = run(check_every, progress_every)
        # it stops at the first check (or progress report) after the divergence, not at the end
        assert passes == next(s for s in range(each.diverged_step, 201) if s % check_every == 0 or s % progress_every == 0)
        assert (late.diverged, late.diverged_step, late.steps) == (True, each.diverged_step, each.steps)
        assert late.mean_train_accuracy == each.mean_train_accuracy
        assert repr(late.loss_curve) == repr(each.loss_curve)
        assert all(step <= each.diverged_step for step, _, _ in late_seen)
        assert late_seen[-1] == (each.diverged_step, 200, "nan")
    assert each_seen[-1] == (each.diverged_step, 200, "nan")


def test_the_loss_curve_averages_windows_of_steps(data):
    train_data, _ = data
    config = dict(steps=12, batch_size=16, device="cpu")
    every = train(_model(train_data), train_data, None, TrainConfig(curve_points=12, **config)).loss_curve
    coarse = train(_model(train_data), train_data, None, TrainConfig(curve_points=4, **config)).loss_curve
    assert [step for step, _ in every] == list(range(1, 13))
    assert [step for step, _ in coarse] == [3, 6, 9, 12]  # windows of 3 steps
    means = [sum(loss for _, loss in every[i:i + 3]) / 3 for i in range(0, 12, 3)]
    assert [loss for _, loss in coarse] == pytest.approx(means, rel=1e-5)


def test_flips_and_batches_follow_the_configs_seed_only(data):
    """Augmented runs are reproducible from ``TrainConfig.seed`` whatever the global RNG did."""
    train_data, _ = data
    curves = []
    for global_seed, seed in [(1, 0), (2, 0), (3, 1)]:
        model = _model(train_data)
        torch.manual_seed(global_seed)
        config = TrainConfig(steps=6, batch_size=16, augment=True, seed=seed, device="cpu", curve_points=6)
        curves.append([loss for _, loss in train(model, train_data, None, config).loss_curve])
    assert curves[0] == curves[1]
    assert curves[0] != curves[2]


def test_random_flip_is_reproducible_from_its_generator():
    x = torch.randn(32, 3, 2, 4)
    first = random_flip(x, torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    assert torch.equal(random_flip(x, torch.Generator().manual_seed(5)), first)
    assert not torch.equal(random_flip(x, torch.Generator().manual_seed(6)), first)


def test_get_device():
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert get_device() == expected and get_device("auto") == expected
    assert get_device("cpu") == torch.device("cpu")
