"""Datasets: generated ones are deterministic; folders load through ImageFolder; missing CIFAR is one line."""

import subprocess

import pytest
import torch

from explorer.data import DataError, iter_batches, load_dataset


def test_gaussian_and_synthetic_deterministic():
    for name in ("gaussian", "synthetic"):
        a = load_dataset(name, limit=32, seed=3)
        b = load_dataset(name, limit=32, seed=3)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert a.x.shape == (32, 3, 32, 32) and a.y.dtype == torch.long and a.num_classes == 10
        assert not torch.equal(a.x, load_dataset(name, limit=32, seed=4).x)
        assert not torch.equal(a.x, load_dataset(name, "test", limit=32, seed=3).x)


def test_synthetic_has_natural_statistics():
    ds = load_dataset("synthetic", limit=64)
    assert ds.x.min() >= -1 and ds.x.max() <= 1  # pixels in [0, 1], normalized by mean/std 0.5
    # 1/f spectrum: power falls with frequency (low band far above the high band)
    power = torch.fft.rfft2(ds.x.mean(1)).abs().square().mean(0)
    assert power[1:3, 1:3].mean() > 10 * power[12:16, 12:16].mean()
    # per-image contrast varies
    stds = ds.x.flatten(1).std(1)
    assert stds.max() > 1.5 * stds.min()


def test_synthetic_is_learnable_by_cnn10():
    """A short run of a narrow cnn10 learns the synthetic classes far above chance (10%)."""
    from explorer.models import create_model

    torch.manual_seed(0)
    train, test = load_dataset("synthetic", limit=1024), load_dataset("synthetic", "test", limit=256)
    model = create_model("cnn10(width_multiplier=0.25)", "bn")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for x, y in iter_batches(train, 64, 48, seed=0):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test.x).argmax(1) == test.y).float().mean().item()
    assert accuracy > 0.4


def test_image_folder(tmp_path):
    from PIL import Image

    for label, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), colour).save(tmp_path / label / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.x.shape == (6, 3, 8, 8) and ds.num_classes == 2
    assert ds.x[0, 0, 0, 0].item() == pytest.approx(1.0) and ds.x[0, 2, 0, 0].item() == pytest.approx(-1.0)
    assert sorted(ds.y.tolist()) == [0, 0, 0, 1, 1, 1]


def test_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="valid datasets: gaussian, synthetic, digits, cifar10"):
        load_dataset("imagenet")
    (tmp_path / "junk").mkdir()
    with pytest.raises(DataError, match=str(tmp_path / "cifar-10-batches-py")):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")


def test_iter_batches_seeded():
    ds = load_dataset("gaussian", limit=10)
    a = [y.tolist() for _, y in iter_batches(ds, 4, 5, seed=1)]
    b = [y.tolist() for _, y in iter_batches(ds, 4, 5, seed=1)]
    assert a == b and len(a) == 5 and all(len(y) == 4 for y in a)
    with pytest.raises(DataError):
        list(iter_batches(ds, 11, 1))


def _write_cifar10(root, per_file: int = 4) -> None:
    """A CIFAR-10 python archive as torchvision expects it (pickled batches + meta), tiny."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        data = rng.integers(0, 256, size=(per_file, 3 * 32 * 32), dtype=np.uint8)
        data[:, 0] = i  # each file recognisable by its first pixel
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": [j % 10 for j in range(per_file)]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def test_cifar_is_read_through_torchvision(tmp_path, monkeypatch):
    """The real torchvision CIFAR10 reader on a tiny archive the test writes; only the md5 check
    of the official files is skipped (these files are not them)."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    _write_cifar10(tmp_path)
    train = load_dataset("cifar10", "train", root=tmp_path)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert train.x.shape == (20, 3, 32, 32) and test.x.shape == (4, 3, 32, 32)
    assert train.num_classes == 10 and train.y.tolist()[:4] == [0, 1, 2, 3]
    assert train.x.min() >= -1 and train.x.max() <= 1  # normalized to mean/std 0.5
    # test_batch's first pixel (red channel, top-left) is 5/255, mapped to (5/255 - 0.5) / 0.5
    assert torch.allclose(test.x[:, 0, 0, 0], torch.full((4,), (5 / 255 - 0.5) / 0.5))


def test_folder_needs_a_path():
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("folder:", "train")


def test_study_run_missing_cifar_names_options_it_has(tmp_path, normx_exe):
    """The missing-data error tells the user to pass --data-dir or --download: `normx study run`
    takes both (the README's promise), and nothing is created in storage."""
    study = tmp_path / "c.toml"
    study.write_text('name = "cif"\nmodels = ["mlp(depth=2, width=16)"]\n[objectives]\ncosine_similarity = "minimize"\n'
                     '[data]\nname = "cifar10"\ntrain_limit = 64\n[space]\npresets = ["bn"]\n[training]\nsteps = 0\n')
    empty = tmp_path / "empty"
    empty.mkdir()
    db = tmp_path / "s.db"
    result = subprocess.run([*normx_exe, "study", "run", str(study), "--storage", str(db), "--data-dir", str(empty)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == (f"normx: error: {study}:6: data.name: cifar10 files not found: expected the extracted "
                             f"archive at {empty}/cifar-10-batches-py (set --data-dir or $NORMX_DATA, or pass --download)\n")
    assert not db.exists()
    usage = subprocess.run([*normx_exe, "study", "run", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "--download" in usage and "--data-dir" in usage
