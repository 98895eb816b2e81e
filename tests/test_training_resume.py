"""A run stopped at a checkpoint and resumed from its serialized state equals the run that never stopped.

Successive halving stops candidates at rungs and continues the promising ones, possibly in another
process: the resumed run must give the same result (checkpoints, loss curve, accuracies, steps)
and the same weights. All runs here are in one process on one machine, so values are compared
with tiny tolerances; the accuracies (ratios of counts) and steps exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from explorer.data import load_dataset
from explorer.models import create_model
from explorer.records import TrainResult
from explorer.training import TrainConfig, TrainState, train

MODEL = "mlp(depth=2, width=16)"
#: batch statistics over the batch alone: running buffers sized lazily at the first step, which a
#: fresh model has as empty tensors, so loading a state must size them
SPEC = "mean(b) | std(b) | affine | relu"
TINY = {"rtol": 1e-6, "atol": 1e-7}


@pytest.fixture(scope="module")
def data():
    return load_dataset("gaussian", "train", limit=64, seed=0), load_dataset("gaussian", "test", limit=32, seed=0)


def _model(train_data, spec: str = SPEC) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(MODEL, spec, num_classes=train_data.num_classes, in_channels=3)


def _config(compile: str | bool = False, **changes) -> TrainConfig:
    # 4 batches per epoch: step 16 ends an epoch, and the decay (at 16) comes right after that checkpoint
    settings = dict(steps=20, batch_size=16, base_lr=0.4, device="cpu", checkpoints=(5, 16, 20), curve_points=20,
                    compile=compile)
    return TrainConfig(**{**settings, **changes})


def _stop_at(step: int, kept: list[TrainState]) -> Callable:
    """A callback that stops at ``step`` and keeps the state there, serialized and read back."""
    def on_checkpoint(record: dict[str, float], snapshot: Callable[[], TrainState]) -> bool:
        if record["step"] != step:
            return True
        kept.append(TrainState.from_bytes(snapshot().to_bytes()))
        return False

    return on_checkpoint


def _assert_same_run(resumed: TrainResult, whole: TrainResult) -> None:
    """Everything but times (and the compile decision, which is the resumed process's own)."""
    assert (resumed.steps, resumed.diverged, resumed.diverged_step, resumed.stopped_at) == \
        (whole.steps, whole.diverged, whole.diverged_step, whole.stopped_at)
    assert resumed.mean_train_accuracy == whole.mean_train_accuracy
    assert resumed.test_accuracy == whole.test_accuracy
    assert [s for s, _ in resumed.loss_curve] == [s for s, _ in whole.loss_curve]
    torch.testing.assert_close(torch.tensor([v for _, v in resumed.loss_curve]),
                               torch.tensor([v for _, v in whole.loss_curve]), equal_nan=True, **TINY)
    assert [c["step"] for c in resumed.checkpoints] == [c["step"] for c in whole.checkpoints]
    for mine, theirs in zip(resumed.checkpoints, whole.checkpoints):
        assert set(mine) == set(theirs)
        assert mine["mean_train_accuracy"] == theirs["mean_train_accuracy"]
        assert mine["test_accuracy"] == theirs["test_accuracy"] or \
            math.isnan(mine["test_accuracy"]) and math.isnan(theirs["test_accuracy"])
        torch.testing.assert_close(torch.tensor(mine["train_loss"]), torch.tensor(theirs["train_loss"]),
                                   equal_nan=True, **TINY)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    ours, theirs = a.state_dict(), b.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], **TINY, msg=key)


@pytest.mark.parametrize("compile", [False, "auto"])
def test_a_run_stopped_at_its_first_checkpoint_and_resumed_equals_the_whole_run(data, compile):
    train_data, test_data = data
    whole_model = _model(train_data)
    whole = train(whole_model, train_data, test_data, _config(compile))
    kept: list[TrainState] = []
    stopped = train(_model(train_data), train_data, test_data, _config(compile), on_checkpoint=_stop_at(5, kept))
    assert stopped.stopped_at == 5 and len(kept) == 1 and kept[0].step == 5
    fresh = _model(train_data)  # a new process would build the model the same way
    assert fresh.state_dict()["layers.0.post.center.stats.running_mean"].numel() == 0  # the premise: lazy buffers
    resumed = train(fresh, train_data, test_data, _config(compile), resume=kept[0])
    _assert_same_run(resumed, whole)
    _assert_same_weights(fresh, whole_model)
    # the times add up: the steps before the stop are counted once, in the resumed run's totals too
    assert resumed.checkpoints[0]["train_s"] == stopped.checkpoints[0]["train_s"]
    assert resumed.wall_time_s >= resumed.checkpoints[1]["train_s"] >= stopped.checkpoints[0]["train_s"]


