"""MNIST loading: the real files through ODE_ZOO_DATA, documented splits, and
clear errors for missing or corrupt files — never a download in tests."""
import gzip
import shutil

import numpy as np
import pytest

from ode_zoo.datasets import classification_dataset, load_mnist, mnist
from ode_zoo.datasets import mnist_idx as mnist_module


def test_splits_have_documented_sizes_and_do_not_overlap(mnist_env):
    train_x, train_y = load_mnist("train")
    val_x, val_y = load_mnist("validation")
    test_x, test_y = load_mnist("test")
    assert train_x.shape == (55000, 28, 28, 1) and train_x.dtype == np.uint8
    assert val_x.shape == (5000, 28, 28, 1) and test_x.shape == (10000, 28, 28, 1)
    full_x, _ = load_mnist("train_full")
    np.testing.assert_array_equal(full_x[-5000:], val_x)
    assert train_y[:5].tolist() == [5, 0, 4, 1, 9]       # the well-known first labels
    assert test_y[:5].tolist() == [7, 2, 1, 0, 4]
    assert set(np.unique(test_y)) == set(range(10))


def test_unknown_split_lists_the_splits(mnist_env):
    with pytest.raises(ValueError, match="available splits"):
        load_mnist("valid")


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ODE_ZOO_DATA", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline():
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist_module, "_download", offline)
    with pytest.raises(FileNotFoundError) as error:
        load_mnist("test")
    message = str(error.value)
    assert str(tmp_path / "mnist") in message and "ODE_ZOO_DATA" in message
    assert "network unreachable" in message


def test_corrupt_file_is_named(mnist_env, tmp_path, monkeypatch):
    for name in mnist_module.MD5:
        shutil.copy(mnist_env / name, tmp_path / name)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00" * 100))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist("test", data_dir=str(tmp_path))


def test_read_idx_rejects_truncated_files(tmp_path):
    path = tmp_path / "images.gz"
    header = (2051).to_bytes(4, "big") + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path.write_bytes(gzip.compress(header + b"\x00" * 100))
    with pytest.raises(ValueError, match="truncated"):
        mnist_module.read_idx(path)


def test_pipeline_order_is_fixed_per_epoch_and_resumable():
    images = np.arange(20 * 4, dtype=np.uint8).reshape(20, 2, 2, 1)
    labels = np.arange(20)

    def labels_of(**kwargs):
        return [y.numpy().tolist() for _, y in classification_dataset(
            images, labels, 4, shuffle_seed=3, **kwargs)]

    assert labels_of(epoch=0) == labels_of(epoch=0)
    assert labels_of(epoch=0) != labels_of(epoch=1)
    assert labels_of(epoch=1, skip_batches=2) == labels_of(epoch=1)[2:]
    assert sorted(sum(labels_of(epoch=0), [])) == list(range(20))


def test_shift_augmentation_moves_content_and_is_reproducible():
    images = np.zeros((8, 6, 6, 1), np.uint8)
    images[:, 2:4, 2:4] = 255
    run = lambda: [x.numpy() for x, _ in classification_dataset(  # noqa: E731
        images, np.zeros(8), 8, shuffle_seed=0, shift_pixels=2)]
    first, second = run(), run()
    np.testing.assert_array_equal(first[0], second[0])
    assert first[0].sum() == images.sum()                     # nothing cropped away
    assert not np.array_equal(first[0], images.astype(np.float32))


def test_mnist_pipeline_gives_float_raw_pixels_in_batches(mnist_env):
    batches = list(mnist("test", batch_size=4000))
    assert [int(x.shape[0]) for x, _ in batches] == [4000, 4000, 2000]
    images, labels = batches[0]
    assert images.dtype.name == "float32" and images.shape[1:] == (28, 28, 1)
    assert float(images.numpy().max()) == 255.0 and labels.numpy()[:3].tolist() == [7, 2, 1]
