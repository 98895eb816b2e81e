"""Open an Optuna storage for reading only, with errors a user can act on.

The viewer, the report and the progress display never write: SQLite files are opened in SQLite's
read-only mode, RDB storages skip Optuna's table creation, and a missing file is an error rather
than a new empty study database. Any password in a URL is masked before it reaches a message.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from explorer.errors import NormxError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class StorageError(NormxError):
    """A storage URL that cannot be opened (missing file, unreachable server, not an Optuna storage)."""


class StudyNotFoundError(NormxError):
    """A study name that the storage does not hold; the message lists the ones it does."""


def mask_url(url: str) -> str:
    """``postgresql://me:secret@host/db`` -> ``postgresql://me:***@host/db``."""
    return re.sub(r"(//[^:/@]*:)[^/]*@", r"\1***@", url)


def _mask_message(message: str, url: str) -> str:
    match = re.search(r"//[^:/@]*:([^/]*)@", url)
    if match and match.group(1):
        message = message.replace(match.group(1), "***")
    return mask_url(message)


def _first_line(err: BaseException) -> str:
    while err.__cause__ is not None or err.__context__ is not None:  # optuna and sqlalchemy wrap the cause
        err = err.__cause__ or err.__context__
    orig = getattr(err, "orig", None) or err  # sqlalchemy wraps the driver's error
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def journal_path(url: str) -> str | None:
    """The file of a journal storage URL (``journal:///path``, ``journal:path`` or ``path.log``), else None."""
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        return path[2:] if path.startswith("//") else path
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES):
        return url
    return None


def normalize_url(url: str) -> str:
    """Accept a bare SQLite file path as shorthand for ``sqlite:///path``."""
    if "://" not in url and not url.startswith("journal:") and url.endswith(SQLITE_SUFFIXES):
        return f"sqlite:///{url}"
    return url


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage for ``url`` opened read-only; raises :class:`StorageError` with one clear line."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = normalize_url(url)
    path = journal_path(url)
    if path is not None:
        if not os.path.isfile(path):
            raise StorageError(f"no journal storage file at {path}")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        try:
            return JournalStorage(JournalFileBackend(path))
        except Exception as err:  # a corrupt or foreign file
            raise StorageError(f"cannot read journal storage {path}: {_first_line(err)}") from None
    if "://" not in url:
        raise StorageError(f"not a storage URL: {url!r} (expected sqlite:///FILE, journal:///FILE, "
                           "postgresql://USER@HOST/DB or mysql://...)")
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):].split("?", 1)[0]
        if path and path != ":memory:":
            if not os.path.isfile(path):
                raise StorageError(f"no SQLite storage file at {path}")
            # read-only at the SQLite level: the viewer can never modify a study
            url = f"sqlite:///file:{os.path.abspath(path)}?mode=ro&uri=true"
            engine_kwargs = {"connect_args": {"timeout": 30}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
        if url.startswith(("postgresql", "postgres")):
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    from optuna.storages import RDBStorage

    try:
        storage = RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        storage.get_all_studies()  # connects, and fails here when this is not an Optuna database
    except ImportError as err:
        raise StorageError(f"cannot open {mask_url(url)}: {_first_line(err)}") from None
    except Exception as err:
        message = _mask_message(_first_line(err), url)
        if "no such table" in message or ("does not exist" in message and "relation" in message):
            raise StorageError(f"{mask_url(_display_url(url))} is not an Optuna storage (no studies table)") from None
        raise StorageError(f"cannot open storage {mask_url(_display_url(url))}: {message}") from None
    return storage


def _display_url(url: str) -> str:
    match = re.match(r"sqlite:///file:(.*)\?mode=ro&uri=true$", url)
    return f"sqlite:///{match.group(1)}" if match else url


def study_names(storage: BaseStorage) -> list[str]:
    """Names of the studies in ``storage``, sorted."""
    return sorted(s.study_name for s in storage.get_all_studies())


def find_study_id(storage: BaseStorage, name: str) -> int:
    """The id of study ``name``; raises :class:`StudyNotFoundError` listing the studies that exist."""
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        names = study_names(storage)
        listing = ", ".join(names) if names else "none"
        raise StudyNotFoundError(f"no study named {name!r} in this storage; studies: {listing}") from None


def locate_study(study: str, storage: str | None = None) -> tuple[str, str]:
    """(storage URL, study name) from the command line: ``study`` is a study name or a study file
    (its ``name`` and ``storage`` keys are used); ``--storage`` wins, then the study file's storage,
    then ``$NORMX_STORAGE``, then ``sqlite:///normx.db``, as for ``normx study run``."""
    from explorer.search import default_storage

    name, file_storage = study, None
    if study.endswith(".toml"):
        from explorer.search.study_file import load_study_file

        config = load_study_file(study)
        name, file_storage = config.name, config.storage
    return storage or file_storage or default_storage(), name
