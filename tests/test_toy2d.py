"""The FFJORD toy samplers: deterministic per seed, the right shapes and structure."""
from __future__ import annotations

import numpy as np
import pytest

from ode_zoo.datasets.toy2d import TOY_SETS, sample_toy, toy_dataset


@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_shape_dtype_determinism_and_scale(name):
    x = sample_toy(name, 2000, seed=3)
    assert x.shape == (2000, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x, sample_toy(name, 2000, seed=3))
    assert not np.array_equal(x, sample_toy(name, 2000, seed=4))
    assert np.all(np.abs(x.mean(axis=0)) < 0.35), x.mean(axis=0)
    assert 0.3 < x.std() < 3.5
    assert np.abs(x).max() < 6.0


def test_eight_gaussians_has_eight_clusters_on_a_circle():
    x = sample_toy("8gaussians", 4000, seed=0)
    angles = np.round(np.arctan2(x[:, 1], x[:, 0]) / (np.pi / 4)) % 8
    counts = np.bincount(angles.astype(int), minlength=8)
    assert counts.min() > 400                       # 8 clusters of ~500 points
    radius = np.linalg.norm(x, axis=1)
    assert abs(np.median(radius) - 4 / np.sqrt(2)) < 0.1


def test_checkerboard_fills_alternating_cells():
    x = sample_toy("checkerboard", 4000, seed=0)
    assert np.all(np.abs(x) <= 4.0)
    cells = np.floor(x / 2.0).astype(int)
    assert np.all((cells[:, 0] + cells[:, 1]) % 2 == 0)
    assert len({tuple(c) for c in cells}) == 8


def test_pinwheel_has_five_arms():
    x = sample_toy("pinwheel", 5000, seed=0)
    radius = np.linalg.norm(x, axis=1)
    angle = np.arctan2(x[:, 1], x[:, 0])
    near = np.abs(radius - 2.0) < 0.1               # at radius 2 the arms are 5 narrow blobs
    hist, _ = np.histogram(angle[near], bins=40, range=(-np.pi, np.pi))
    peaks = (hist > np.roll(hist, 1)) & (hist >= np.roll(hist, -1)) & (hist > hist.max() / 3)
    assert peaks.sum() == 5


def test_two_spirals_are_point_symmetric():
    x = sample_toy("2spirals", 20000, seed=0)
    hist, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=8, range=[[-4, 4], [-4, 4]])
    flipped = hist[::-1, ::-1]                       # one arm is the other rotated by π
    assert np.abs(hist - flipped).sum() / hist.sum() < 0.1


def test_unknown_name_lists_the_sets():
    with pytest.raises(ValueError, match="8gaussians.*checkerboard"):
        sample_toy("galaxy", 10)


def test_toy_dataset_batches_the_seeded_sample():
    batches = list(toy_dataset("moons", 50, batch_size=20, seed=1))
    assert [b.shape[0] for b in batches] == [20, 20, 10]
    np.testing.assert_array_equal(np.concatenate(batches), sample_toy("moons", 50, seed=1))
