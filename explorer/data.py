"""Datasets as tensors on the target device: Gaussian noise, a synthetic natural-image set, handwritten
digits, CIFAR, folders.

Every dataset is a :class:`Dataset` of float images (N, C, H, W) normalized to mean/std 0.5 per
channel, i.e. ``(pixel - 0.5) / 0.5`` for pixels in [0, 1] (the paper's preprocessing), and long labels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from explorer.errors import NormxError, shorten

DATASETS = ("gaussian", "synthetic", "digits", "cifar10", "cifar100", "folder:PATH")
#: Size of the digits images after upsampling from scikit-learn's 8x8 (the models' CIFAR resolution).
DIGITS_SIZE = 32
#: Share of the 1,797 digits held out as the fixed test split.
DIGITS_TEST_SHARE = 0.2
#: Samples of the generated datasets when no limit is given.
GENERATED_SIZE = {"train": 10000, "test": 2000}
SYNTHETIC_CLASSES = 10
DATA_DIR_ENV = "NORMX_DATA"


class DataError(NormxError, ValueError):
    """An unknown dataset, missing files, or a batch request the data cannot serve."""


@dataclass
class Dataset:
    x: Tensor
    y: Tensor
    num_classes: int
    name: str

    def __len__(self) -> int:
        return self.x.shape[0]


def default_data_dir() -> Path:
    """Where CIFAR files live: ``$NORMX_DATA`` or ``~/.cache/normx/data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "normx" / "data")


def load_dataset(name: str, split: str = "train", limit: int | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", root: str | Path | None = None,
                 download: bool = False) -> Dataset:
    """Load ``name`` (gaussian, synthetic, digits, cifar10, cifar100, folder:PATH) onto ``device``.

    ``limit`` keeps a seeded random subset (or the number of generated samples); CIFAR is read
    from ``root`` (default :func:`default_data_dir`) and downloaded only when ``download`` is set.
    """
    if split not in ("train", "test"):
        raise DataError(f"split must be train or test, got {split!r}")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    device = torch.device(device)
    if name == "gaussian":
        return _gaussian(split, limit, seed, device)
    if name == "synthetic":
        return _synthetic(split, limit, seed, device)
    if name == "digits":
        return _subset(_digits(split), limit, seed, device)
    if name in ("cifar10", "cifar100"):
        return _subset(_cifar(name, split, Path(root) if root else default_data_dir(), download), limit, seed, device)
    if isinstance(name, str) and name.startswith("folder:"):
        if not name[len("folder:"):].strip():
            raise DataError("folder: needs a path, e.g. folder:~/data/flowers (a directory of class folders)")
        return _subset(_folder(name[len("folder:"):], split), limit, seed, device)
    raise DataError(f"unknown dataset {shorten(name)!r}; valid datasets: {', '.join(DATASETS)}")


def _size(split: str, limit: int | None) -> int:
    return limit if limit is not None else GENERATED_SIZE[split]


def _generator(device: torch.device, seed: int, split: str) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 2 + (split == "test"))
    return gen


def _gaussian(split: str, limit: int | None, seed: int, device: torch.device) -> Dataset:
    """Standard normal images (the paper's inputs for rank and similarity), random labels of 10 classes."""
    n = _size(split, limit)
    gen = _generator(device, seed, split)
    x = torch.randn(n, 3, 32, 32, generator=gen, device=device)
    y = torch.randint(0, SYNTHETIC_CLASSES, (n,), generator=gen, device=device)
    return Dataset(x, y, SYNTHETIC_CLASSES, "gaussian")


