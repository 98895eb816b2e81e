"""Running a study: workers claim trials within the study-wide budget, screen, train, record.

One trial, in one worker:

1. **claim**: under the storage's claim lock, count the trials that hold a place in the budget
   (complete, pruned, running, and failed with an error) and ask Optuna for a trial only when
   there is room. A waiting trial (an enqueued baseline, or the retry of a trial whose worker died
   or was interrupted) is taken before a new one is sampled.
2. **sample** the composition from the space (define-by-run); an invalid one is pruned with the
   reason. A composition whose canonical spec an earlier finished trial already has reuses that
   trial's results (``reused_from``) instead of recomputing them.
3. **screen** it with the init predictors on every model of the study; past a threshold
   (explosion exponent, variance growth, NaN) it is pruned with the reason, never trained.
4. **train** the survivors briefly on every model and tell Optuna the objectives, aggregated
   over models (worst case by default).

Everything goes into the trial's user attributes as ``docs/trial-schema.md`` says. Ctrl-C marks
the running trial ``interrupted`` (state FAIL), enqueues its retry, and stops cleanly; running
the same command again resumes the study.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from explorer.errors import NormxError
from explorer.search.events import PlainLines, TrialEvent, TrialEventHandler
from explorer.search.storage import StorageError, StorageTarget, claim_lock, open_storage, resolve_storage
from explorer.search.study_file import OBJECTIVE_NAMES, StudyConfig, StudyFileError, locate

#: Minimum seconds between two writes of a trial's ``step`` to the storage.
PROGRESS_WRITE_EVERY_S = 2.0
#: Seconds between two polls of an idle worker waiting for other workers' trials.
IDLE_POLL_S = 1.0

#: The predictors a trial stores (docs/trial-schema.md).
PREDICTOR_KEYS = ("cosine_similarity", "grad_explosion_exponent", "stable_rank", "activation_variance",
                  "grad_norm", "variance_growth", "overflow", "spread")
VARIANCE_KIND_ORDER = {"flat": 0, "linear": 1, "exponential": 2}


class StudyMismatchError(NormxError):
    """The study exists in the storage with other objectives than the study file asks for."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- JSON-safe values


def json_safe(value: Any) -> Any:
    """Floats that JSON cannot hold become "inf", "-inf", "nan"; tensors and tuples plain lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):
        return json_safe(value.tolist())
    if hasattr(value, "item"):
        return json_safe(value.item())
    return str(value)


def as_float(value: Any) -> float:
    """The float of a stored value ("inf"/"nan" strings included)."""
    if isinstance(value, str):
        return float(value)
    return float(value)


# --------------------------------------------------------------------------- aggregation


def aggregate_predictors(by_model: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The predictors of the worst model for each key: the study's view of one composition."""
    if len(by_model) == 1:
        return dict(next(iter(by_model.values())))
    rows = list(by_model.values())

    def worst(key: str, higher_is_worse: bool) -> Any:
        values = [r[key] for r in rows if key in r]
        if not values:
            return None
        floats = [as_float(v) for v in values]
        floats = [f if not math.isnan(f) else (math.inf if higher_is_worse else -math.inf) for f in floats]
        index = max(range(len(floats)), key=lambda i: floats[i] if higher_is_worse else -floats[i])
        return values[index]

    out: dict[str, Any] = {
        "cosine_similarity": worst("cosine_similarity", True),
        "grad_explosion_exponent": worst("grad_explosion_exponent", True),
        "stable_rank": worst("stable_rank", False),
        "overflow": any(bool(r.get("overflow")) for r in rows),
    }
    # Per-layer lists belong to one model: those of the model with the worst explosion.
    explosions = [as_float(r.get("grad_explosion_exponent", 0.0)) for r in rows]
    worst_model = max(range(len(rows)), key=lambda i: explosions[i] if not math.isnan(explosions[i]) else math.inf)
    for key in ("activation_variance", "grad_norm"):
        out[key] = rows[worst_model].get(key, [])
    growths = [r.get("variance_growth") or {"kind": "flat", "rate": 0.0} for r in rows]
    out["variance_growth"] = max(growths, key=lambda g: (VARIANCE_KIND_ORDER.get(g.get("kind"), 0), as_float(g.get("rate", 0.0))))
    spread: dict[str, Any] = {}
    for r in rows:
        for key, value in (r.get("spread") or {}).items():
            try:
                spread[key] = max(as_float(spread.get(key, 0.0)), as_float(value))
            except (TypeError, ValueError):
                spread[key] = value
    out["spread"] = spread
    return out


