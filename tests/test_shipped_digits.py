"""The 64 MNIST test digits shipped inside the package: they are MNIST's first 64
test images, setup.cfg installs them, and `ode-zoo demo` (flow and digits) falls
back to them with one line on a machine without the MNIST files."""
from __future__ import annotations

import configparser
import glob
from pathlib import Path
from typing import List

import numpy as np
import pytest

import ode_zoo
from ode_zoo.cli import main
from ode_zoo.demos.shipped_digits import SHIPPED, demo_test_digits, shipped_digits

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FALLBACK = "MNIST test set not found"


@pytest.fixture
def no_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """A machine without MNIST: empty data and Keras directories, downloads failing
    (as offline). Returns the list the download attempts are appended to."""
    from ode_zoo.datasets import mnist_idx
    attempts: List[int] = []

    def offline() -> None:
        attempts.append(1)
        raise OSError("offline (blocked by the test)")

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("ODE_ZOO_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(mnist_idx, "_download", offline)
    return attempts


def test_shipped_digits_are_the_first_64_mnist_test_images(mnist_env) -> None:
    from ode_zoo.datasets import load_mnist
    images, labels = shipped_digits()
    test_images, test_labels = load_mnist("test")
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, test_images[:64])
    np.testing.assert_array_equal(labels, test_labels[:64])


def test_setup_cfg_installs_the_digits_and_their_license_note() -> None:
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    globs = parser["options.package_data"]["ode_zoo.demos"].split()
    installed = {f for g in globs for f in glob.glob(g, root_dir=SHIPPED.parent.parent)}
    assert installed == {"assets/mnist_test_64.npz", "assets/README.md"}
    assert "CC BY-SA 3.0" in (SHIPPED.parent / "README.md").read_text()


def test_without_mnist_the_shipped_digits_are_used_with_one_line(no_mnist, capsys) -> None:
    images, labels = demo_test_digits(5)
    np.testing.assert_array_equal(images, shipped_digits()[0][:5])
    assert labels.tolist() == [7, 2, 1, 0, 4] and no_mnist == []     # 5 <= 64: no download
    images, _ = demo_test_digits(100)                                # more: download tried
    assert len(images) == 64 and no_mnist == [1]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith(FALLBACK) for line in lines)
    assert lines[1].endswith("64 instead of 100.")


def test_flow_demo_runs_without_mnist(no_mnist, tmp_path: Path, capsys,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    flow = ode_zoo.load("ffjord_mnist", load_weights=False, blocks_per_scale=1,
                        hidden_filters=[4], num_steps=1,
                        eval_solver={"method": "rk4", "num_steps": 1})
    monkeypatch.setattr(ode_zoo, "load", lambda name: flow)
    output = tmp_path / "flow.png"
    assert main(["demo", "--count", "3", "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == PNG_SIGNATURE
    printed = capsys.readouterr().out
    assert printed.count(FALLBACK) == 1 and "sampled 3 images" in printed
    assert "digits (base-noise" not in printed      # samples of this flow are strokes


def test_digits_demo_runs_without_mnist(no_mnist, tmp_path: Path, capsys,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4,
                         method="rk4", num_steps=1)
    monkeypatch.setattr(ode_zoo, "load", lambda name: model)
    output = tmp_path / "digits.png"
    assert main(["demo", "digits", "--count", "4", "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == PNG_SIGNATURE
    printed = capsys.readouterr().out
    assert printed.count(FALLBACK) == 1 and "of 4 test digits correctly" in printed
