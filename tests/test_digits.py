"""The built-in ``digits`` dataset: real handwritten digits, offline, with a fixed split."""

from __future__ import annotations

import torch

from explorer.data import DATASETS, iter_batches, load_dataset


def test_digits_are_real_labelled_images_with_a_fixed_disjoint_split():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert "digits" in DATASETS
    assert len(train) + len(test) == 1797 and len(test) == 359
    assert train.x.shape[1:] == (1, 32, 32) and train.num_classes == 10
    assert train.x.min() >= -1.0 and train.x.max() <= 1.0
    assert set(train.y.tolist()) == set(range(10)) == set(test.y.tolist())
    # the split does not move with the subset seed, and no test image is a training image
    again = load_dataset("digits", "test", seed=7)
    assert torch.equal(torch.sort(again.y).values, torch.sort(test.y).values)
    flat_train = {tuple(row.tolist()) for row in train.x.flatten(1)[:, ::8]}
    assert not any(tuple(row.tolist()) in flat_train for row in test.x.flatten(1)[:, ::8])


def test_digits_carry_class_signal_a_nearest_centroid_rule_finds():
    """Real data: class means separate the test images far above chance (10 %)."""
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    centroids = torch.stack([train.x[train.y == k].flatten(1).mean(0) for k in range(10)])
    predicted = torch.cdist(test.x.flatten(1), centroids).argmin(1)
    assert (predicted == test.y).float().mean() > 0.8


def test_digits_subsets_and_batches_follow_the_seed():
    a = load_dataset("digits", "train", limit=256, seed=1)
    b = load_dataset("digits", "train", limit=256, seed=1)
    assert len(a) == 256 and torch.equal(a.y, b.y)
    x, y = next(iter_batches(a, 64, 1, seed=0))
    assert x.shape == (64, 1, 32, 32) and y.shape == (64,)
