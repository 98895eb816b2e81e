"""Training checkpoints in Optuna's artifact store: a trial's state saved by one worker is resumed by
another (a second study object on the same SQLite file), where the files live, and what a damaged
or missing checkpoint says."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch

from explorer.data import load_dataset
from explorer.models import create_model
from explorer.search.checkpoints import (CheckpointError, artifact_dir, checkpoint_store, load_checkpoint,
                                         remove_checkpoint, save_checkpoint)
from explorer.search.schema import TrialAttr, TrialRecord
from explorer.search.storage import open_storage, resolve_storage
from explorer.search.study_file import StudyFileError, parse_study_text
from explorer.training import TrainConfig, TrainState, train

MODEL = "mlp(depth=2, width=16)"
CONFIG = dict(steps=12, batch_size=16, base_lr=0.4, device="cpu", checkpoints=(4, 8, 12), curve_points=12,
              compile=False)


@pytest.fixture(scope="module")
def data():
    return load_dataset("gaussian", "train", limit=64, seed=0), load_dataset("gaussian", "test", limit=32, seed=0)


def _model(train_data) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(MODEL, "ln", num_classes=train_data.num_classes, in_channels=3)


def _saving(trial: optuna.Trial, store, stop_at: int) -> Callable:
    """An on_checkpoint that saves every rung's state on ``trial`` and stops at ``stop_at``."""
    def on_checkpoint(record: dict[str, float], snapshot: Callable[[], TrainState]) -> bool:
        rung = CONFIG["checkpoints"].index(int(record["step"]))
        save_checkpoint(trial, store, snapshot(), rung)
        return record["step"] != stop_at

    return on_checkpoint


def _study(tmp_path: Path) -> tuple[str, optuna.Study]:
    storage = str(tmp_path / "study.db")
    study = optuna.create_study(study_name="resume", storage=open_storage(resolve_storage(storage)))
    return storage, study


def test_a_checkpoint_saved_by_one_worker_resumes_in_another(tmp_path, data):
    train_data, test_data = data
    storage, study = _study(tmp_path)
    target = resolve_storage(storage)
    store = checkpoint_store(target, "resume")
    trial = study.ask()
    stopped = train(_model(train_data), train_data, test_data, TrainConfig(**CONFIG), on_checkpoint=_saving(trial, store, 8))
    assert stopped.stopped_at == 8
    folder = artifact_dir(target, "resume")
    # one checkpoint per trial: rung 1's replaced rung 0's
    assert len(os.listdir(folder)) == 1

    # another worker: its own study object and store on the same storage, the trial read back
    other = optuna.load_study(study_name="resume", storage=open_storage(resolve_storage(storage)))
    frozen = other.trials[trial.number]
    attr = frozen.user_attrs[TrialAttr.CHECKPOINT]
    assert attr["step"] == 8 and attr["rung"] == 1 and os.listdir(folder) == [attr["artifact_id"]]
    assert TrialRecord.from_attrs(frozen.user_attrs).checkpoint == attr
    # Optuna's own record of the artifact (it keeps the replaced one's too: it cannot drop metadata)
    assert attr["artifact_id"] in {m.artifact_id for m in optuna.artifacts.get_all_artifact_meta(frozen, storage=other._storage)}
    state = load_checkpoint(checkpoint_store(resolve_storage(storage), "resume"), attr["artifact_id"])
    resumed_model = _model(train_data)
    resumed = train(resumed_model, train_data, test_data, TrainConfig(**CONFIG), resume=state)
    whole_model = _model(train_data)
    whole = train(whole_model, train_data, test_data, TrainConfig(**CONFIG))
    assert (resumed.steps, resumed.test_accuracy, resumed.mean_train_accuracy) == \
        (whole.steps, whole.test_accuracy, whole.mean_train_accuracy)
    assert [c["step"] for c in resumed.checkpoints] == [4, 8, 12]
    torch.testing.assert_close(torch.tensor(resumed.loss_curve), torch.tensor(whole.loss_curve), rtol=1e-6, atol=1e-7)
    for key, value in whole_model.state_dict().items():
        torch.testing.assert_close(resumed_model.state_dict()[key], value, rtol=1e-6, atol=1e-7)

    # the trial finished: its checkpoint goes, and removing it again is fine
    remove_checkpoint(store, attr["artifact_id"])
    remove_checkpoint(store, attr["artifact_id"])
    assert os.listdir(folder) == []
    with pytest.raises(CheckpointError, match=f"checkpoint artifact {attr['artifact_id']} is missing"):
        load_checkpoint(store, attr["artifact_id"])


