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
import errno
import hashlib
import os
import random
import re
import sqlite3
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from explorer.errors import NormxError
from explorer.search.storage_files import (StorageFileError, check_writable_file, first_journal_problem,
                                           repair_journal_tail)

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^\s]*?)(?P<at>@)(?=[^@]*$|[^@\s]*\s)")


class StorageError(NormxError):
    """A storage that cannot be opened or used (missing file, unreachable server, not Optuna's)."""


class StorageFullError(StorageError):
    """The storage's disk (or quota, or file-size limit) is full: nothing more can be recorded."""


#: errno values of a write that cannot succeed until the user acts: full, over quota or a file-size
#: limit; a read-only file system.
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_READ_ONLY_ERRNOS = {errno.EROFS}
_FULL_TEXT = ("database or disk is full", "no space left on device", "could not extend file", "disk full",
              "file too large", "quota exceeded")
_READ_ONLY_TEXT = ("readonly database", "read-only file system", "read-only transaction")


def _causes(err: BaseException) -> Iterator[BaseException]:
    """``err``, then what it was raised from, the innermost last. A chain that comes back to an
    error already seen (``raise a from b`` where ``b`` was raised from ``a``) ends at the last new one."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _chain(err: BaseException) -> Iterator[BaseException]:
    """The causes of ``err`` with the driver's error SQLAlchemy wraps (``.orig``) after each."""
    for cause in _causes(err):
        yield cause
        orig = getattr(cause, "orig", None)
        if isinstance(orig, BaseException):
            yield orig


def storage_failure(err: BaseException, target: StorageTarget) -> StorageError | None:
    """The one-line error when ``err`` is the storage failing (full, read-only, its database
    erroring), or None when it is not a storage error (a failure of the trial itself).

    A trial must not be recorded as failed for the storage's sake: the worker stops at once, the
    trial is left RUNNING and the next run finds it lost (or stale) and retries it."""
    chain = list(_chain(err))
    words = " ".join(str(e) for e in chain).lower()
    detail = scrub(_first_line(err), target.url)
    kept = "no trial was recorded as failed for it"
    resume = "run the same command again to resume"
    if any(isinstance(e, OSError) and e.errno in _FULL_ERRNOS for e in chain) or any(t in words for t in _FULL_TEXT):
        return StorageFullError(f"storage full: {target.display} ({detail}); {kept}: free space, then {resume}")
    if any(isinstance(e, OSError) and e.errno in _READ_ONLY_ERRNOS for e in chain) \
            or any(t in words for t in _READ_ONLY_TEXT):
        return StorageError(f"storage {target.display} is read-only ({detail}); {kept}: make it writable, then {resume}")
    if any(isinstance(e, (SQLAlchemyError, optuna.exceptions.StorageInternalError, sqlite3.Error)) for e in chain):
        return StorageError(f"storage {target.display} failed ({detail}); {kept}: {resume}")
    return None


#: A password given as a query parameter (``postgresql://u@h/db?password=secret``), which libpq accepts.
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&\s#]*)", re.IGNORECASE)


