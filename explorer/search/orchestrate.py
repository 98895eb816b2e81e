"""Running a study: the study created or resumed, workers started, signals turned into interruptions.

``run_study`` runs one worker in this process, or ``workers`` worker processes that each prepare
their own context and send their events back through a queue. Ctrl-C (or SIGTERM) reaches every
worker: each records its running trial as ``interrupted`` and enqueues its retry, so running
the same command again resumes the study.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

import optuna
import torch

from explorer.errors import NormxError
from explorer.search import default_storage
from explorer.search.context import StudyContext, file_error, prepare
from explorer.search.learned import check_prior_studies
from explorer.search.events import PlainLines, TrialEvent, TrialEventHandler
from explorer.search.schema import StudyAttr, TrialAttr, trial_outcome
from explorer.search.halving import HalvingPolicy
from explorer.search.screening import RANKING_POLICIES, RelativePolicy
from explorer.search.signals import (ParentWatch, blocked_signals, deferred_interrupts, interrupt_on_signals,
                                     unblock_interrupts)
from explorer.search.storage import StorageError, StorageTarget, open_storage, resolve_storage, scrub, storage_failure
from explorer.search.optuna_study import budget_counts, create_or_load_study, holds_a_place, make_sampler, state_counts
from explorer.search.study_file import StudyConfig, StudyFileError
from explorer.search.worker import Worker, worker_name


@dataclass
class StudyOutcome:
    name: str
    storage: str
    created: bool
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    #: the number of distinct compositions when the space held fewer than the budget
    exhausted: int | None = None


def run_study(config: StudyConfig, storage: str | None = None, n_trials: int | None = None, workers: int = 1,
              on_trial_event: TrialEventHandler | None = None, ctx: StudyContext | None = None) -> StudyOutcome:
    """Create or resume the study and run ``workers`` worker processes until its budget is spent.

    ``storage`` (a URL or a file) wins over the study file's; ``n_trials`` over its ``n_trials``.
    Raises :class:`KeyboardInterrupt` after recording the interrupted trials.
    """
    on_event = on_trial_event or PlainLines()
    target = resolve_storage(storage or config.storage or default_storage())
    if target.kind == "sqlite" and target.path is None:  # sqlite:// and sqlite:///:memory:
        raise StorageError(f"storage {target.display} is an in-memory SQLite database: the study would be thrown "
                           "away when the run ends (and each worker would get its own); give a file, e.g. "
                           "sqlite:///study.db")
    budget = n_trials if n_trials is not None else config.n_trials
    if budget < 1:
        raise StudyFileError("--n-trials must be at least 1")
    if workers < 1:
        raise StudyFileError("--workers must be at least 1")
    cores = usable_cores()
    if workers > cores:
        print(f"normx: warning: --workers {workers} is more than the {cores} CPU core(s) this process may use; "
              f"running {cores} (start more on other machines, on a shared PostgreSQL storage)", file=sys.stderr)
        workers = cores
    ctx = ctx or prepare(config)  # everything is checked before anything is created in storage
    heartbeat = config.workers.heartbeat_interval if target.supports_heartbeat else None
    storage_obj = open_storage(target, heartbeat, config.workers.grace_period, config.workers.max_retry)
    problem = check_prior_studies(config.screening.prior, storage_obj)  # study:NAME priors live in this storage
    if problem:
        raise file_error(config, ("screening", "prior"), problem)
    try:
        study, created = create_or_load_study(config, storage_obj, make_sampler(config), ctx.space.choices())
    except NormxError:
        raise
    except Exception as err:  # noqa: BLE001 - storage failures past opening (schema, permissions, full)
        failure = storage_failure(err, target)
        if failure is not None:
            raise failure from None
        raise StorageError(f"storage {target.display}: {scrub(str(err).splitlines()[0], target.url)}") from None
    if not created:
        # Another process (a worker on another machine, or an earlier run) drew from the same seed:
        # a fresh random state keeps this one from repeating its draws. One process running a study
        # from start to end stays reproducible by the study's seed.
        study.sampler.reseed_rng()
    try:
        study.set_user_attr(StudyAttr.N_TRIALS, budget)  # the budget of the latest run: what progress and reports count to
        study.set_user_attr(StudyAttr.SPACE_EXHAUSTED, None)  # said again by this run's workers if it still holds
    except Exception as err:  # noqa: BLE001 - the first write of a resumed study: full or read-only
        failure = storage_failure(err, target)
        if failure is None:
            raise
        raise failure from None
    taken, _, _ = budget_counts(study)
    outcome = StudyOutcome(config.name, target.display, created)
    verb = "created" if created else f"resumed ({taken} of {budget} trials done or running)"
    on_event(TrialEvent(kind="study", study=config.name,
                        message=f"{verb} in {target.display}; budget {budget} distinct compositions, "
                                f"{workers} worker(s); {screening_summary(config, budget)}"))
    try:
        if workers == 1:
            worker = Worker(ctx, target, budget, on_event, storage=storage_obj, study=study)
            worker.run()
        else:
            def settled() -> bool:  # the budget met and no trial running: nothing left for a worker to do
                taken, running, _ = budget_counts(study)
                return taken >= budget and not running

            lost = _run_processes(config, target, budget, workers, on_event, settled)
            if lost:
                _check_budget_met(study, budget, lost, config.name, on_event)
    except KeyboardInterrupt:
        outcome.interrupted = True
        outcome.counts = state_counts(study)
        on_event(TrialEvent(kind="study_done", study=config.name,
                            message="interrupted; run the same command again to resume"))
        raise
    outcome.counts = state_counts(study)
    summary = end_summary(study, budget)
    outcome.exhausted = study.user_attrs.get(StudyAttr.SPACE_EXHAUSTED)
    notes = [f"space exhausted: {outcome.exhausted} distinct compositions"] if outcome.exhausted is not None else []
    notes += warmup_note(config, study)
    on_event(TrialEvent(kind="study_done", study=config.name, message="; ".join([*notes, f"done: {summary}"])))
    return outcome


def end_summary(study: optuna.Study, budget: int) -> str:
    """``3/3 finished (3 complete, 0 pruned, 0 failed, 2 interrupted)``: the counts of the progress
    status line, ``report`` and ``study list`` (:func:`explorer.search.schema.trial_outcome`): a
    repeat is not a finished composition, an interrupted or lost trial is neither failed nor finished."""
    counts = dict.fromkeys(("complete", "pruned", "failed", "interrupted", "running", "waiting"), 0)
    repeats = 0
    for t in study.get_trials(deepcopy=False):
        state = trial_outcome(t.state.name, t.user_attrs)
        counts[state] = counts.get(state, 0) + 1
        repeats += TrialAttr.REUSED_FROM in t.user_attrs and state in ("complete", "pruned", "failed")
    finished = counts["complete"] + counts["pruned"] + counts["failed"] - repeats
    text = (f"{finished}/{budget} finished ({counts['complete']} complete, {counts['pruned']} pruned, "
            f"{counts['failed']} failed")
    if counts["interrupted"]:
        text += f", {counts['interrupted']} interrupted"
    if repeats:
        text += f"; {repeats} repeated"
    text += ")"
    for state in ("running", "waiting"):
        if counts[state]:
            text += f", {counts[state]} {state}"
    return text


def screening_summary(config: StudyConfig, budget: int) -> str:
    """How the study screens, said once when it starts."""
    s = config.screening
    if s.policy not in RANKING_POLICIES or not config.needs_training():
        return "screening by thresholds only"
    score = RelativePolicy.of(s).describe()
    if s.score == "learned":
        prior = f", prior {', '.join(s.prior)}" if s.prior else ""
        score += f" (the combined score until {s.learned_min_trials} trained trials{prior})"
    if s.policy == "halving":
        policy = HalvingPolicy.of(s, config.training.steps or 0)
        return (f"successive halving: after {s.warmup} trained, the top 1/{s.eta} by {score}"
                f"{' or non-dominated' if s.keep_nondominated else ''} train, to rungs at "
                f"{', '.join(map(str, policy.rungs))} steps; the top 1/{s.eta} of each rung by Pareto rank go on")
    text = (f"relative screening: after {s.warmup} trained, the top {100 * s.top_fraction:.3g} % by "
            f"{score}{' or non-dominated' if s.keep_nondominated else ''} train")
    if budget <= s.warmup:
        text += f" (the budget of {budget} is within the warm-up of {s.warmup}: every candidate trains)"
    return text


def warmup_note(config: StudyConfig, study: optuna.Study) -> list[str]:
    """Say so when the relative policy never ranked: fewer candidates than its warm-up."""
    s = config.screening
    if s.policy not in RANKING_POLICIES or not config.needs_training():
        return []
    # one decision per distinct candidate: an interrupted or lost attempt (decided, then retried) and
    # a repeat hold no place (holds_a_place)
    decided = [t.user_attrs[TrialAttr.SCREENING] for t in study.get_trials(deepcopy=False)
               if isinstance(t.user_attrs.get(TrialAttr.SCREENING), dict) and holds_a_place(t)]
    if not decided or any(d.get("rank") is not None for d in decided):
        return []
    if len(decided) < s.warmup:
        return [f"relative screening: {len(decided)} candidate(s), fewer than the warm-up of {s.warmup}: all trained"]
    return [f"relative screening: {len(decided)} candidate(s), none ranked: fewer than the warm-up of {s.warmup} "
            "had trained when each was screened: all trained"]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else every core)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: Seconds the workers get to record their interrupted trials after Ctrl-C, all together, before
#: the ones still running are terminated (and then killed): their trials are retried by the next run.
STOP_GRACE_S = 20.0


def _worker_process(config: StudyConfig, target: StorageTarget, budget: int, index: int,
                    events: multiprocessing.Queue, threads: int) -> None:
    """A worker process: prepares its own context and runs until the budget is spent, or until its
    parent dies (it then records its trial as interrupted and exits: no orphans)."""
    interrupt_on_signals()
    watch = ParentWatch()

    def on_event(event: TrialEvent) -> None:
        if not watch.orphaned:
            events.put(event)

    try:
        unblock_interrupts()  # a Ctrl-C that arrived while this process started is delivered here
        watch.start()
        torch.set_num_threads(max(1, threads))
        ctx = prepare(config)
        Worker(ctx, target, budget, on_event, index=index).run()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if watch.orphaned:
            events.cancel_join_thread()  # nobody reads the queue any more: do not wait on it at exit
        sys.exit(130)
    except NormxError as err:
        on_event(TrialEvent(kind="error", study=config.name, message=str(err), worker=worker_name()))
        sys.exit(2)


def stale_grace_s(config: StudyConfig) -> int:
    """The heartbeat's grace period: the study file's, else Optuna's default (twice the interval)."""
    w = config.workers
    return w.grace_period if w.grace_period is not None else 2 * w.heartbeat_interval


