"""A study's training checkpoints, kept in Optuna's artifact store.

Successive halving stops a candidate's training at a rung and continues it later; a trial
interrupted (Ctrl-C, SIGKILL, a lost worker) is retried, possibly by another worker, from its
last rung instead of step 0. The state (:class:`explorer.training.TrainState`) is uploaded with
:func:`optuna.artifacts.upload_artifact` (Optuna records the artifact's metadata on the trial) and
the trial's ``checkpoint`` user attribute names the latest one: ``{"artifact_id", "step", "rung"}``.
A retry copies the failed trial's user attributes, so it finds the checkpoint there.

Where the artifacts live (:func:`artifact_dir`): ``[workers] artifacts`` when the study file sets
it; else beside a file storage (``STORAGE.normx-artifacts/<study>``, like the workers' liveness
directory); else, for a server storage, ``./normx-artifacts/<study>`` in the worker's directory.
Workers on several machines sharing one server must share that directory (a network file system):
set ``[workers] artifacts`` to the same path on every machine, or a retry on another machine does
not find the checkpoint and trains from step 0 (correct, only slower).

An artifact holds a header with the SHA-256 of the state: a checkpoint cut off by a crash or
altered on disk is a :class:`CheckpointError` (one line naming the artifact), never a silently
wrong resume; the caller then trains from step 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from explorer.errors import NormxError
from explorer.search.schema import TrialAttr
from explorer.search.storage import StorageTarget
from explorer.search.study_file import StudyConfig
from explorer.training import TrainState

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["CheckpointError", "artifact_dir", "checkpoint_store", "load_checkpoint", "remove_checkpoint",
           "save_checkpoint"]

#: The first line of every checkpoint artifact: the format, then the payload's SHA-256.
_MAGIC = b"normx-checkpoint 1 sha256="
#: a payload holding several models' states (save_checkpoints): a JSON index of their lengths, then the states
_BUNDLE = b"normx-bundle 1\n"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class CheckpointError(NormxError):
    """A checkpoint that cannot be read (missing, cut off, altered): the trial trains from step 0."""


def _directory_name(study_name: str) -> str:
    """The study's name as one directory name: as it is when safe, else made safe plus a short hash
    (so that "a/b" and "a_b" do not share a directory)."""
    if _SAFE_NAME.fullmatch(study_name) and study_name not in (".", ".."):
        return study_name
    digest = hashlib.sha1(study_name.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', study_name).strip('.') or 'study'}-{digest}"


def artifact_dir(target: StorageTarget, study_name: str, configured: str | None = None) -> Path:
    """Where the study's checkpoints live (absolute): ``configured`` (``[workers] artifacts``, as
    given: artifact ids are unique, so studies may share it), else ``<file storage>.normx-artifacts/
    <study>``, else (a server) ``./normx-artifacts/<study>``, which several machines must share."""
    if configured is not None:
        return Path(os.path.abspath(os.path.expanduser(configured)))
    if target.kind in ("sqlite", "journal") and target.path:
        return Path(target.path + ".normx-artifacts") / _directory_name(study_name)
    return Path(os.path.abspath("normx-artifacts")) / _directory_name(study_name)


def checkpoint_store(target: StorageTarget, study_name: str, configured: str | None = None) -> FileSystemArtifactStore:
    """Optuna's file-system artifact store at :func:`artifact_dir`, its directory created."""
    directory = artifact_dir(target, study_name, configured)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(f"cannot create the checkpoint directory {directory}: {err.strerror or err}") from None
    return FileSystemArtifactStore(directory)


def save_checkpoint(trial: optuna.Trial, store: ArtifactStore, state: TrainState,
                    rung: int) -> str:
    """Upload ``state`` as an artifact of ``trial`` and name it in the trial's ``checkpoint``
    attribute; returns the artifact id.

    The whole state is written to a temporary file before the store is touched, and the attribute
    is set only once the upload is complete, so the attribute never names a partial artifact. The
    checkpoint it replaces (an earlier rung's, or the one a retry inherited) is then removed: a
    trial keeps one checkpoint, its latest.
    """
    return _upload(trial, store, state.to_bytes(), state.step, rung)