def pink_noise(n: int, size: int, gen: torch.Generator, device: torch.device, exponent: float = 1.0) -> Tensor:
    """(n, size, size) fields with amplitude spectrum 1/f^exponent, each with zero mean and unit std."""
    fy = torch.fft.fftfreq(size, device=device).view(-1, 1)
    fx = torch.fft.rfftfreq(size, device=device).view(1, -1)
    f = torch.sqrt(fx * fx + fy * fy)
    amplitude = 1.0 / torch.clamp(f, min=1.0 / size) ** exponent
    amplitude[0, 0] = 0.0
    real = torch.randn(n, size, size // 2 + 1, generator=gen, device=device)
    imag = torch.randn(n, size, size // 2 + 1, generator=gen, device=device)
    field = torch.fft.irfft2(torch.complex(real, imag) * amplitude, s=(size, size))
    field = field - field.mean(dim=(1, 2), keepdim=True)
    return field / field.std(dim=(1, 2), keepdim=True).clamp_min(1e-8)


def _synthetic(split: str, limit: int | None, seed: int, device: torch.device, size: int = 32) -> Dataset:
    """Offline images with natural statistics and class structure.

    Each image is 1/f ("pink") noise plus its class's pattern: an oriented grating (orientation and
    spatial frequency per class, random phase) under a soft blob at a random position, tinted with
    the class's color; then a random per-image contrast and brightness, clipped to [0, 1].
    The class structure is fixed (seed 1234) so that train and test splits share it; the samples
    depend on ``seed`` and ``split``.
    """
    n = _size(split, limit)
    k = SYNTHETIC_CLASSES
    gen = _generator(device, seed, split)
    cls_gen = torch.Generator(device=device)
    cls_gen.manual_seed(1234)
    orientation = torch.arange(k, device=device) * (math.pi / k)
    frequency = 0.08 + 0.12 * torch.rand(k, generator=cls_gen, device=device)  # cycles per pixel
    tint = 0.5 + torch.rand(k, 3, generator=cls_gen, device=device)

    y = torch.randint(0, k, (n,), generator=gen, device=device)
    noise = pink_noise(n, size, gen, device)  # (n, s, s)
    colour_noise = pink_noise(n * 3, size, gen, device).view(n, 3, size, size)
    coords = torch.arange(size, device=device, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    theta = orientation[y].view(n, 1, 1) + 0.15 * torch.randn(n, 1, 1, generator=gen, device=device)
    freq = frequency[y].view(n, 1, 1)
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=gen, device=device)
    grating = torch.cos(2 * math.pi * freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)
    cx, cy = (size * (0.3 + 0.4 * torch.rand(n, 2, 1, 1, generator=gen, device=device))).unbind(1)
    radius = size * (0.25 + 0.15 * torch.rand(n, 1, 1, generator=gen, device=device))
    blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    signal = (grating * blob).unsqueeze(1) * tint[y].view(n, 3, 1, 1)
    image = 0.6 * noise.unsqueeze(1) + 0.25 * colour_noise + 1.2 * signal
    contrast = torch.exp(0.4 * torch.randn(n, 1, 1, 1, generator=gen, device=device)) * 0.15
    brightness = 0.5 + 0.15 * torch.randn(n, 1, 1, 1, generator=gen, device=device)
    pixels = (brightness + contrast * image).clamp(0.0, 1.0)
    return Dataset((pixels - 0.5) / 0.5, y, k, "synthetic")


def _digits(split: str) -> Dataset:
    """Real handwritten digits with no download: scikit-learn's bundled 1,797 8x8 images (UCI
    optical digits, 16 grey levels), upsampled bilinearly to 32x32, one channel. The train/test
    split is fixed (a seeded permutation, 20 % test) whatever the study's seed."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    test = int(round(len(y) * DIGITS_TEST_SHARE))
    keep = order[:test] if split == "test" else order[test:]
    return Dataset((x[keep].clamp_(0.0, 1.0) - 0.5) / 0.5, y[keep], 10, "digits")


def _cifar(name: str, split: str, root: Path, download: bool) -> Dataset:
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    if not download and not (root / folder).is_dir():
        raise DataError(f"{name} files not found: expected the extracted archive at {root / folder} "
                        f"(set --data-dir or ${DATA_DIR_ENV}, or pass --download)")
    from torchvision import datasets  # slow to import: only for the datasets that need it

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        data = cls(str(root), train=split == "train", download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise DataError(f"{name} files at {root / folder} are missing or corrupted ({err})") from None
    except OSError as err:  # download failed (offline)
        raise DataError(f"{name} could not be downloaded to {root / folder}: {err}") from None
    x = torch.from_numpy(data.data).permute(0, 3, 1, 2).float().div_(255.0)
    return Dataset((x - 0.5) / 0.5, torch.as_tensor(data.targets, dtype=torch.long), len(data.classes), name)


def _folder(path: str, split: str) -> Dataset:
    """An ImageFolder (one sub-folder per class); ``PATH/train`` and ``PATH/test`` are used when present.

    Images are converted to RGB; when their sizes differ they are resized to 32x32.
    """
    root = Path(path).expanduser()
    if (root / split).is_dir():
        root = root / split
    if not root.is_dir():
        raise DataError(f"folder dataset not found: expected a directory of class folders at {root}")
    from torchvision import datasets, transforms

    try:
        data = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"folder dataset at {root}: {err}") from None
    images, labels = [], []
    for i in range(len(data)):
        try:
            img, label = data[i]
        except OSError as err:
            raise DataError(f"cannot read image {data.samples[i][0]}: {err}") from None
        images.append(img.expand(3, -1, -1) if img.shape[0] == 1 else img[:3])
        labels.append(label)
    if len({tuple(im.shape) for im in images}) > 1:
        resize = transforms.Resize((32, 32), antialias=True)
        images = [resize(im) for im in images]
    x = torch.stack(images)
    return Dataset((x - 0.5) / 0.5, torch.tensor(labels, dtype=torch.long), len(data.classes), f"folder:{path}")


def _subset(data: Dataset, limit: int | None, seed: int, device: torch.device) -> Dataset:
    x, y = data.x, data.y
    if limit is not None and limit < len(data):
        gen = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(data), generator=gen)[:limit]
        x, y = x[keep], y[keep]
    return Dataset(x.to(device), y.to(device), data.num_classes, data.name)


def iter_batches(dataset: Dataset, batch_size: int, batches: int, seed: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
    """``batches`` (x, y) batches of ``batch_size`` from a seeded shuffle (reshuffled each pass)."""
    if batch_size < 1 or batches < 1:
        raise DataError(f"batch size and batch count must be at least 1, got {batch_size} and {batches}")
    n = len(dataset)
    if batch_size > n:
        raise DataError(f"batch size {batch_size} is larger than the {n} samples of {dataset.name}")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    pos = 0
    for _ in range(batches):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        index = order[pos:pos + batch_size].to(dataset.x.device)
        pos += batch_size
        yield dataset.x[index], dataset.y[index]