def aggregate_training(by_model: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One ``train`` record for several models: worst accuracies, any divergence, summed time."""
    rows = list(by_model.values())
    if len(rows) == 1:
        return dict(rows[0])
    worst = min(range(len(rows)), key=lambda i: rows[i]["test_accuracy"])
    steps = [r["diverged_step"] for r in rows if r.get("diverged_step") is not None]
    return {
        "loss_curve": rows[worst]["loss_curve"],
        "mean_train_accuracy": min(r["mean_train_accuracy"] for r in rows),
        "test_accuracy": min(r["test_accuracy"] for r in rows),
        "diverged": any(r["diverged"] for r in rows),
        "diverged_step": min(steps) if steps else None,
        "wall_time_s": sum(r["wall_time_s"] for r in rows),
        "device": rows[0]["device"],
    }


def objective_values(config: StudyConfig, predictors_by_model: dict[str, dict[str, Any]],
                     train_by_model: dict[str, dict[str, Any]]) -> list[float]:
    """The study's objectives, each aggregated over models (worst case for its direction, or mean)."""
    values = []
    for name, direction in config.objectives.items():
        source, key, _ = OBJECTIVE_NAMES[name]
        table = predictors_by_model if source == "predictors" else train_by_model
        per_model = []
        for record in table.values():
            if key == "final_loss":
                curve = record.get("loss_curve") or [[0, math.inf]]
                # a diverged run's last loss is NaN; for the study it is the worst possible loss
                per_model.append(math.inf if record.get("diverged") else as_float(curve[-1][1]))
            else:
                per_model.append(as_float(record[key]))
        if config.aggregate == "mean":
            values.append(sum(per_model) / len(per_model))
        else:
            values.append(min(per_model) if direction == "maximize" else max(per_model))
    return values


def screening_verdict(config: StudyConfig, by_model: dict[str, dict[str, Any]]) -> str | None:
    """Why screening rejects the composition, or None when it passes every threshold."""
    s = config.screening
    for model, p in by_model.items():
        if s.prune_overflow and p.get("overflow"):
            return f"NaN/inf at initialization on {model}"
        explosion = as_float(p.get("grad_explosion_exponent", 0.0))
        if s.prune_overflow and math.isnan(explosion):
            return f"NaN gradient explosion exponent on {model}"
        if s.max_grad_explosion is not None and explosion > s.max_grad_explosion:
            return (f"gradient explosion exponent {explosion:.3g} > {s.max_grad_explosion:g} "
                    f"(screening.max_grad_explosion) on {model}")
        growth = p.get("variance_growth") or {}
        if growth.get("kind") in s.reject_variance_growth and as_float(growth.get("rate", 0.0)) > 0:
            return (f"{growth.get('kind')} activation-variance growth (rate {as_float(growth.get('rate', 0.0)):.3g}) "
                    f"on {model} (screening.reject_variance_growth)")
        cosine = as_float(p.get("cosine_similarity", 0.0))
        if s.max_cosine_similarity is not None and cosine > s.max_cosine_similarity:
            return f"cosine similarity {cosine:.3g} > {s.max_cosine_similarity:g} (screening.max_cosine_similarity) on {model}"
    return None


# --------------------------------------------------------------------------- context


@dataclass
class StudyContext:
    """Everything a worker needs, checked once: config, space, data, models."""

    config: StudyConfig
    registry: Any
    space: Any
    train_data: Any = None
    test_data: Any = None
    screen_data: Any = None
    device: str = "cpu"
    #: widths of every model's normalization sites, and of its normalized ops' inputs
    site_widths: set[int] = field(default_factory=set)
    input_widths: set[int] = field(default_factory=set)

    def equivalence_key(self, spec_text: str) -> str:
        """The spec resolved at every width the study's models normalize: two compositions with the
        same key compute the same thing on these models (``gn(group_size=16)`` on 16-wide layers is
        LN), so the later one reuses the earlier one's results. The canonical spec when it cannot
        be resolved."""
        from explorer.spec import parse_spec

        spec = parse_spec(spec_text, self.registry)
        pre = any(step.get("at") == "pre" for step in spec.steps)
        widths = sorted(self.site_widths | (self.input_widths if pre else set()))
        try:
            resolved = [str(spec.resolved(w)) for w in widths]  # in width order: equal keys, equal at each width
        except NormxError:
            return spec_text
        if not resolved:
            return spec_text
        return resolved[0] if len(set(resolved)) == 1 else " || ".join(f"{w}: {r}" for w, r in zip(widths, resolved))


def prepare(config: StudyConfig, load_data: bool = True) -> StudyContext:
    """Check every name of the study against the registry, the models and the data; load the data."""
    from explorer.plugins import get_registry
    from explorer.search.space import SearchSpace

    registry = get_registry()
    space = SearchSpace(config, registry)
    space.check()
    ctx = StudyContext(config, registry, space)
    from explorer.training import get_device

    try:
        ctx.device = str(get_device(config.training.device))
    except RuntimeError as err:
        raise _file_error(config, ("training", "device"), str(err)) from None
    if config.training.device not in ("auto", "cpu") and not config.training.device.startswith("cuda"):
        raise _file_error(config, ("training", "device"), "must be auto, cpu or cuda[:N]")
    if config.training.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise _file_error(config, ("training", "device"), "CUDA is not available on this machine; use auto or cpu")
    from explorer.data import load_dataset
    from explorer.models import create_model, normalization_widths

    try:
        ctx.train_data = load_dataset(config.data.name, "train", limit=config.data.train_limit,
                                      seed=config.data.seed, device="cpu")
        if config.needs_training():
            ctx.test_data = load_dataset(config.data.name, "test", limit=config.data.test_limit,
                                         seed=config.data.seed, device="cpu")
    except NormxError as err:
        raise _file_error(config, ("data", "name"), str(err)) from None
    if config.screening.batch_size > len(ctx.train_data):
        raise _file_error(config, ("screening", "batch_size"),
                          f"larger than the {len(ctx.train_data)} training samples (data.train_limit)")
    in_channels = int(ctx.train_data.x.shape[1])
    for model in config.models:
        try:
            built = create_model(model, "relu", num_classes=ctx.train_data.num_classes, in_channels=in_channels,
                                 registry=registry)
        except NormxError as err:
            raise _file_error(config, ("models",), str(err)) from None
        sites, inputs = normalization_widths(built)
        ctx.site_widths |= sites
        ctx.input_widths |= inputs
    return ctx


def _file_error(config: StudyConfig, key: tuple[str, ...], message: str) -> StudyFileError:
    return StudyFileError(f"{config.path}:{locate(config.text, key)}: {'.'.join(key)}: {message}")


# --------------------------------------------------------------------------- study creation


def make_sampler(config: StudyConfig, worker_index: int = 0) -> Any:
    import optuna

    seed = config.seed + 1000 * worker_index
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def create_or_load_study(config: StudyConfig, storage: Any, sampler: Any = None) -> tuple[Any, bool]:
    """The study named by the file, created with its baselines enqueued if it does not exist yet.

    Returns (study, created). An existing study with other objectives is a StudyMismatchError.
    """
    import optuna
    from explorer import __version__

    try:
        study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler)
    except KeyError:
        study = None
    if study is not None:
        stored = study.user_attrs.get("objectives")
        wanted = [{"name": k, "direction": v} for k, v in config.objectives.items()]
        if stored is not None and stored != wanted:
            shown = ", ".join(f"{o['name']} ({o['direction']})" for o in stored)
            raise StudyMismatchError(
                f"study {config.name!r} already exists with objectives {shown}; rename the study "
                "(name = ...) or use another storage")
        return study, False
    try:
        study = optuna.create_study(study_name=config.name, storage=storage, sampler=sampler,
                                    directions=config.directions)
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
        return optuna.load_study(study_name=config.name, storage=storage, sampler=sampler), False
    study.set_user_attr("normx_version", __version__)
    study.set_user_attr("study_file", config.text)
    study.set_user_attr("objectives", [{"name": k, "direction": v} for k, v in config.objectives.items()])
    study.set_user_attr("models", list(config.models))
    study.set_user_attr("data", config.data.name)
    for preset in config.space.presets:
        study.enqueue_trial({}, user_attrs={"baseline": preset})
    return study, True


