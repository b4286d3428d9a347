"""ODE2VAE's data: rotating MNIST, bouncing balls, CMU mocap (subject 35) and the
MAT-file reader behind it — deterministic, documented shapes, physical oracles."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from ode_zoo.datasets import (bouncing_balls, load_bouncing_balls, load_mnist, load_mocap,
                              load_rotating_mnist, mocap, render_balls, rotate_images,
                              rotating_mnist, simulate_balls)
from ode_zoo.datasets.bouncing_balls import RADIUS, _collide_pairs
from ode_zoo.datasets.mat_file import read_mat


# --- rotation -------------------------------------------------------------------------

def test_rotation_by_zero_is_the_identity_and_by_quarter_turns_is_rot90():
    images = np.random.default_rng(0).random((3, 6, 6, 2))
    np.testing.assert_allclose(rotate_images(images, 0.0), images, atol=1e-12)
    for quarter_turns in (1, 2, 3, 4):
        np.testing.assert_allclose(rotate_images(images, 90.0 * quarter_turns),
                                   np.rot90(images, quarter_turns, axes=(1, 2)), atol=1e-9)


def test_rotation_turns_counterclockwise_as_displayed():
    image = np.zeros((1, 3, 3))
    image[0, 1, 2] = 1.0                                  # right of the centre
    turned = rotate_images(image, 90.0)[0]
    assert turned[0, 1] == pytest.approx(1.0)             # now above it (row 0 is the top)
    assert turned.sum() == pytest.approx(1.0)


def test_rotation_by_any_angle_keeps_the_ink_of_a_centred_blob():
    rows, cols = np.mgrid[:28, :28]
    blob = np.exp(-((rows - 13.5) ** 2 + (cols - 10.0) ** 2) / 8.0)[None]
    for degrees in (10.0, 37.5, 200.0):
        turned = rotate_images(blob, degrees)
        assert turned.sum() == pytest.approx(blob.sum(), rel=0.01)
        centre_row = (turned[0] * rows).sum() / turned.sum()
        centre_col = (turned[0] * cols).sum() / turned.sum()
        angle = np.deg2rad(degrees)                       # blob centre 3.5 px left of the middle
        assert centre_col == pytest.approx(13.5 - 3.5 * np.cos(angle), abs=0.05)
        assert centre_row == pytest.approx(13.5 + 3.5 * np.sin(angle), abs=0.05)


# --- rotating MNIST -------------------------------------------------------------------

def test_rotating_mnist_test_split_is_every_test_three_turned_through_16_frames(mnist_env):
    sequences = load_rotating_mnist("test")
    images, labels = load_mnist("test")
    threes = images[labels == 3]
    assert sequences.shape == (1010, 16, 28, 28, 1) and sequences.dtype == np.uint8
    np.testing.assert_array_equal(sequences[:, 0], threes)           # frame 0: no rotation
    for k in (4, 8, 12):                                             # 90°, 180°, 270°
        np.testing.assert_array_equal(sequences[:, k], np.rot90(threes, k // 4, axes=(1, 2)))
    k = 3                                                            # 67.5°
    expected = np.clip(np.rint(rotate_images(threes, 360.0 * k / 16)), 0, 255)
    np.testing.assert_array_equal(sequences[:, k], expected.astype(np.uint8))
    ink = sequences.reshape(1010, 16, -1).astype(float).sum(-1)
    np.testing.assert_allclose(ink, ink[:, :1] * np.ones((1, 16)), rtol=0.05)
    np.testing.assert_array_equal(sequences, load_rotating_mnist("test"))   # deterministic


def test_rotating_mnist_validation_comes_from_the_last_5000_training_images(mnist_env):
    sequences = load_rotating_mnist("validation")
    images, labels = load_mnist("validation")
    assert sequences.shape == (509, 16, 28, 28, 1)
    np.testing.assert_array_equal(sequences[:, 0], images[labels == 3])


def test_rotating_mnist_pipeline_gives_raw_pixels_in_a_fixed_order_per_epoch(mnist_env):
    first = [b.numpy() for b in rotating_mnist("validation", batch_size=200, shuffle_seed=1)]
    again = [b.numpy() for b in rotating_mnist("validation", batch_size=200, shuffle_seed=1)]
    other = next(iter(rotating_mnist("validation", batch_size=200, shuffle_seed=1, epoch=1)))
    assert [b.shape for b in first] == [(200, 16, 28, 28, 1)] * 2 + [(109, 16, 28, 28, 1)]
    assert first[0].dtype == np.float32 and first[0].max() == 255.0
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other.numpy())
    assert sorted(np.concatenate(first).sum(axis=(1, 2, 3, 4)).tolist()) == sorted(
        load_rotating_mnist("validation").sum(axis=(1, 2, 3, 4), dtype=float).tolist())


def test_rotating_mnist_rejects_unknown_splits():
    with pytest.raises(ValueError, match=r"available splits are \['train', 'validation', 'test'\]"):
        load_rotating_mnist("valid")


# --- bouncing balls -------------------------------------------------------------------

def test_bouncing_balls_are_deterministic_and_extendable():
    x, v = simulate_balls(6, num_frames=30, seed=4)
    x_again, v_again = simulate_balls(6, num_frames=30, seed=4)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(v, v_again)
    np.testing.assert_array_equal(simulate_balls(3, num_frames=30, seed=4)[0], x[:3])
    assert not np.array_equal(simulate_balls(6, num_frames=30, seed=5)[0], x)
    frames = load_bouncing_balls("validation", num_sequences=3)
    assert frames.shape == (3, 20, 32, 32, 1) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, load_bouncing_balls("validation", num_sequences=3))


def test_balls_stay_inside_the_walls_and_conserve_kinetic_energy():
    x, v = simulate_balls(200, num_frames=60, seed=0)
    assert x.min() >= RADIUS - 1e-9 and x.max() <= 1 - RADIUS + 1e-9
    energy = 0.5 * np.sum(v ** 2, axis=(2, 3))                    # equal unit masses
    np.testing.assert_allclose(energy, energy[:, :1] * np.ones((1, 60)), rtol=1e-9)
    speeds = np.linalg.norm(v, axis=-1)
    collided = np.abs(np.diff(speeds, axis=1)).max(axis=(1, 2)) > 1e-3
    assert collided.sum() > 20                 # speeds change only in ball–ball collisions
    gaps = np.linalg.norm(x[:, :, :, None] - x[:, :, None], axis=-1)[:, :, [0, 0, 1], [1, 2, 2]]
    assert gaps.min() > 2 * RADIUS * 0.8                           # no deep overlaps


def test_a_head_on_collision_of_equal_masses_swaps_velocities():
    x = np.array([[[0.40, 0.5], [0.59, 0.5]]])                      # overlapping by 0.01
    v = np.array([[[0.05, 0.0], [-0.02, 0.0]]])
    _collide_pairs(x, v, radius=0.1)
    np.testing.assert_allclose(v, [[[-0.02, 0.0], [0.05, 0.0]]])
    np.testing.assert_allclose(x[0, 1, 0] - x[0, 0, 0], 0.2)        # pushed apart to touch


def test_rendered_balls_are_bright_discs_where_the_balls_are():
    positions = np.array([[[[0.25, 0.75], [0.7, 0.3]]]])            # x (columns), y (rows)
    frame = render_balls(positions, radius=0.1, size=32)[0, 0, :, :, 0].astype(float)
    assert frame[24, 8] == 255 and frame[9, 22] == 255 and frame[0, 31] == 0
    left = frame[:, :16]
    rows, cols = np.mgrid[:32, :16]
    assert (left * cols).sum() / left.sum() == pytest.approx(0.25 * 32 - 0.5, abs=0.05)
    assert (left * rows).sum() / left.sum() == pytest.approx(0.75 * 32 - 0.5, abs=0.05)
    area = (frame > 127).sum() / 2                                   # per ball, in pixels
    assert area == pytest.approx(np.pi * (0.1 * 32) ** 2, rel=0.15)


def test_bouncing_balls_pipeline_and_bad_arguments():
    batch = next(iter(bouncing_balls("test", batch_size=4, num_sequences=6)))
    assert batch.shape == (4, 20, 32, 32, 1) and batch.dtype.name == "float32"
    with pytest.raises(ValueError, match="available splits"):
        load_bouncing_balls("dev")
    with pytest.raises(ValueError, match="cover over 40%"):
        simulate_balls(1, num_balls=5, radius=0.2)


# --- MAT files and mocap --------------------------------------------------------------

def _element(data_type: int, payload: bytes) -> bytes:
    return struct.pack("<II", data_type, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _matrix(name: str, array: np.ndarray, array_class: int, data_type: int, dtype: str,
            flags: int = 0) -> bytes:
    body = (_element(6, struct.pack("<II", array_class | flags, 0))
            + _element(5, np.array(array.shape, "<i4").tobytes())
            + _element(1, name.encode())
            + _element(data_type, np.asarray(array, dtype).tobytes(order="F")))
    return _element(14, body)


def _mat_file(path: Path, *elements: bytes, version: bytes = b"\x00\x01") -> Path:
    header = b"MATLAB 5.0 MAT-file, written by a test".ljust(116) + b"\0" * 8 + version + b"IM"
    path.write_bytes(header + b"".join(elements))
    return path


def test_mat_reader_reads_plain_and_compressed_numeric_arrays(tmp_path):
    doubles = np.arange(24.0).reshape(2, 3, 4) / 7
    shorts = np.array([[1, -2, 3]], np.int16)
    small = np.array([[0, 1, 2], [250, 4, 5]], np.float64)           # doubles stored as uint8
    flags = np.array([[True, False]])
    compressed = zlib.compress(_matrix("packed", small, 6, 2, "<u1"))
    path = _mat_file(tmp_path / "a.mat",
                     _matrix("doubles", doubles, 6, 9, "<f8"),
                     _matrix("shorts", shorts, 10, 3, "<i2"),
                     struct.pack("<II", 15, len(compressed)) + compressed,
                     _matrix("flags", flags, 9, 2, "<u1", flags=0x0200))
    arrays = read_mat(path)
    assert list(arrays) == ["doubles", "shorts", "packed", "flags"]
    np.testing.assert_array_equal(arrays["doubles"], doubles)
    assert arrays["shorts"].dtype == np.int16 and arrays["shorts"].tolist() == [[1, -2, 3]]
    assert arrays["packed"].dtype == np.float64
    np.testing.assert_array_equal(arrays["packed"], small)
    assert arrays["flags"].dtype == bool and arrays["flags"].tolist() == [[True, False]]


def test_mat_reader_names_what_it_cannot_read(tmp_path):
    text = _mat_file(tmp_path / "text.mat", _matrix("label", np.array([[104, 105]]), 4, 4, "<u2"))
    with pytest.raises(ValueError, match="'label' is a char array"):
        read_mat(text)
    hdf5 = _mat_file(tmp_path / "new.mat", version=b"\x00\x02")
    with pytest.raises(ValueError, match="v7.3"):
        read_mat(hdf5)
    truncated = tmp_path / "cut.mat"
    truncated.write_bytes(_mat_file(tmp_path / "whole.mat", _matrix(
        "x", np.ones((5, 5)), 6, 9, "<f8")).read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated"):
        read_mat(truncated)


def test_mocap_has_the_published_shapes(mocap_dir, monkeypatch):
    monkeypatch.setenv("ODE_ZOO_DATA", str(mocap_dir.parent))
    shapes = {split: load_mocap(split).shape for split in ("train", "validation", "test")}
    assert shapes == {"train": (16, 300, 50), "validation": (3, 300, 50), "test": (4, 300, 50)}
    train = load_mocap("train")
    assert train.dtype == np.float32 and np.isfinite(train).all()
    np.testing.assert_array_equal(train, load_mocap("train"))
    assert abs(train.mean()) < 0.1 and 4.0 < train.std() < 8.0     # centred joint angles
    steps = np.abs(np.diff(train, axis=1)).mean()                   # frames in time order
    assert steps < 0.2 * np.abs(train - train.mean(axis=1, keepdims=True)).mean()
    batches = [b.shape for b in mocap("train", batch_size=10, data_dir=str(mocap_dir))]
    assert batches == [(10, 300, 50), (6, 300, 50)]


def test_mocap_reader_agrees_with_scipy(mocap_dir):
    scipy_io = pytest.importorskip("scipy.io")
    ours = read_mat(mocap_dir / "mocap35.mat")
    theirs = scipy_io.loadmat(str(mocap_dir / "mocap35.mat"))
    for name in ("Xtr", "Xval", "Xtest"):
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_missing_mocap_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("ODE_ZOO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(FileNotFoundError) as error:
        load_mocap("test")
    message = str(error.value)
    for place in (tmp_path / "data" / "ode2vae", tmp_path / "keras" / "datasets" / "ode2vae"):
        assert str(place) in message
    assert "ODE_ZOO_DATA" in message
    with pytest.raises(ValueError, match=r"available splits are \['train', 'validation', 'test'\]"):
        load_mocap("val")