def test_where_checkpoints_live(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sqlite = resolve_storage(str(tmp_path / "runs" / "s.db"))
    assert artifact_dir(sqlite, "quick") == tmp_path / "runs" / "s.db.normx-artifacts" / "quick"
    journal = resolve_storage(f"journal:{tmp_path / 'runs' / 'j.journal'}")
    assert artifact_dir(journal, "quick") == tmp_path / "runs" / "j.journal.normx-artifacts" / "quick"
    server = resolve_storage("postgresql://user:secret@db.example/normx")
    assert artifact_dir(server, "quick") == tmp_path / "normx-artifacts" / "quick"
    memory = resolve_storage("sqlite:///:memory:")
    assert artifact_dir(memory, "quick") == tmp_path / "normx-artifacts" / "quick"
    # the study file's directory wins, relative to the working directory, as given
    assert artifact_dir(server, "quick", "shared/ckpt") == tmp_path / "shared" / "ckpt"
    assert artifact_dir(sqlite, "quick", "~/ckpt") == Path(os.path.expanduser("~/ckpt"))
    # a study name that is no single safe directory name gets one of its own
    odd = artifact_dir(sqlite, "a/b")
    assert odd.parent == tmp_path / "runs" / "s.db.normx-artifacts" and "/" not in odd.name
    assert odd != artifact_dir(sqlite, "a_b") and artifact_dir(sqlite, "..").parent == odd.parent
    store = checkpoint_store(server, "quick")  # the store's directory is made
    assert (tmp_path / "normx-artifacts" / "quick").is_dir() and store is not None


def test_the_study_file_names_the_directory():
    minimal = 'name = "t"\nmodels = ["m"]\n[objectives]\ncosine_similarity = "minimize"\n'
    assert parse_study_text(minimal).workers.artifacts is None
    assert parse_study_text(minimal + '[workers]\nartifacts = "/shared/ckpt"\n').workers.artifacts == "/shared/ckpt"
    with pytest.raises(StudyFileError, match=r"s.toml:6: workers.artifacts: empty directory"):
        parse_study_text(minimal + '[workers]\nartifacts = " "\n', "s.toml")
    with pytest.raises(StudyFileError, match="workers.artifacts: must be a string"):
        parse_study_text(minimal + '[workers]\nartifacts = 3\n', "s.toml")


@pytest.mark.parametrize("damage", ["flip", "cut", "foreign"])
def test_a_damaged_checkpoint_is_one_line_naming_it(tmp_path, data, damage):
    train_data, test_data = data
    storage, study = _study(tmp_path)
    store = checkpoint_store(resolve_storage(storage), "resume")
    trial = study.ask()
    train(_model(train_data), train_data, test_data, TrainConfig(**CONFIG), on_checkpoint=_saving(trial, store, 4))
    artifact_id = trial.user_attrs[TrialAttr.CHECKPOINT]["artifact_id"]
    path = artifact_dir(resolve_storage(storage), "resume") / artifact_id
    data_bytes = bytearray(path.read_bytes())
    if damage == "flip":  # one bit of a weight: torch.load alone would not notice
        data_bytes[len(data_bytes) // 2] ^= 0x01
    elif damage == "cut":  # a crash in the middle of writing
        data_bytes = data_bytes[: len(data_bytes) // 2]
    else:
        data_bytes = bytearray(b"PK\x03\x04 something else")
    path.write_bytes(bytes(data_bytes))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(store, artifact_id)
    message = str(caught.value)
    assert "\n" not in message and f"checkpoint artifact {artifact_id} " in message
    assert ("not a normx checkpoint" if damage == "foreign" else "is damaged") in message
    assert message.endswith("training starts again from step 0")
