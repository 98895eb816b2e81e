"""Opening Optuna storages: SQLite by default, journal files for many local processes, any RDB URL.

``sqlite:///normx.db`` (one file, no server), ``journal:PATH`` or a path ending in ``.journal``
/ ``.log`` (JournalStorage: safe for many processes on one host), and any SQLAlchemy URL such as
``postgresql+psycopg2://user:password@host/db`` for many machines. RDB storages get heartbeats,
so a trial whose worker died is marked failed and retried.

A storage that cannot be opened is one :class:`StorageError` line with the password masked.
The budget of a study is claimed under :func:`claim_lock`, a lock shared by every worker on the
storage (a file lock next to SQLite and journal files, an advisory lock on PostgreSQL), so the
number of trials is exactly the budget even when many workers ask at the same moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from explorer.errors import NormxError

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<at>@)")


class StorageError(NormxError):
    """A storage that cannot be opened or used."""


def mask_password(text: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db`` (anywhere in ``text``)."""
    return _PASSWORD.sub(lambda m: f"{m.group('head')}***{m.group('at')}", text)


def _passwords(url: str) -> list[str]:
    return [m.group("password") for m in _PASSWORD.finditer(url) if m.group("password")]


def scrub(message: str, url: str) -> str:
    """A one-line error message with every trace of the URL's password removed."""
    message = mask_password(" ".join(str(message).split()))
    for password in _passwords(url):
        message = message.replace(password, "***")
    return message


@dataclass(frozen=True)
class StorageTarget:
    """Where a study lives: ``kind`` is sqlite, journal, postgresql, or rdb (other SQLAlchemy URLs)."""

    url: str
    kind: str
    path: str | None = None

    @property
    def display(self) -> str:
        return mask_password(self.url)

    @property
    def supports_heartbeat(self) -> bool:
        return self.kind in ("sqlite", "postgresql", "rdb")


def resolve_storage(value: str) -> StorageTarget:
    """Interpret a storage argument: a URL, ``journal:PATH``, or a file path (.db/.sqlite/.journal/.log)."""
    value = value.strip()
    if not value:
        raise StorageError("empty storage URL")
    if value.startswith("journal:"):
        path = value[len("journal:"):]
        if path.startswith("//"):
            path = path[2:]
        return StorageTarget(f"journal:{path}", "journal", os.path.abspath(path))
    if "://" not in value:
        if value.endswith((".journal", ".log", ".jsonl")):
            return StorageTarget(f"journal:{value}", "journal", os.path.abspath(value))
        if value.endswith((".db", ".sqlite", ".sqlite3")):
            return StorageTarget(f"sqlite:///{value}", "sqlite", os.path.abspath(value))
        raise StorageError(f"storage {value!r} is neither a URL (sqlite:///FILE, postgresql://...) "
                           "nor a .db/.journal file")
    scheme = value.split("://", 1)[0].lower()
    if scheme.startswith("sqlite"):
        path = value.split(":///", 1)[1] if ":///" in value else ""
        return StorageTarget(value, "sqlite", os.path.abspath(path) if path and path != ":memory:" else None)
    if scheme.startswith("postgres"):
        return StorageTarget(value, "postgresql")
    return StorageTarget(value, "rdb")


def quiet_optuna() -> None:
    """No info logs, and no warnings about the experimental heartbeat API this module relies on."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_storage(target: StorageTarget | str, heartbeat_interval: int | None = None,
                 grace_period: int | None = None, max_retry: int | None = 3) -> Any:
    """An Optuna storage object for ``target``; heartbeats and retries on RDB storages."""
    import optuna

    if isinstance(target, str):
        target = resolve_storage(target)
    quiet_optuna()
    if target.kind == "journal":
        from optuna.storages.journal import JournalFileBackend

        directory = os.path.dirname(target.path) or "."
        if not os.path.isdir(directory):
            raise StorageError(f"cannot open storage {target.display}: no directory {directory}")
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(target.path))
        except Exception as err:  # noqa: BLE001 - any failure to open is a one-line user error
            raise StorageError(f"cannot open storage {target.display}: {scrub(err, target.url)}") from None
    engine_kwargs: dict[str, Any] = {}
    if target.kind == "sqlite":
        if target.path and not os.path.isdir(os.path.dirname(target.path) or "."):
            raise StorageError(f"cannot open storage {target.display}: no directory {os.path.dirname(target.path)}")
        # Several local workers may write at once: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif target.kind == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        engine_kwargs["pool_pre_ping"] = True
    callback = None
    if heartbeat_interval:
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    try:
        return optuna.storages.RDBStorage(
            target.url, engine_kwargs=engine_kwargs or None,
            heartbeat_interval=heartbeat_interval if heartbeat_interval else None,
            grace_period=grace_period if heartbeat_interval else None,
            heartbeat_stale_trial_callback=callback,
        )
    except ModuleNotFoundError as err:
        raise StorageError(f"cannot open storage {target.display}: the database driver is not installed "
                           f"({err.name}); for PostgreSQL: pip install psycopg2-binary") from None
    except Exception as err:  # noqa: BLE001 - sqlalchemy/driver errors of every kind
        message = str(getattr(err, "orig", None) or err).strip().splitlines()
        first = message[0] if message else type(err).__name__
        raise StorageError(f"cannot open storage {target.display}: {scrub(first, target.url)}") from None


@contextlib.contextmanager
def claim_lock(target: StorageTarget, storage: Any, study_name: str) -> Iterator[None]:
    """Hold the study's claim lock: only one worker counts and asks for a trial at a time."""
    if target.kind in ("sqlite", "journal") and target.path:
        import fcntl

        with open(target.path + ".normx-claim", "a+") as handle:  # not ".lock": the journal backend uses it
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if target.kind == "postgresql":
        from sqlalchemy import text

        key = int.from_bytes(hashlib.sha1(f"normx:{study_name}".encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as connection:
            with connection.begin():
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                yield
        return
    yield  # in-memory or other RDBs: best effort (MaxTrialsCallback-like counting)