def mask_password(text: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db`` (anywhere in ``text``), and
    ``?password=secret`` -> ``?password=***``.

    The password runs to the last ``@`` of the URL, so one holding ``/`` or ``@`` is masked whole.
    """
    text = _PASSWORD.sub(lambda m: f"{m.group('head')}***{m.group('at')}", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", text)


def _passwords(url: str) -> list[str]:
    found = [m.group("password") for m in _PASSWORD.finditer(url)]
    found += [m.group("password") for m in _QUERY_PASSWORD.finditer(url)]
    return [p for p in found if p]


def scrub(message: str, url: str) -> str:
    """A one-line error message with every trace of the URL's password removed.

    Outside URLs the password is replaced only where it stands as a whole word, so that a short
    password does not mangle the words of the message that happen to contain it.
    """
    message = mask_password(" ".join(str(message).split()))
    for password in _passwords(url):
        message = re.sub(rf"(?<![A-Za-z0-9]){re.escape(password)}(?![A-Za-z0-9])", "***", message)
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
        path = value.split(":///", 1)[1].split("?", 1)[0] if ":///" in value else ""
        return StorageTarget(value, "sqlite", os.path.abspath(path) if path and path != ":memory:" else None)
    if any("@" in p for p in (m.group("password") for m in _QUERY_PASSWORD.finditer(value)) if p):
        # the driver reads the query's password the same way: an "@" in it ends up in a host name
        # that the driver prints in its error message
        raise StorageError(f"storage {mask_password(value)}: the password contains '@'; write it "
                           "percent-encoded as %40 (or set the URL in $NORMX_STORAGE)")
    if value.split("://", 1)[1].split("?", 1)[0].count("@") > 1:
        # SQLAlchemy would end the password at the first "@" and send the rest to the driver as the
        # host name, which then prints it in its error message.
        raise StorageError(f"storage {mask_password(value)}: the user name or password contains '@'; "
                           "write it percent-encoded as %40 (or set the URL in $NORMX_STORAGE)")
    if scheme.startswith("postgres"):
        return StorageTarget(_postgres_driver(value, scheme), "postgresql")
    return StorageTarget(value, "rdb")


def _postgres_driver(url: str, scheme: str) -> str:
    """``postgresql://`` names no driver, and SQLAlchemy 2.1 then wants psycopg 3; use psycopg2
    (what ``pip install 'norm-explorer[postgres]'`` installs) when only that one is present."""
    if "+" in scheme:
        return url
    rest = url.split("://", 1)[1]  # "postgres://" too, which SQLAlchemy no longer takes
    if find_spec("psycopg") is None and find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + rest
    return "postgresql://" + rest


def quiet_optuna() -> None:
    """No info logs, and no warnings about the experimental heartbeat API this module relies on."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_storage(target: StorageTarget | str, heartbeat_interval: int | None = None,
                 grace_period: int | None = None, max_retry: int | None = 3) -> BaseStorage:
    """An Optuna storage object for ``target``; heartbeats and retries on RDB storages."""
    if isinstance(target, str):
        target = resolve_storage(target)
    quiet_optuna()
    if target.kind == "journal":
        return _open_journal(target)
    engine_kwargs: dict[str, Any] = {}
    if target.kind == "sqlite":
        if target.path:
            try:
                check_writable_file("sqlite", target.path)
            except StorageFileError as err:
                raise StorageError(f"cannot open storage {target.display}: {err}") from None
        # Several local workers may write at once: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif target.kind == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
        engine_kwargs["pool_pre_ping"] = True
    callback = None
    if heartbeat_interval:
        callback = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    try:
        return _create_rdb_storage(target.url, engine_kwargs or None, heartbeat_interval, grace_period, callback)
    except ImportError as err:  # optuna re-raises the driver's ModuleNotFoundError as an ImportError
        raise _driver_missing(target, err) from None
    except Exception as err:  # noqa: BLE001 - sqlalchemy/driver errors of every kind
        message = str(getattr(err, "orig", None) or err).strip().splitlines()
        first = message[0] if message else type(err).__name__
        raise StorageError(f"cannot open storage {target.display}: {scrub(first, target.url)}") from None


def _open_journal(target: StorageTarget) -> Any:
    """A journal opened for writing: only an Optuna journal or a new journal-named file, never one
    with unreadable lines; a last line cut off by a crash is repaired (with a backup) first."""

    try:
        check_writable_file("journal", target.path)
        if os.path.exists(target.path):
            problem = first_journal_problem(target.path)
            if problem is not None:
                raise StorageFileError(f"{target.path} is damaged at {problem}; normx will not append to it")
    except StorageFileError as err:
        raise StorageError(f"cannot open storage {target.display}: {err}") from None
    try:
        backend = JournalFileBackend(target.path)
        backup = repair_journal_tail(target.path, backend._lock)
        if backup is not None:
            print(f"normx: warning: {target.path} ended in a line cut off mid-write (a crash); removed it, "
                  f"the original is kept as {backup}", file=sys.stderr)
        return optuna.storages.JournalStorage(backend)
    except Exception as err:  # noqa: BLE001 - any failure to open is a one-line user error
        raise StorageError(f"cannot open storage {target.display}: {scrub(_first_line(err), target.url)}") from None


