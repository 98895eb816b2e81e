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

A run can stop at one of its checkpoints and be resumed later, in another process or on another
machine, with the same result as a run that never stopped (successive halving continues only the
promising runs): ``on_checkpoint`` decides and takes a :class:`TrainState`, ``resume`` continues it.
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
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
class TrainState:
    """Everything a run needs to continue exactly where it stopped (:func:`train`'s ``resume``).

    Held on the CPU, as plain tensors, dicts, lists, numbers and strings, so that
    :meth:`to_bytes` / :meth:`from_bytes` round-trip it through ``torch.load(weights_only=True)``
    (a checkpoint file cannot run code when it is read). The per-step losses and correct counts
    make the resumed run's loss curve and mean training accuracy those of the whole run; the
    checkpoint records and training seconds make its ``checkpoints`` and times add up.
    """

    #: steps run so far, and the steps the run plans in all (a resume with another total is refused)
    step: int
    total: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    #: the run's generator (batch order and flips), ``torch.Generator.get_state()``
    generator: Tensor
    #: the current permutation of the training set and the position in it
    order: Tensor
    cursor: int
    #: per step so far: the loss (float32) and the number of correct training predictions
    losses: Tensor
    correct: Tensor
    checkpoints: list[dict[str, float]] = field(default_factory=list)
    #: training seconds so far, evaluations not counted
    train_s: float = 0.0
    #: the device type the run trained on ("cpu", "cuda"): a generator's state belongs to its device
    device: str = "cpu"

    def to_bytes(self) -> bytes:
        """The state as ``torch.save`` bytes (a zip archive: a cut-off file fails to load)."""
        buffer = io.BytesIO()
        torch.save({f.name: getattr(self, f.name) for f in fields(self)}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainState:
        """The state saved by :meth:`to_bytes`; a ValueError when ``data`` holds something else."""
        try:
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - zip, unpickling and format errors of every kind
            raise ValueError(f"not a training state ({type(err).__name__}: {_first_line(err)})") from None
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or not names <= set(raw):
            missing = sorted(names - set(raw)) if isinstance(raw, dict) else ["everything"]
            raise ValueError(f"not a training state (missing {', '.join(missing)})")
        state = cls(**{name: raw[name] for name in names})
        tensors = ("generator", "order", "losses", "correct")
        numbers = ("step", "total", "cursor")
        if not all(isinstance(getattr(state, name), Tensor) for name in tensors) \
                or not all(isinstance(getattr(state, name), int) for name in numbers) \
                or not isinstance(state.model, dict) or not isinstance(state.optimizer, dict) \
                or not isinstance(state.checkpoints, list) or not 0 <= state.step <= state.total \
                or state.losses.numel() != state.step or state.correct.numel() != state.step:
            raise ValueError("not a training state (inconsistent fields)")
        return state


#: ``on_checkpoint(record, snapshot)``: called after each checkpoint before the run's end with the
#: checkpoint's record and a function that returns the run's :class:`TrainState` at that step
#: (built only when called: it copies the model); returning False stops the run there.
CheckpointCallback = Callable[[dict[str, float], Callable[[], TrainState]], bool]


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__


def _to_cpu(value: Any) -> Any:
    """A copy of ``value`` (a state dict) with every tensor detached and on the CPU."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return copy.deepcopy(value)


def _load_model_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    """``model.load_state_dict(state)``, after giving lazily sized buffers (running statistics
    over axes whose size is known only at the first step, shape (0,) until then) the saved shape."""
    own = model.state_dict()
    for key, saved in state.items():
        mine = own.get(key)
        if mine is None or mine.shape == saved.shape or mine.numel() != 0:
            continue
        prefix, _, name = key.rpartition(".")
        owner = model.get_submodule(prefix) if prefix else model
        if name in owner._buffers:
            owner._buffers[name] = torch.empty(saved.shape, dtype=mine.dtype, device=mine.device)
    model.load_state_dict(state)


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
          check_every: int | None = None, *, resume: TrainState | None = None,
          on_checkpoint: CheckpointCallback | None = None) -> TrainResult:
    """Train ``model`` on ``train_data`` (an object with tensors ``x`` and ``y``) and test it.

    The model is trained in place. Returns a :class:`TrainResult`; a NaN or inf loss ends the run
    early with ``diverged=True`` and the first non-finite step (1-based). At each of
    ``config.checkpoints`` the run is measured (training loss since the last checkpoint, mean
    training accuracy so far, test accuracy, training seconds so far without the evaluations);
    a checkpoint after a divergence records it at chance. The loss is checked every
    ``check_every`` steps (default: every step on a CPU, where it is free, every 10 on a GPU, where
    it is a sync); a run that diverges between checks reports what it would have reported had every
    step been checked: its steps, loss curve and mean training accuracy end at the first bad step.

    ``on_checkpoint(record, snapshot)`` is called after each checkpoint before the last step (the
    loss is checked first: no snapshot of a diverged run is taken); ``snapshot()``, valid during
    the call only, returns the :class:`TrainState` there. A return of False stops the run: its
    result has ``steps = stopped_at =`` that step, the checkpoint's test accuracy (no second
    evaluation), and the loss curve, mean training accuracy and checkpoints up to it. Any other
    return continues. The callback's seconds count as evaluation, not training.

    ``resume`` continues a run from its state (the model must be built the same way; the weights,
    optimizer, random stream and history are the state's) with the same schedule: the result and
    final weights equal those of the run that never stopped, times aside (exactly so for eager
    layers; a run whose layers are compiled differs by the compiled code's rounding). A state of
    another length (``total``), training set or device type is a ValueError.
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
    # the last step's checkpoint is taken from the final evaluation, not a second one
    checkpoints = sorted({int(c) for c in config.checkpoints if 0 < int(c) < total})
    last_checkpoint = total in {int(c) for c in config.checkpoints}
    if resume is None:
        start_time = time.perf_counter()
        order = torch.randperm(n, device=device, generator=generator)
        cursor = 0
        step = 0
    else:
        _check_resumable(resume, total, n, device)
        _load_model_state(model, resume.model)
        optimizer.load_state_dict(resume.optimizer)
        generator.set_state(resume.generator)
        order = resume.order.to(device)
        cursor = int(resume.cursor)
        step = int(resume.step)
        losses[:step] = resume.losses.to(device=device, dtype=losses.dtype)
        correct[:step] = resume.correct.to(device=device, dtype=correct.dtype)
        result.checkpoints = copy.deepcopy(list(resume.checkpoints))
        checkpoints = [c for c in checkpoints if c > step]
        # the training seconds so far count: checkpoints' train_s and the result's times add up
        start_time = time.perf_counter() - float(resume.train_s)
    last_checked = step
    # Batches are always full (a partial one would recompile): a new permutation starts instead.
    compiler = CompileController(model, config.compile, planned=total - step, device=device)
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
        at_checkpoint = bool(checkpoints) and step == checkpoints[0]
        # a progress report reads a loss (a sync anyway): check first, so none reports past a
        # divergence; and a checkpoint never measures (or saves) a run that diverged before it
        if step - last_checked >= check_every or step == total or report or at_checkpoint:
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
        if at_checkpoint:
            started = time.perf_counter()
            trained_so_far = started - start_time - evaluating_s
            with compiler.paused():
                record = _checkpoint(model, losses, correct, step, batch_size, test_data, config,
                                     device, memory_format, autocast, trained_so_far)
                result.checkpoints.append(record)
                checkpoints.pop(0)
                go_on = True
                if on_checkpoint is not None:
                    live = [True]

                    def snapshot() -> TrainState:
                        if not live[0]:
                            raise RuntimeError("a checkpoint's snapshot() is valid only during the on_checkpoint call")
                        return _state(model, optimizer, generator, order, cursor, step, total, losses, correct,
                                      result.checkpoints, trained_so_far, device)

                    try:
                        go_on = on_checkpoint(dict(record), snapshot) is not False
                    except BaseException:
                        compiler.close()  # the caller's error (or Ctrl-C): the model is left as it was
                        raise
                    finally:
                        live[0] = False
            evaluating_s += time.perf_counter() - started
            if not go_on:
                result.stopped_at = step
                break
    if cuda:
        torch.cuda.synchronize(device)
    trained_s = time.perf_counter() - start_time - evaluating_s
    compiler.freeze()  # evaluation is one pass with a partial last batch: it never pays to compile
    result.compile = compiler.decision
    result.steps = step
    loss_values = losses[:step].float().cpu().tolist()
    result.loss_curve = _downsample(loss_values, config.curve_points)
    result.mean_train_accuracy = correct[:step].sum().item() / max(1, step * batch_size)
    if result.stopped_at is not None:
        if test_data is not None:  # measured at the checkpoint it stopped at
            result.test_accuracy = result.checkpoints[-1]["test_accuracy"]
    elif test_data is not None and not result.diverged:
        x_test = test_data.x.to(device)
        if x_test.dim() == 4:
            x_test = x_test.contiguous(memory_format=memory_format)
        result.test_accuracy = evaluate(model, x_test, test_data.y.to(device), config.eval_batch_size, autocast)
    elif test_data is not None:
        result.test_accuracy = _chance(test_data)
    if last_checkpoint and not result.diverged and result.stopped_at is None:
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


def _check_resumable(state: TrainState, total: int, n: int, device: torch.device) -> None:
    """A ValueError unless ``state`` continues a run of this length, training set and device type."""
    if int(state.total) != total:
        raise ValueError(f"cannot resume: the training state is of a run of {state.total} steps, this run has "
                         f"{total} (the learning-rate schedule and checkpoints depend on the length)")
    if state.order.numel() != n:
        raise ValueError(f"cannot resume: the training state was made on {state.order.numel()} training "
                         f"examples, this run has {n}")
    if not 0 <= int(state.cursor) <= n or state.losses.numel() != int(state.step) \
            or state.correct.numel() != int(state.step):
        raise ValueError("cannot resume: the training state is inconsistent (cursor or per-step history)")
    if state.device != device.type:
        raise ValueError(f"cannot resume: the training state was made on {state.device}, this run is on "
                         f"{device.type} (the random stream of batches and flips is the device's)")


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator, order: Tensor,
           cursor: int, step: int, total: int, losses: Tensor, correct: Tensor,
           checkpoints: list[dict[str, float]], train_s: float, device: torch.device) -> TrainState:
    """The run's state after ``step`` steps, copied to the CPU."""
    return TrainState(step=step, total=total, model=_to_cpu(model.state_dict()),
                      optimizer=_to_cpu(optimizer.state_dict()), generator=generator.get_state().cpu(),
                      order=_to_cpu(order), cursor=cursor, losses=_to_cpu(losses[:step]),
                      correct=_to_cpu(correct[:step]), checkpoints=copy.deepcopy(checkpoints),
                      train_s=float(train_s), device=device.type)


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
