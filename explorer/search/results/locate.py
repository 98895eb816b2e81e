"""Finding a study: by name or study file, in a storage opened read-only
(:func:`explorer.search.storage.open_readonly`), with the studies it holds listed when the name is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from explorer.errors import NormxError
from explorer.search import default_storage
from explorer.search.study_file import load_study_file

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


class StudyNotFoundError(NormxError):
    """A study name that the storage does not hold; the message lists the ones it does."""


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
    name, file_storage = study, None
    if study.endswith(".toml"):
        config = load_study_file(study)
        name, file_storage = config.name, config.storage
    return storage or file_storage or default_storage(), name
