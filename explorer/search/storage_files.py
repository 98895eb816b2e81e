"""The files behind local storages: what may be written, and journals kept readable.

A study file names its storage, and a study file may come from anyone: ``storage =
"journal:~/.bashrc"`` must not append JSON lines to a shell profile. So a storage file is written
only when it already is one (an Optuna journal, an SQLite database) or when it is created under a
storage's own name (``.journal``/``.log``/``.jsonl``, ``.db``/``.sqlite``/``.sqlite3``). Nothing is
created when the answer is no, and nothing is created through a symbolic link that points nowhere:
``x.journal -> ~/.ssh/authorized_keys`` would make the storage's new file wherever the link says.

A journal is a file of JSON lines that Optuna appends to. A crash in the middle of a write leaves
a last line without its newline; Optuna skips it when reading, but the next append would glue a
record onto it and make every line after it unreadable. :func:`repair_journal_tail` cuts such a
tail off under the journal's own write lock (so a write in progress by a live process is never
cut), after copying the whole file to a backup.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from optuna.storages.journal._file import get_lock_file  # the lock every journal writer takes
from optuna.storages.journal._storage import JournalOperation  # the operations a journal record may hold

from explorer.errors import shorten

JOURNAL_SUFFIXES = (".journal", ".log", ".jsonl")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Optuna journal records are JSON objects with an operation code.
_JOURNAL_KEY = "op_code"
#: The operation codes this Optuna replays; any other one stops its replay ("Should not reach").
_OP_CODES = frozenset(int(op) for op in JournalOperation)


class StorageFileError(Exception):
    """A storage file that must not be written or cannot be read; the message is one line."""


def is_sqlite_file(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def first_journal_problem(path: str, limit: int | None = None) -> str | None:
    """Where a journal stops being Optuna's: ``"line N: why"``, or None when every complete line
    is a journal record. A last line without its newline (a cut-off write) is not a problem here:
    readers skip it, and :func:`repair_journal_tail` removes it before any write. ``limit`` reads
    only the first lines (enough to tell a foreign file)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and number > limit:
                return None
            if not line.endswith(b"\n"):
                return None
            if not line.strip():
                return f"line {number}: empty line"
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                return f"line {number}: not JSON ({err.__class__.__name__}: {str(err).split(':')[0]})"
            if not isinstance(record, dict) or _JOURNAL_KEY not in record:
                return f"line {number}: not an Optuna journal record (no {_JOURNAL_KEY!r})"
            op = record[_JOURNAL_KEY]
            if isinstance(op, bool) or not isinstance(op, int) or op not in _OP_CODES:
                return (f"line {number}: unknown {_JOURNAL_KEY} {shorten(repr(op))} (this Optuna knows "
                        f"{min(_OP_CODES)} to {max(_OP_CODES)}; a newer Optuna may have written it)")
    return None


def check_writable_file(kind: str, path: str) -> None:
    """Raise :class:`StorageFileError` unless ``path`` may be written as a ``kind`` storage
    (``"journal"`` or ``"sqlite"``): an existing file of that kind that this process may write, or
    a new file under that kind's name in a writable directory."""
    suffixes = JOURNAL_SUFFIXES if kind == "journal" else SQLITE_SUFFIXES
    what = "an Optuna journal" if kind == "journal" else "an SQLite database"
    directory = os.path.dirname(path) or "."
    if os.path.islink(path) and not os.path.exists(path):  # opening it would create the link's target
        target = os.path.normpath(os.path.join(directory, os.readlink(path)))
        raise StorageFileError(f"{path} is a symbolic link to {target}, which does not exist; normx creates no "
                               "storage through a dangling link: point it at an existing storage or remove it")
    if not os.path.isdir(directory):
        raise StorageFileError(f"no directory {directory}")
    if not os.path.exists(path):
        if not path.endswith(suffixes):
            raise StorageFileError(
                f"{path} does not exist, and a new {kind} storage is created only under a name ending in "
                f"{', '.join(suffixes)}")
        if not os.access(directory, os.W_OK):
            raise StorageFileError(f"cannot create {path}: the directory is read-only")
        return
    if not os.path.isfile(path):
        raise StorageFileError(f"{path} is not a file")
    if os.path.getsize(path) == 0:
        if not path.endswith(suffixes):
            raise StorageFileError(f"{path} is empty and not named as {what} ({', '.join(suffixes)})")
    elif kind == "sqlite" and not is_sqlite_file(path):
        raise StorageFileError(f"{path} is not {what}; normx writes only to {what} or a new {suffixes[0]} file")
    elif kind == "journal":
        problem = first_journal_problem(path, limit=1)
        if problem is not None:
            raise StorageFileError(f"{path} is not {what} ({problem}); normx writes only to {what} "
                                   f"or a new {suffixes[0]} file")
    if not os.access(path, os.W_OK) or (kind == "sqlite" and not os.access(directory, os.W_OK)):
        raise StorageFileError(f"{path} is read-only (permission denied); "
                               "'normx report' and 'normx view' read it as it is")


def repair_journal_tail(path: str, lock: object) -> str | None:
    """Cut a last line left without its newline by a crash mid-write, under the journal's write
    ``lock`` (Optuna's lock object). Returns the backup's path when the file was repaired."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    with get_lock_file(lock):
        with open(path, "rb") as handle:
            data = handle.read()
        if data.endswith(b"\n"):
            return None
        keep = data.rfind(b"\n") + 1
        backup = f"{path}.normx-backup-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copy2(path, backup)
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    return backup