def save_checkpoints(trial: optuna.Trial, store: ArtifactStore, states: Mapping[str, TrainState],
                     rung: int) -> str:
    """:func:`save_checkpoint` for a study of several models: one artifact holding each model's
    state (a rung is reached when every model reached it)."""
    parts = {name: state.to_bytes() for name, state in states.items()}
    index = json.dumps({name: len(data) for name, data in parts.items()}).encode()
    step = min(state.step for state in states.values())
    return _upload(trial, store, _BUNDLE + index + b"\n" + b"".join(parts.values()), step, rung)


def _upload(trial: optuna.Trial, store: ArtifactStore, payload: bytes, step: int, rung: int) -> str:
    data = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    previous = trial.user_attrs.get(TrialAttr.CHECKPOINT)
    with tempfile.TemporaryDirectory(prefix="normx-checkpoint-") as folder:
        path = os.path.join(folder, f"trial-{trial.number}-step-{step}.normx-checkpoint")
        with open(path, "wb") as handle:
            handle.write(data)
        artifact_id = upload_artifact(artifact_store=store, file_path=path, study_or_trial=trial,
                                      mimetype="application/octet-stream")
    trial.set_user_attr(TrialAttr.CHECKPOINT, {"artifact_id": artifact_id, "step": int(step), "rung": int(rung)})
    if isinstance(previous, dict) and isinstance(previous.get("artifact_id"), str) \
            and previous["artifact_id"] != artifact_id:
        remove_checkpoint(store, previous["artifact_id"])
    return artifact_id


def load_checkpoint(store: ArtifactStore, artifact_id: str) -> TrainState:
    """The state saved as ``artifact_id``; a :class:`CheckpointError` when it is missing or damaged."""
    payload = _download(store, artifact_id)
    try:
        return TrainState.from_bytes(payload)
    except ValueError as err:
        raise _failure(artifact_id, f"cannot be loaded ({_one_line(err)})") from None


def load_checkpoints(store: ArtifactStore, artifact_id: str) -> dict[str, TrainState]:
    """The states :func:`save_checkpoints` saved, by model; a :class:`CheckpointError` when the
    artifact is missing, damaged, or not such a bundle."""
    payload = _download(store, artifact_id)
    if not payload.startswith(_BUNDLE):
        raise _failure(artifact_id, "holds one model's state, not a study's (save_checkpoints)")
    index, _, rest = payload[len(_BUNDLE):].partition(b"\n")
    try:
        lengths = json.loads(index)
        states, offset = {}, 0
        for name, length in lengths.items():
            states[name] = TrainState.from_bytes(rest[offset:offset + int(length)])
            offset += int(length)
    except (ValueError, TypeError, AttributeError) as err:
        raise _failure(artifact_id, f"cannot be loaded ({_one_line(err)})") from None
    return states


def _failure(artifact_id: str, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint artifact {artifact_id} {why}; training starts again from step 0")


def _download(store: ArtifactStore, artifact_id: str) -> bytes:
    """The payload of an artifact, its checksum verified."""
    with tempfile.TemporaryDirectory(prefix="normx-checkpoint-") as folder:
        path = os.path.join(folder, "checkpoint")
        try:
            download_artifact(artifact_store=store, file_path=path, artifact_id=artifact_id)
            with open(path, "rb") as handle:
                data = handle.read()
        except ArtifactNotFound:
            raise _failure(artifact_id, "is missing from the artifact store") from None
        except (OSError, ValueError) as err:  # an unreadable file; an id the store refuses
            raise _failure(artifact_id, f"cannot be read ({type(err).__name__}: {_one_line(err)})") from None
    header, _, payload = data.partition(b"\n")
    if not header.startswith(_MAGIC):
        raise _failure(artifact_id, "is not a normx checkpoint (no header)")
    if hashlib.sha256(payload).hexdigest().encode() != header[len(_MAGIC):]:
        raise _failure(artifact_id, f"is damaged (its {len(payload)} bytes do not match the checksum written with "
                                    "them: cut off or altered)")
    return payload


def open_artifact_store(target: StorageTarget, config: StudyConfig) -> FileSystemArtifactStore:
    """The artifact store of a study file's study on ``target`` (``[workers] artifacts``, else the default)."""
    return checkpoint_store(target, config.name, config.workers.artifacts)


def remove_checkpoint(store: ArtifactStore, artifact_id: str) -> None:
    """Remove a checkpoint (a trial finished with it, or a later one replaced it); a missing one is fine.

    Optuna keeps the artifact's metadata (a system attribute of the trial): it has no call to drop it.
    """
    try:
        store.remove(artifact_id)
    except ArtifactNotFound:
        pass


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__