def test_a_run_resumed_from_its_second_checkpoint_equals_the_whole_run(data):
    """Stopped at 5, resumed and stopped again at 16 (an epoch's end, the step before the decay),
    resumed again: three processes' worth of one run."""
    train_data, test_data = data
    whole_model = _model(train_data)
    seen: list[int] = []
    whole = train(whole_model, train_data, test_data, _config(),
                  on_checkpoint=lambda record, snapshot: seen.append(int(record["step"])) or True)
    assert seen == [5, 16]  # the last step's checkpoint comes with the end of the run, no callback
    first: list[TrainState] = []
    train(_model(train_data), train_data, test_data, _config(), on_checkpoint=_stop_at(5, first))
    second: list[TrainState] = []
    middle = train(_model(train_data), train_data, test_data, _config(), resume=first[0],
                   on_checkpoint=_stop_at(16, second))
    assert middle.stopped_at == 16 and second[0].step == 16 and second[0].cursor == 64
    assert [c["step"] for c in second[0].checkpoints] == [5, 16]
    last_model = _model(train_data)
    resumed = train(last_model, train_data, test_data, _config(), resume=second[0])
    _assert_same_run(resumed, whole)
    _assert_same_weights(last_model, whole_model)


def test_a_stopped_runs_result(data):
    train_data, test_data = data
    whole = train(_model(train_data), train_data, test_data, _config())
    model = _model(train_data)
    evaluations = []
    model.register_forward_pre_hook(lambda module, args: None if module.training else evaluations.append(1))
    late: list[Callable[[], TrainState]] = []

    def stop(record: dict[str, float], snapshot: Callable[[], TrainState]) -> bool:
        late.append(snapshot)
        return False

    stopped = train(model, train_data, test_data, _config(), on_checkpoint=stop)
    assert (stopped.steps, stopped.stopped_at, stopped.diverged) == (5, 5, False)
    assert len(evaluations) == 1  # the checkpoint's evaluation only: its test accuracy is the result's
    assert stopped.checkpoints == [whole.checkpoints[0] | {"train_s": stopped.checkpoints[0]["train_s"]}]
    assert stopped.test_accuracy == whole.checkpoints[0]["test_accuracy"]
    assert stopped.mean_train_accuracy == whole.checkpoints[0]["mean_train_accuracy"]
    assert stopped.loss_curve == whole.loss_curve[:5]  # one point per step, up to the stop
    assert stopped.wall_time_s >= stopped.checkpoints[0]["train_s"]
    with pytest.raises(RuntimeError, match="only during the on_checkpoint call"):
        late[0]()
    # the stop is part of the stored record; a finished run has none
    assert TrainResult.from_attrs(stopped.to_attrs()).stopped_at == 5 and stopped.as_dict()["stopped_at"] == 5
    assert whole.stopped_at is None and TrainResult.from_attrs(whole.to_attrs()).stopped_at is None
    # a callback that returns anything but False lets the run go on
    again = train(_model(train_data), train_data, test_data, _config(), on_checkpoint=lambda r, s: None)
    assert again.steps == 20 and again.stopped_at is None


def test_a_diverging_run_stops_as_before_and_is_never_snapshotted_diverged(data):
    train_data, test_data = data
    config = _config(steps=50, base_lr=1e12, checkpoints=(1, 40), augment=False)
    plain = train(_model(train_data, "none"), train_data, test_data, config)
    assert plain.diverged and 1 < plain.diverged_step < 40  # the premise: diverges between the checkpoints
    kept: list[TrainState] = []
    seen: list[int] = []

    def keep(record: dict[str, float], snapshot: Callable[[], TrainState]) -> bool:
        seen.append(int(record["step"]))
        kept.append(TrainState.from_bytes(snapshot().to_bytes()))
        return True

    watched = train(_model(train_data, "none"), train_data, test_data, config, on_checkpoint=keep)
    assert seen == [1]
    _assert_same_run(watched, plain)
    assert watched.checkpoints[-1]["step"] == 40 and math.isnan(watched.checkpoints[-1]["train_loss"])
    resumed = train(_model(train_data, "none"), train_data, test_data, config, resume=kept[0])
    _assert_same_run(resumed, plain)
    # a checkpoint at a step past the (unchecked) divergence: the loss is checked before it is
    # measured, so no callback sees a diverged run and the checkpoint is recorded at chance
    at = _config(steps=50, base_lr=1e12, checkpoints=(plain.diverged_step,), augment=False)
    seen.clear()
    late = train(_model(train_data, "none"), train_data, test_data, at, check_every=50, on_checkpoint=keep)
    assert seen == [] and late.diverged and late.diverged_step == plain.diverged_step
    assert late.checkpoints[0]["test_accuracy"] == pytest.approx(1 / test_data.num_classes)


def test_a_resume_of_another_run_is_refused(data):
    train_data, test_data = data
    kept: list[TrainState] = []
    train(_model(train_data), train_data, test_data, _config(), on_checkpoint=_stop_at(5, kept))
    with pytest.raises(ValueError, match="run of 20 steps, this run has 30"):
        train(_model(train_data), train_data, test_data, _config(steps=30), resume=kept[0])
    fewer = load_dataset("gaussian", "train", limit=48, seed=0)
    with pytest.raises(ValueError, match="made on 64 training examples, this run has 48"):
        train(_model(train_data), fewer, test_data, _config(), resume=kept[0])
    for junk in (b"", b"not a checkpoint", kept[0].to_bytes()[:-100]):
        with pytest.raises(ValueError, match="not a training state"):
            TrainState.from_bytes(junk)
