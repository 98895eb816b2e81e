"""A short training run with the paper's recipe, fast on a GPU and correct on a CPU.

Recipe (Lubana et al., Appendix A): SGD with momentum 0.9 and weight decay 1e-4, learning rate
``base_lr · batch_size / 256`` divided by 10 at 80 % of the run, random horizontal flips only,
cross-entropy plus every regularizer's loss (:func:`explorer.regularizer_loss`).

Speed: the whole dataset lives on the device and batches are sliced from it (no DataLoader, no
worker processes, no host-to-device copy per step); the flip is done on the device; on CUDA the
forward runs under bf16 autocast in channels_last. Loss values stay on the device and are checked
for NaN/inf every few steps, so the GPU is not synchronised every step.

A NaN or inf loss stops the run: the result says it diverged and at which step. The speed measure
is the paper's "mean training accuracy": the training accuracy averaged over the whole run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.compile import CompileController
from explorer.norm import regularizer_loss
from explorer.records import TrainResult

#: ``progress(step, total_steps, loss)``: called every ``progress_every`` steps and at the end.
ProgressCallback = Callable[[int, int, float], None]


@dataclass
class TrainConfig:
    """How to train; ``steps`` wins over ``epochs`` when both are given."""

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 128
    base_lr: float = 0.1
    #: the batch size ``base_lr`` refers to; lr = base_lr · batch_size / base_batch_size ("linear")
    base_batch_size: int = 256
    lr_rule: str = "linear"  # linear | constant
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_at: float = 0.8
    decay_factor: float = 0.1
    augment: bool = True
    device: str = "auto"
    seed: int = 0
    eval_batch_size: int = 512
    #: on CUDA: bf16 autocast and channels_last; ignored on the CPU
    mixed_precision: bool = True
    #: points kept in the stored loss curve (the curve is averaged over windows of steps)
    curve_points: int = 100
    #: compile the generic normalization layers: "auto" (when it pays), True, False (explorer.compile)
    compile: str | bool = "auto"
    #: steps after which the run is measured on the way (``TrainResult.checkpoints``): the
    #: learning curve a tabular benchmark replays, and where successive halving compares runs
    checkpoints: tuple[int, ...] = ()

    def total_steps(self, n_train: int) -> int:
        if self.steps is not None:
            return int(self.steps)
        epochs = 1.0 if self.epochs is None else float(self.epochs)
        return max(1, math.ceil(epochs * n_train / self.batch_size))

    def learning_rate(self) -> float:
        if self.lr_rule == "constant":
            return self.base_lr
        return self.base_lr * self.batch_size / self.base_batch_size


def get_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image (N, C, H, W) left-right with probability 1/2, on x's device."""
    if x.dim() != 4:
        return x
    mask = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def _downsample(losses: list[float], points: int) -> list[list[float]]:
    """[step, mean loss over the window ending at step] pairs, at most ``points`` of them."""
    n = len(losses)
    if n == 0:
        return []
    window = max(1, math.ceil(n / points))
    curve = []
    for start in range(0, n, window):
        chunk = losses[start:start + window]
        finite = [v for v in chunk if math.isfinite(v)]
        value = sum(finite) / len(finite) if len(finite) == len(chunk) else float("nan")
        curve.append([start + len(chunk), value])
    return curve


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512, autocast: bool = False) -> float:
    """Accuracy of ``model`` in eval mode on (x, y), both already on the model's device."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(xb)
        correct += (logits.argmax(dim=1) == y[start:start + batch_size]).sum()
    model.train(was_training)
    return correct.item() / max(1, x.shape[0])


def _chance(test_data: Any) -> float:
    """A diverged model predicts nothing: chance level, not whatever argmax(NaN) returns (data
    without ``num_classes``: the classes its labels reach, not 1 class and a perfect score)."""
    classes = getattr(test_data, "num_classes", 0) or int(test_data.y.max().item()) + 1
    return 1.0 / max(1, int(classes))


def train(model: nn.Module, train_data: Any, test_data: Any | None = None, config: TrainConfig | None = None,
          progress: ProgressCallback | None = None, progress_every: int = 10,
          check_every: int | None = None) -> TrainResult:
    """Train ``model`` on ``train_data`` (an object with tensors ``x`` and ``y``) and test it.

    The model is trained in place. Returns a :class:`TrainResult`; a NaN or inf loss ends the run
    early with ``diverged=True`` and the first non-finite step (1-based). At each of
    ``config.checkpoints`` the run is measured (training loss since the last checkpoint, mean
    training accuracy so far, test accuracy, training seconds so far without the evaluations);
    a checkpoint after a divergence records it at chance. The loss is checked every
    ``check_every`` steps (default: every step on a CPU, where it is free, every 10 on a GPU, where
    it is a sync); a run that diverges between checks reports what it would have reported had every
    step been checked: its steps, loss curve and mean training accuracy end at the first bad step.
    """
    config = config or TrainConfig()
    device = get_device(config.device)
    cuda = device.type == "cuda"
    autocast = cuda and config.mixed_precision
    memory_format = torch.channels_last if autocast else torch.contiguous_format

    x_train = train_data.x.to(device)
    y_train = train_data.y.to(device)
    if x_train.dim() == 4:
        x_train = x_train.contiguous(memory_format=memory_format)
    model.to(device)
    if x_train.dim() == 4 and autocast:
        model.to(memory_format=memory_format)
    model.train()

    n = x_train.shape[0]
    batch_size = min(config.batch_size, n)
    total = config.total_steps(n)
    lr = config.learning_rate()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    decay_step = int(config.decay_at * total)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    if check_every is None:
        check_every = 10 if cuda else 1
    # Per step, on the device: a divergence found late cuts both back to its first bad step.
    losses = torch.empty(total, device=device)
    correct = torch.zeros(total, dtype=torch.long, device=device)
    result = TrainResult(device=str(device))
    start_time = time.perf_counter()
    order = torch.randperm(n, device=device, generator=generator)
    cursor = 0
    step = 0
    last_checked = 0
    # Batches are always full (a partial one would recompile): a new permutation starts instead.
    compiler = CompileController(model, config.compile, planned=total, device=device)
    # the last step's checkpoint is taken from the final evaluation, not a second one
    checkpoints = sorted({int(c) for c in config.checkpoints if 0 < int(c) < total})
    last_checkpoint = total in {int(c) for c in config.checkpoints}
    evaluating_s = 0.0
    while step < total:
        if step == decay_step and step > 0:
            for group in optimizer.param_groups:
                group["lr"] = lr * config.decay_factor
        if cursor + batch_size > n:
            order = torch.randperm(n, device=device, generator=generator)
            cursor = 0
        index = order[cursor:cursor + batch_size]
        cursor += batch_size
        xb, yb = x_train[index], y_train[index]
        if config.augment:
            xb = random_flip(xb, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb) + regularizer_loss(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        compiler.pass_done()
        losses[step] = loss.detach()
        correct[step] = (logits.detach().argmax(dim=1) == yb).sum()
        step += 1
        report = progress is not None and (step % progress_every == 0 or step == total)
        # a progress report reads a loss (a sync anyway): check first, so none reports past a divergence
        if step - last_checked >= check_every or step == total or report:
            window = losses[last_checked:step]
            bad = ~torch.isfinite(window)
            if bool(bad.any()):
                result.diverged = True
                result.diverged_step = last_checked + int(bad.nonzero()[0, 0].item()) + 1
                step = result.diverged_step
                break
            last_checked = step
        if report:
            progress(step, total, float(losses[step - 1].item()))
        if checkpoints and step == checkpoints[0]:
            started = time.perf_counter()
            with compiler.paused():
                result.checkpoints.append(_checkpoint(model, losses, correct, step, batch_size, test_data, config,
                                                      device, memory_format, autocast,
                                                      started - start_time - evaluating_s))
            evaluating_s += time.perf_counter() - started
            checkpoints.pop(0)
    if cuda:
        torch.cuda.synchronize(device)
    trained_s = time.perf_counter() - start_time - evaluating_s
    compiler.freeze()  # evaluation is one pass with a partial last batch: it never pays to compile
    result.compile = compiler.decision
    result.steps = step
    loss_values = losses[:step].float().cpu().tolist()
    result.loss_curve = _downsample(loss_values, config.curve_points)
    result.mean_train_accuracy = correct[:step].sum().item() / max(1, step * batch_size)
    if test_data is not None and not result.diverged:
        x_test = test_data.x.to(device)
        if x_test.dim() == 4:
            x_test = x_test.contiguous(memory_format=memory_format)
        result.test_accuracy = evaluate(model, x_test, test_data.y.to(device), config.eval_batch_size, autocast)
    elif test_data is not None:
        result.test_accuracy = _chance(test_data)
    if last_checkpoint and not result.diverged:
        since = max([0, *(c["step"] for c in result.checkpoints)])
        result.checkpoints.append({"step": total, "train_loss": sum(loss_values[since:]) / max(1, total - since),
                                   "mean_train_accuracy": result.mean_train_accuracy,
                                   "test_accuracy": result.test_accuracy if test_data is not None else math.nan,
                                   "train_s": trained_s})
    for missed in [*checkpoints, *([total] if last_checkpoint else [])] if result.diverged else ():
        # the run ended early: what it would be measured at is chance
        result.checkpoints.append({"step": missed, "train_loss": math.nan,
                                   "mean_train_accuracy": result.mean_train_accuracy,
                                   "test_accuracy": _chance(test_data) if test_data is not None else math.nan,
                                   "train_s": trained_s})
    compiler.close()
    result.wall_time_s = time.perf_counter() - start_time - evaluating_s
    if progress is not None and result.diverged:
        progress(step, total, float("nan"))
    return result


def _checkpoint(model: nn.Module, losses: Tensor, correct: Tensor, step: int, batch_size: int, test_data: Any,
                config: TrainConfig, device: torch.device, memory_format: torch.memory_format, autocast: bool,
                train_s: float) -> dict[str, float]:
    """The run measured after ``step`` steps (see :func:`train`)."""
    previous = 0
    for c in config.checkpoints:
        if previous < int(c) < step:
            previous = int(c)
    window = losses[previous:step].float()
    test_accuracy = math.nan
    if test_data is not None:
        x_test = test_data.x.to(device)
        if x_test.dim() == 4:
            x_test = x_test.contiguous(memory_format=memory_format)
        test_accuracy = evaluate(model, x_test, test_data.y.to(device), config.eval_batch_size, autocast)
    return {"step": step, "train_loss": float(window.mean().item()),
            "mean_train_accuracy": correct[:step].sum().item() / max(1, step * batch_size),
            "test_accuracy": test_accuracy, "train_s": train_s}