# --------------------------------------------------------------------------- the worker


def _budget_counts(study: Any) -> tuple[int, int, int]:
    """(trials holding a place in the budget, running trials, waiting trials)."""
    from optuna.trial import TrialState

    taken = running = waiting = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            taken += 1
        elif t.state == TrialState.RUNNING:
            taken += 1
            running += 1
        elif t.state == TrialState.WAITING:
            waiting += 1
        elif t.state == TrialState.FAIL and t.user_attrs.get("stage") == "failed":
            taken += 1  # an error is a result: retrying it forever would never end the study
    return taken, running, waiting


class _Heartbeat:
    """Record the trial's heartbeat every interval in a thread (RDB storages)."""

    def __init__(self, storage: Any, trial_id: int, interval: float | None):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
            self._thread = threading.Thread(target=self._run, daemon=True, name="normx-heartbeat")
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval
                pass

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class Interrupted(Exception):
    """Raised by a worker after it recorded an interrupted trial (Ctrl-C)."""


def interrupt_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in this process's main thread.

    A process started in the background by a non-interactive shell inherits SIGINT ignored, and a
    batch scheduler stops jobs with SIGTERM: either way the running trial must still be recorded
    as interrupted, so both are turned into the interruption the worker already handles.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_interrupt)


@dataclass
class Worker:
    """Runs trials of one study until the study-wide budget is spent."""

    ctx: StudyContext
    target: StorageTarget
    budget: int
    on_event: TrialEventHandler
    index: int = 0
    storage: Any = None
    study: Any = None
    name: str = field(default_factory=worker_name)
    completed: int = 0

    def connect(self) -> None:
        config = self.ctx.config
        heartbeat = config.workers.heartbeat_interval if self.target.supports_heartbeat else None
        self.storage = open_storage(self.target, heartbeat, config.workers.grace_period, config.workers.max_retry)
        import optuna

        self.study = optuna.load_study(study_name=config.name, storage=self.storage,
                                       sampler=make_sampler(config, self.index))

    @property
    def heartbeat_interval(self) -> int | None:
        getter = getattr(self.storage, "get_heartbeat_interval", None)
        return getter() if getter else None

    def emit(self, kind: str, **fields: Any) -> None:
        self.on_event(TrialEvent(kind=kind, study=self.ctx.config.name, worker=self.name, **fields))

    def claim(self) -> Any | None:
        """A trial within the budget, or None when the budget is spent (waits for running trials
        of other workers on RDB storages, whose worker may die and whose trial is then retried)."""
        import optuna

        while True:
            if self.heartbeat_interval:
                optuna.storages.fail_stale_trials(self.study)
            with claim_lock(self.target, self.storage, self.ctx.config.name):
                taken, running, waiting = _budget_counts(self.study)
                if taken < self.budget:
                    return self.study.ask()
            if not (self.heartbeat_interval and running):
                return None
            time.sleep(IDLE_POLL_S)

    def run(self) -> int:
        """Run trials until the budget is spent; returns the number of trials this worker ran."""
        if self.study is None:
            self.connect()
        ran = 0
        while True:
            trial = self.claim()
            if trial is None:
                break
            ran += 1
            self.run_trial(trial)
        self.emit("worker_done", message=f"ran {ran} trial(s)")
        return ran

    # ------------------------------------------------------------------ one trial

    def run_trial(self, trial: Any) -> None:
        from optuna.trial import TrialState

        study, config = self.study, self.ctx.config
        interval = self.heartbeat_interval
        with _Heartbeat(self.storage, trial._trial_id, interval):
            trial.set_user_attr("worker", self.name)
            trial.set_user_attr("stage", "screening")
            self.emit("trial_started", trial=trial.number)
            spec_text: str | None = None
            try:
                baseline = trial.user_attrs.get("baseline")
                if baseline is not None:
                    from explorer.spec import parse_spec

                    spec_text = str(parse_spec(baseline, self.ctx.registry))
                else:
                    candidate = self.ctx.space.sample(trial)
                    if candidate.invalid:
                        trial.set_user_attr("spec", candidate.text)
                        self._prune(trial, candidate.invalid, candidate.text)
                        return
                    spec_text = str(candidate.spec)
                trial.set_user_attr("spec", spec_text)
                key = self.ctx.equivalence_key(spec_text)
                trial.set_user_attr("equivalence_key", key)
                if self._reuse(trial, spec_text, key):
                    return
                self.emit("stage", trial=trial.number, spec=spec_text, stage="screening")
                predictors_by_model = self._screen(spec_text)
                predictors = aggregate_predictors(predictors_by_model)
                trial.set_user_attr("predictors_by_model", json_safe(predictors_by_model))
                trial.set_user_attr("predictors", json_safe(predictors))
                reason = screening_verdict(config, predictors_by_model)
                if reason is not None:
                    self._prune(trial, reason, spec_text)
                    return
                train_by_model: dict[str, dict[str, Any]] = {}
                if config.needs_training():
                    train_by_model = self._train(trial, spec_text)
                    trial.set_user_attr("train", json_safe(aggregate_training(train_by_model)))
                    if len(train_by_model) > 1:
                        trial.set_user_attr("train_by_model", json_safe(train_by_model))
                values = objective_values(config, predictors_by_model, train_by_model)
                if any(math.isnan(v) for v in values):
                    raise _TrialError(f"an objective is NaN: {values}")
                trial.set_user_attr("stage", "done")
                study.tell(trial, values)
                self.completed += 1
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="COMPLETE", values=values)
            except _InvalidComposition as err:
                self._prune(trial, str(err), spec_text)
            except KeyboardInterrupt:
                trial.set_user_attr("stage", "interrupted")
                study.tell(trial, state=TrialState.FAIL)
                self._enqueue_retry(trial)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="FAIL", message="interrupted")
                raise
            except Exception as err:  # noqa: BLE001 - a broken composition or plugin fails one trial only
                message = " ".join(f"{type(err).__name__}: {err}".split())[:500]
                if isinstance(err, (NormxError, _TrialError)):
                    message = " ".join(str(err).split())[:500]
                trial.set_user_attr("stage", "failed")
                trial.set_user_attr("error", message)
                study.tell(trial, state=TrialState.FAIL)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="FAIL", message=message)

    def _enqueue_retry(self, trial: Any) -> None:
        attrs = {k: v for k, v in trial.user_attrs.items() if k == "baseline"}
        attrs["retry_of"] = trial.number
        self.study.enqueue_trial(dict(trial.params), user_attrs=attrs)

    def _prune(self, trial: Any, reason: str, spec_text: str | None) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("prune_reason", reason)
        trial.set_user_attr("stage", "pruned")
        self.study.tell(trial, state=TrialState.PRUNED)
        self.emit("trial_finished", trial=trial.number, spec=spec_text, state="PRUNED", message=reason)

    def _reuse(self, trial: Any, spec_text: str, key: str) -> bool:
        """Reuse the results of an earlier finished trial that computes the same thing: the same
        equivalence key (the spec resolved at the models' widths), or the same canonical spec."""
        from optuna.trial import TrialState

        for earlier in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            attrs = earlier.user_attrs
            same = attrs.get("spec") == spec_text or attrs.get("equivalence_key", attrs.get("spec")) == key
            if earlier.number == trial.number or not same:
                continue
            source = attrs.get("reused_from", earlier.number)
            for name in ("predictors", "predictors_by_model", "train", "train_by_model", "prune_reason"):
                if name in attrs:
                    trial.set_user_attr(name, attrs[name])
            trial.set_user_attr("reused_from", source)
            if earlier.state == TrialState.PRUNED:
                trial.set_user_attr("stage", "pruned")
                self.study.tell(trial, state=TrialState.PRUNED)
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="PRUNED",
                          message=f"same as trial {source}: {earlier.user_attrs.get('prune_reason', '')}")
            else:
                trial.set_user_attr("stage", "done")
                self.study.tell(trial, list(earlier.values))
                self.emit("trial_finished", trial=trial.number, spec=spec_text, state="COMPLETE",
                          values=list(earlier.values), message=f"same as trial {source}")
            return True
        return False

    def _screen(self, spec_text: str) -> dict[str, dict[str, Any]]:
        from explorer.data import iter_batches
        from explorer import score

        s, config = self.ctx.config.screening, self.ctx.config
        by_model: dict[str, dict[str, Any]] = {}
        for model in config.models:
            batches = list(iter_batches(self.ctx.train_data, s.batch_size, s.batches, seed=config.seed))
            try:
                result = score(spec_text, model=model, inputs=batches, seeds=s.seeds, device=self.ctx.device,
                               num_classes=self.ctx.train_data.num_classes)
            except NormxError as err:
                raise _InvalidComposition(f"invalid composition on {model}: {err}") from None
            by_model[model] = {k: result[k] for k in PREDICTOR_KEYS if k in result}
        return by_model

    def _train(self, trial: Any, spec_text: str) -> dict[str, dict[str, Any]]:
        import torch
        from explorer.models import create_model
        from explorer.training import TrainConfig, train

        config = self.ctx.config
        t = config.training
        train_config = TrainConfig(steps=t.steps, epochs=t.epochs, batch_size=t.batch_size, base_lr=t.base_lr,
                                   base_batch_size=t.base_batch_size, lr_rule=t.lr_rule, momentum=t.momentum,
                                   weight_decay=t.weight_decay, decay_at=t.decay_at, augment=t.augment,
                                   device=self.ctx.device, seed=config.seed)
        per_model = train_config.total_steps(len(self.ctx.train_data))
        total = per_model * len(config.models)
        trial.set_user_attr("stage", "training")
        trial.set_user_attr("steps", total)
        trial.set_user_attr("step", 0)
        self.emit("stage", trial=trial.number, spec=spec_text, stage="training", step=0, steps=total)
        results: dict[str, dict[str, Any]] = {}
        last_write = [time.monotonic()]
        data = self.ctx.train_data
        for i, model_name in enumerate(config.models):
            offset = i * per_model

            def progress(step: int, steps: int, loss: float, offset: int = offset) -> None:
                now = time.monotonic()
                if now - last_write[0] >= PROGRESS_WRITE_EVERY_S:
                    last_write[0] = now
                    trial.set_user_attr("step", offset + step)
                self.emit("progress", trial=trial.number, spec=spec_text, stage="training",
                          step=offset + step, steps=total, loss=loss)

            torch.manual_seed(config.seed)
            try:
                model = create_model(model_name, spec_text, num_classes=data.num_classes,
                                     in_channels=int(data.x.shape[1]), registry=self.ctx.registry)
            except NormxError as err:
                raise _InvalidComposition(f"invalid composition on {model_name}: {err}") from None
            result = train(model, data, self.ctx.test_data, train_config, progress=progress)
            results[model_name] = result.as_dict()
        trial.set_user_attr("step", total)
        return results