#: Errors of two processes creating Optuna's tables in one new database at the same moment: a table
#: made by the other one since this one looked (SQLite, PostgreSQL), or the alembic_version row
#: inserted by both (PostgreSQL's "duplicate key value", SQLite's "UNIQUE constraint"; Optuna itself
#: ignores the same race on its version_info row).
_CREATE_RACE = ("already exists", "duplicate key value", "pg_type_typname_nsp_index",
                "UNIQUE constraint failed: alembic_version.")


def _create_rdb_storage(url: str, engine_kwargs: dict[str, Any] | None, heartbeat_interval: int | None,
                        grace_period: int | None, callback: RetryHeartbeatStaleTrialCallback | None) -> RDBStorage:
    """Optuna's RDBStorage; when several workers start on a new database together, all but one
    lose the race to create the tables (PostgreSQL: a duplicate key in pg_type): try again, and
    the tables are there."""
    attempts = 6
    while True:
        attempts -= 1
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval if heartbeat_interval else None,
                grace_period=grace_period if heartbeat_interval else None,
                heartbeat_stale_trial_callback=callback,
            )
        except ImportError:
            raise
        except Exception as err:  # noqa: BLE001 - sqlalchemy's IntegrityError / ProgrammingError
            if not attempts or not any(part in str(err) for part in _CREATE_RACE):
                raise
            time.sleep(0.2 + random.random() * 0.5)


def _driver_missing(target: StorageTarget, err: ImportError) -> StorageError:
    return StorageError(f"cannot open storage {target.display}: the database driver is not installed "
                        f"({_first_line(err)}); for PostgreSQL: pip install 'norm-explorer[postgres]'")


def _first_line(err: BaseException) -> str:
    """The first line of the innermost cause: optuna and sqlalchemy wrap the driver's error."""
    *_, err = _causes(err)
    orig = getattr(err, "orig", None) or err
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def open_readonly(target: StorageTarget | str) -> BaseStorage:
    """An Optuna storage opened for reading only: what the viewer, the report and ``study list``,
    ``pareto`` and ``validate`` use. SQLite files open in SQLite's read-only mode, RDB storages
    skip Optuna's table creation, and a missing file is an error, never a new empty database."""
    if isinstance(target, str):
        target = resolve_storage(target)
    quiet_optuna()
    if target.kind == "journal":
        if not os.path.isfile(target.path):
            raise StorageError(f"no journal storage file at {target.path} (run 'normx study run STUDY.toml' first)")
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(target.path))
        except Exception as err:  # noqa: BLE001 - a corrupt or foreign file
            why = first_journal_problem(target.path) or f"{type(err).__name__}: {_first_line(err)}"
            raise StorageError(f"cannot read journal storage {target.path}: {why}") from None
    url, engine_kwargs = target.url, {"pool_pre_ping": True}
    if target.kind == "sqlite" and target.path:
        if not os.path.isfile(target.path):
            raise StorageError(f"no SQLite storage file at {target.path} (run 'normx study run STUDY.toml' first)")
        url, engine_kwargs = f"sqlite:///file:{target.path}?mode=ro&uri=true", {"connect_args": {"timeout": 30}}
    elif target.kind == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        storage.get_all_studies()  # connects, and fails here when this is not an Optuna database
    except ImportError as err:
        raise _driver_missing(target, err) from None
    except Exception as err:  # noqa: BLE001 - sqlalchemy/driver errors of every kind
        message = scrub(_first_line(err), target.url)
        if "no such table" in message or ("does not exist" in message and "relation" in message):
            raise StorageError(f"{target.display} is not an Optuna storage (no studies table)") from None
        raise StorageError(f"cannot open storage {target.display}: {message}") from None
    return storage


@contextlib.contextmanager
def claim_lock(target: StorageTarget, storage: BaseStorage, study_name: str) -> Iterator[None]:
    """Hold the study's claim lock: only one worker counts and asks for a trial at a time."""
    if target.kind in ("sqlite", "journal") and target.path:
        import fcntl  # POSIX only: imported where the lock is taken

        with open(target.path + ".normx-claim", "a+") as handle:  # not ".lock": the journal backend uses it
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if target.kind == "postgresql":
        key = int.from_bytes(hashlib.sha1(f"normx:{study_name}".encode()).digest()[:8], "big", signed=True)
        with storage.engine.connect() as connection:
            with connection.begin():
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                yield
        return
    yield  # in-memory or other RDBs: best effort (MaxTrialsCallback-like counting)