def _signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def _run_processes(config: StudyConfig, target: StorageTarget, budget: int, workers: int,
                   on_event: TrialEventHandler, settled: Callable[[], bool] | None = None) -> list[str]:
    """Run ``workers`` worker processes and pass their events on until every one has stopped.

    Returns what happened to workers that died by a signal (their trials are retried by the
    others); raises the first worker's error, or KeyboardInterrupt after stopping them all.

    A worker that does not stop although a worker finished, the budget is met and no trial runs
    (``settled``) is paused or hung (SIGSTOP, a debugger): its trial was failed as stale and
    retried by the others. It is given the study's heartbeat grace period, then stopped, and said so."""
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    threads = max(1, usable_cores() // workers)
    processes = [context.Process(target=_worker_process, args=(config, target, budget, i, events, threads),
                                 name=f"normx-worker-{i}") for i in range(workers)]
    errors: list[str] = []
    #: pid -> name of the workers stopped because they did not end once the study was settled
    stuck: dict[int, str] = {}

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
        # each worker inherits the blocked mask and unblocks once its handlers are set; the parent
        # holds a Ctrl-C until every worker has its start-up data (a signal taken by another of its
        # threads would otherwise interrupt start() half-way: the worker's "EOFError: Ran out of input")
        with deferred_interrupts() as held, blocked_signals():
            for p in processes:
                p.start()
        held.raise_pending()
        done_at = checked_at = None
        grace = stale_grace_s(config)
        while any(p.is_alive() for p in processes):
            drain(block=True)
            if errors:  # a storage that is full fails every worker: stop the others at once
                _stop_processes(processes, drain)
                break
            if settled is None or not any(p.exitcode == 0 for p in processes):
                continue
            now = time.monotonic()
            done_at = done_at if done_at is not None else now
            if now - done_at >= grace and (checked_at is None or now - checked_at >= 2.0):
                checked_at = now
                if settled():
                    for p in processes:
                        if p.is_alive():
                            stuck[p.pid] = p.name
                    _stop_processes([p for p in processes if p.is_alive()], drain, first=signal.SIGKILL)
        drain(block=False)
    except KeyboardInterrupt:
        _stop_processes(processes, drain)
        raise
    for p in processes:
        p.join()
    if errors:
        raise NormxError(errors[0])
    for pid, name in stuck.items():
        on_event(TrialEvent(kind="study", study=config.name,
                            message=f"worker {name} (pid {pid}) did not stop after the budget was met (paused or "
                                    f"hung for over {stale_grace_s(config)} s; its trial was failed as stale "
                                    "and retried by the other workers): stopped it"))
    codes = [p.exitcode for p in processes if p.pid not in stuck]
    if 130 in codes:
        raise KeyboardInterrupt
    failed = [c for c in codes if c not in (0, None) and c > 0]
    if failed:
        raise NormxError(f"{len(failed)} worker process(es) failed (exit codes {failed})")
    return [f"worker {p.name} (pid {p.pid}) was killed by {_signal_name(p.exitcode)}"
            for p in processes if p.exitcode is not None and p.exitcode < 0 and p.pid not in stuck]


def _stop_processes(processes: list[BaseProcess], drain: Callable[[bool], None],
                    first: signal.Signals = signal.SIGINT) -> None:
    """Interrupt every live worker and give them :data:`STOP_GRACE_S` together to record their
    trials; then SIGTERM, then SIGKILL, whatever still runs (``first=SIGKILL``: at once)."""
    steps = ((signal.SIGINT, STOP_GRACE_S), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))
    for sig, grace in steps[[s for s, _ in steps].index(first):]:
        alive = [p for p in processes if p.is_alive()]
        if not alive:
            break
        for p in alive:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.is_alive() for p in alive):
            try:
                drain(block=True)
            except KeyboardInterrupt:  # a second Ctrl-C: go on stopping them
                pass
    _drain_last(drain)


def _drain_last(drain: Callable[[bool], None]) -> None:
    """The events the stopped workers sent just before they exited (what each did with its trial:
    recorded interrupted, or left RUNNING because the storage refused): said, not dropped."""
    for _ in range(3):
        try:
            drain(False)
            return
        except KeyboardInterrupt:  # another Ctrl-C while the last lines are printed
            continue


def _check_budget_met(study: optuna.Study, budget: int, lost: list[str], name: str,
                      on_event: TrialEventHandler) -> None:
    """After workers died by a signal: fine when the others met the budget, an error otherwise."""
    taken, running, waiting = budget_counts(study)
    if taken >= budget and not running:
        for note in lost:
            on_event(TrialEvent(kind="study", study=name,
                                message=f"{note}; its trial was retried by the other workers and the budget was met"))
        return
    raise NormxError(f"{'; '.join(lost)}; the study has {taken} of {budget} trials done or running: "
                     "run the same command again to resume")