class _InvalidComposition(Exception):
    """A composition that cannot be built on a model: pruned with the reason."""


class _TrialError(Exception):
    """A trial that cannot produce results (NaN objectives)."""


# --------------------------------------------------------------------------- the study


@dataclass
class StudyOutcome:
    name: str
    storage: str
    created: bool
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def _counts(study: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _worker_process(config: StudyConfig, target: StorageTarget, budget: int, index: int, queue: Any,
                    threads: int) -> None:
    """A worker process: prepares its own context and runs until the budget is spent."""
    import signal

    import torch

    interrupt_on_signals()
    torch.set_num_threads(max(1, threads))
    on_event = queue.put if queue is not None else PlainLines()
    try:
        ctx = prepare(config)
        Worker(ctx, target, budget, on_event, index=index).run()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(130)
    except NormxError as err:
        on_event(TrialEvent(kind="error", study=config.name, message=str(err), worker=worker_name()))
        sys.exit(2)


def run_study(config: StudyConfig, storage: str | None = None, n_trials: int | None = None, workers: int = 1,
              on_trial_event: TrialEventHandler | None = None, ctx: StudyContext | None = None) -> StudyOutcome:
    """Create or resume the study and run ``workers`` worker processes until its budget is spent.

    ``storage`` (a URL or a file) wins over the study file's; ``n_trials`` over its ``n_trials``.
    Raises :class:`KeyboardInterrupt` after recording the interrupted trials.
    """
    from explorer.search import default_storage

    on_event = on_trial_event or PlainLines()
    target = resolve_storage(storage or config.storage or default_storage())
    budget = n_trials if n_trials is not None else config.n_trials
    if budget < 1:
        raise StudyFileError("--n-trials must be at least 1")
    if workers < 1:
        raise StudyFileError("--workers must be at least 1")
    ctx = ctx or prepare(config)  # everything is checked before anything is created in storage
    heartbeat = config.workers.heartbeat_interval if target.supports_heartbeat else None
    storage_obj = open_storage(target, heartbeat, config.workers.grace_period, config.workers.max_retry)
    try:
        study, created = create_or_load_study(config, storage_obj, make_sampler(config))
    except StorageError:
        raise
    except NormxError:
        raise
    except Exception as err:  # noqa: BLE001 - storage failures past opening (schema, permissions)
        from explorer.search.storage import scrub

        raise StorageError(f"storage {target.display}: {scrub(str(err).splitlines()[0], target.url)}") from None
    if not created:
        # Another process (a worker on another machine, or an earlier run) drew from the same seed:
        # a fresh random state keeps this one from repeating its draws. One process running a study
        # from start to end stays reproducible by the study's seed.
        study.sampler.reseed_rng()
    study.set_user_attr("n_trials", budget)  # the budget of the latest run: what progress and reports count to
    taken, _, _ = _budget_counts(study)
    outcome = StudyOutcome(config.name, target.display, created)
    verb = "created" if created else f"resumed ({taken} of {budget} trials done or running)"
    on_event(TrialEvent(kind="study", study=config.name,
                        message=f"{verb} in {target.display}; budget {budget} trials, {workers} worker(s)"))
    try:
        if workers == 1:
            worker = Worker(ctx, target, budget, on_event, storage=storage_obj, study=study)
            worker.run()
        else:
            _run_processes(config, target, budget, workers, on_event)
    except KeyboardInterrupt:
        outcome.interrupted = True
        outcome.counts = _counts(study)
        on_event(TrialEvent(kind="study_done", study=config.name,
                            message="interrupted; run the same command again to resume"))
        raise
    outcome.counts = _counts(study)
    summary = ", ".join(f"{v} {k.lower()}" for k, v in sorted(outcome.counts.items()))
    on_event(TrialEvent(kind="study_done", study=config.name, message=f"done: {summary}"))
    return outcome


def _run_processes(config: StudyConfig, target: StorageTarget, budget: int, workers: int,
                   on_event: TrialEventHandler) -> None:
    import multiprocessing
    import queue as queue_module
    import signal

    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [context.Process(target=_worker_process, args=(config, target, budget, i, events, threads),
                                 name=f"normx-worker-{i}") for i in range(workers)]
    for p in processes:
        p.start()
    errors: list[str] = []

    def drain(block: bool) -> None:
        while True:
            try:
                event = events.get(timeout=0.2) if block else events.get_nowait()
            except queue_module.Empty:
                return
            if event.kind == "error":
                errors.append(event.message)
            else:
                on_event(event)
            block = False

    try:
        while any(p.is_alive() for p in processes):
            drain(block=True)
        drain(block=False)
    except KeyboardInterrupt:
        for p in processes:  # a SIGINT sent to the parent alone reaches the workers too
            if p.is_alive() and p.pid:
                try:
                    os.kill(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        for p in processes:
            p.join(timeout=60)
        drain(block=False)
        raise
    for p in processes:
        p.join()
    if errors:
        raise NormxError(errors[0])
    bad = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if 130 in bad:
        raise KeyboardInterrupt
    if bad:
        raise NormxError(f"{len(bad)} worker process(es) failed (exit codes {bad})")
