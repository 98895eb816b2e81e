"""Which RUNNING trials still have a live worker: what Optuna's heartbeat cannot tell.

Optuna fails a RUNNING trial only when its heartbeat row goes stale, and only on RDB storages.
Two kinds of trial escape it and would hold a place in the budget forever (every later resume
waiting on them, or the study ending with a ghost "1 running"):

* a trial whose worker died between asking Optuna for it and claiming it (no heartbeat row, no
  ``worker``): a worker asks, records the first heartbeat and its name under the claim lock, so a
  RUNNING trial without a worker seen under that lock has lost its worker;
* every trial of a journal storage, which has no heartbeat at all.

For local file storages (a journal, an SQLite file) each worker holds an exclusive ``flock`` on
its own file in ``STORAGE.normx-workers/`` while it lives; the kernel releases it when the process
dies, however it dies (SIGKILL, out of memory, a lost parent), so a worker on the same host
tells a dead worker's trial at once. A worker on another host cannot be judged this way (journal
storages are for one host; RDB storages have heartbeats for the rest).

A lost trial is failed with an ``error`` saying so and retried like a heartbeat-stale one
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`: a WAITING copy with the system
attribute ``failed_trial``), so it does not count in the budget and its composition runs again.

A worker's own trial stays alive on an RDB storage through :class:`Heartbeat`, which beats while
the trial runs.
"""

from __future__ import annotations

import copy
import datetime
import fcntl
import os
import socket
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import IO

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from explorer.search.schema import TrialAttr
from explorer.search.storage import StorageTarget

#: Storages whose claim lock is real (a file lock, a PostgreSQL advisory lock): a RUNNING trial
#: without a worker, seen under it, was asked for by a worker that died before claiming it.
LOCKED_CLAIMS = ("sqlite", "journal", "postgresql")
#: Elsewhere a trial without a worker is judged lost only after this many seconds.
UNCLAIMED_GRACE_S = 120


def liveness_dir(target: StorageTarget) -> str | None:
    """The folder of the workers' liveness files, for local file storages; None for servers."""
    if target.kind in ("sqlite", "journal") and target.path:
        return target.path + ".normx-workers"
    return None


def _file_name(worker: str) -> str:
    return worker.replace(os.sep, "_").replace(":", "@")


class WorkerLiveness:
    """Held by a worker while it runs: an exclusive flock on its liveness file (local file storages)."""

    def __init__(self, target: StorageTarget, worker: str):
        self.folder = liveness_dir(target)
        self.path = os.path.join(self.folder, _file_name(worker)) if self.folder else None
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> WorkerLiveness:
        if self.path is not None:
            os.makedirs(self.folder, exist_ok=True)
            self._handle = open(self.path, "ab")
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._handle is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self._handle.close()  # releases the lock
            self._handle = None


class Heartbeat:
    """Record a running trial's heartbeat every interval in a thread (RDB storages; none without an
    interval)."""

    def __init__(self, storage: BaseStorage, trial_id: int, interval: float | None):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def worker_alive(target: StorageTarget, worker: str) -> bool | None:
    """True while ``worker`` (``host:pid``) holds its liveness lock, False once it does not, None
    when this process cannot tell (another host, a server storage)."""
    folder = liveness_dir(target)
    host, _, _pid = worker.rpartition(":")
    if folder is None or host != socket.gethostname():
        return None
    path = os.path.join(folder, _file_name(worker))
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return False  # a worker removes its file only when it stops
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@dataclass
class LostTrial:
    trial: FrozenTrial
    why: str


def lost_trials(study: optuna.Study, target: StorageTarget) -> list[LostTrial]:
    """The RUNNING trials whose worker is gone; call it under the study's claim lock."""
    now = datetime.datetime.now()
    lost = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(TrialAttr.WORKER)
        if worker is None:
            started = trial.datetime_start or now
            if target.kind in LOCKED_CLAIMS or (now - started).total_seconds() > UNCLAIMED_GRACE_S:
                lost.append(LostTrial(trial, "its worker stopped before claiming it"))
        elif worker_alive(target, str(worker)) is False:
            lost.append(LostTrial(trial, f"its worker {worker} stopped without finishing it"))
    return lost


def fail_lost_trials(study: optuna.Study, target: StorageTarget, max_retry: int | None) -> list[int]:
    """Fail every lost trial (:func:`lost_trials`) and enqueue its retry; returns their numbers."""
    storage = study._storage
    retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    failed = []
    for lost in lost_trials(study, target):
        trial_id = lost.trial._trial_id
        try:
            storage.set_trial_user_attr(trial_id, TrialAttr.ERROR, f"lost: {lost.why}; retried")
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another worker failed it first
            continue
        frozen = copy.deepcopy(storage.get_trial(trial_id))
        frozen.user_attrs.pop(TrialAttr.ERROR, None)  # the retry starts clean
        retry(study, frozen)
        failed.append(lost.trial.number)
    return failed
