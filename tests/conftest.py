"""Shared pytest set-up: quiet, two-thread TensorFlow, the ``slow`` marker and data fixtures."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(2)

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--runslow``; ``ODE_ZOO_SLOW=1`` in the environment does the same."""
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker."""
    config.addinivalue_line(
        "markers", "slow: long test, run only with --runslow or ODE_ZOO_SLOW=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` tests unless they were asked for."""
    if config.getoption("--runslow") or os.environ.get("ODE_ZOO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow or ODE_ZOO_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The MNIST idx files: ``$ODE_ZOO_DATA/mnist``, else ``<repo>/../shared/data/mnist``.

    Skips the test when neither exists.

    Example:
        def test_reads(mnist_dir):
            assert (mnist_dir / "t10k-labels-idx1-ubyte.gz").exists()
    """
    candidates = []
    if "ODE_ZOO_DATA" in os.environ:
        candidates.append(Path(os.environ["ODE_ZOO_DATA"]) / "mnist")
    candidates.append(REPO_ROOT.parent / "shared" / "data" / "mnist")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    pytest.skip(
        "MNIST not found: looked in " + ", ".join(str(c) for c in candidates)
        + "; set ODE_ZOO_DATA to a folder holding mnist/"
    )


@pytest.fixture(scope="session")
def mocap_dir() -> Path:
    """The folder of mocap35.mat: $ODE_ZOO_DATA/ode2vae, else <repo>/../shared/data/ode2vae.

    Skips the test when neither holds it."""
    candidates = [REPO_ROOT.parent / "shared" / "data" / "ode2vae"]
    if "ODE_ZOO_DATA" in os.environ:
        candidates.insert(0, Path(os.environ["ODE_ZOO_DATA"]) / "ode2vae")
    for candidate in candidates:
        if (candidate / "mocap35.mat").is_file():
            return candidate
    pytest.skip("mocap35.mat not found: looked in " + ", ".join(map(str, candidates))
                + "; set ODE_ZOO_DATA to a folder holding ode2vae/mocap35.mat")


PHYSIONET_FILES = ("set-a.tar.gz", "set-b.tar.gz", "Outcomes-a.txt", "Outcomes-b.txt")


@pytest.fixture(scope="session")
def physionet_dir() -> Path:
    """The folder of the four PhysioNet 2012 files: $ODE_ZOO_DATA/physionet2012, else
    <repo>/../shared/data/physionet2012. Skips the test when neither holds them."""
    candidates = [REPO_ROOT.parent / "shared" / "data" / "physionet2012"]
    if "ODE_ZOO_DATA" in os.environ:
        candidates.insert(0, Path(os.environ["ODE_ZOO_DATA"]) / "physionet2012")
    for candidate in candidates:
        if all((candidate / name).is_file() for name in PHYSIONET_FILES):
            return candidate
    pytest.skip("PhysioNet 2012 not found: looked for " + ", ".join(PHYSIONET_FILES) + " in "
                + ", ".join(map(str, candidates))
                + "; set ODE_ZOO_DATA to a folder holding physionet2012/")


def _no_download():
    raise AssertionError("tests must not download")


@pytest.fixture
def mnist_env(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`mnist_dir`, found by ode_zoo through ``ODE_ZOO_DATA``, with the Keras download
    replaced by a failure (tests never download)."""
    from ode_zoo.datasets import mnist_idx
    monkeypatch.setenv("ODE_ZOO_DATA", str(mnist_dir.parent))
    monkeypatch.setattr(mnist_idx, "_download", _no_download)
    return mnist_dir
