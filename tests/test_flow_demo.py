"""ffjord_mnist around the model: its serving endpoints (log_prob with bits/dim,
sample), `ode-zoo demo flow`, `ode-zoo sample` of an MNIST flow and the
fine-tuning example, all on a tiny untrained flow."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ode_zoo
from ode_zoo.cli import main
from ode_zoo.demos.flow_samples import image_samples, write_samples
from ode_zoo.demos.image_grid import tile_images
from ode_zoo.demos.mnist_flow import run_flow_demo
from ode_zoo.zoo.catalog import best_image_flow, published_dir
from ode_zoo.zoo.export import endpoint_outputs
from ode_zoo.zoo.serving_checks import check_serving, check_static

REPO_ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = dict(blocks_per_scale=1, hidden_filters=[8], num_steps=1, eval_solver={"method": "rk4",
            "num_steps": 1})


@pytest.fixture(scope="module")
def flow():
    """A tiny ffjord_mnist whose zero-initialized last convolutions got random weights
    (an untrained model is the identity flow)."""
    model = ode_zoo.load("ffjord_mnist", load_weights=False, **TINY)
    rng = np.random.default_rng(0)
    for field in model.fields:
        for weight in (field.convs[-1].conv.kernel, field.convs[-1].conv.bias):
            weight.assign(0.3 * rng.normal(size=weight.shape).astype(np.float32))
    return model


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1)).astype(np.float32)


def test_log_prob_endpoint_returns_the_models_bits_per_dim_of_the_same_log_prob(flow):
    images = _pixels(3)
    for name in ("log_prob", "serving_default"):
        outputs = endpoint_outputs(flow, name, {"x": images})
        assert sorted(outputs) == ["bits_per_dim", "log_prob"]
        np.testing.assert_allclose(outputs["log_prob"], flow.log_prob(images), rtol=1e-6)
        np.testing.assert_allclose(outputs["bits_per_dim"], flow.bits_per_dim(images),
                                   rtol=1e-6)
        np.testing.assert_allclose(outputs["bits_per_dim"],
                                   -outputs["log_prob"] / (784 * math.log(2)), rtol=1e-6)


def test_toy_flows_keep_log_prob_alone() -> None:
    toy = ode_zoo.load("ffjord_toy_8gaussians", load_weights=False, hidden_units=[4],
                       eval_solver={"method": "rk4", "num_steps": 1})
    assert list(endpoint_outputs(toy, "log_prob", {"x": np.zeros((2, 2), np.float32)})) == [
        "log_prob"]


def test_image_flow_export_serves_bits_per_dim_and_pixel_samples(flow, tmp_path: Path):
    version_dir = ode_zoo.export(flow, tmp_path)
    assert check_static(version_dir) == {
        "serving_default": {"inputs": ["x"], "outputs": ["bits_per_dim", "log_prob"]},
        "log_prob": {"inputs": ["x"], "outputs": ["bits_per_dim", "log_prob"]},
        "sample": {"inputs": ["z"], "outputs": ["x"]}}
    images = _pixels(4, seed=1)
    noise = np.random.default_rng(2).standard_normal((4, 784)).astype(np.float32)
    check_serving(version_dir, flow, {"serving_default": {"x": images},
                                      "log_prob": {"x": images}, "sample": {"z": noise}})
    samples = endpoint_outputs(flow, "sample", {"z": noise})["x"]
    assert samples.shape == (4, 28, 28, 1) and 0 <= samples.min() and samples.max() <= 255
    np.testing.assert_array_equal(samples, np.floor(samples))


def test_tiles_fill_rows_and_leave_gaps() -> None:
    images = np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1)
    np.testing.assert_array_equal(tile_images(images, columns=2, gap=1),
                                  [[0, 128, 1], [128, 128, 128], [2, 128, 128]])
    with pytest.raises(ValueError, match=r"\[N, H, W, 1\]"):
        tile_images(np.zeros((2, 4, 4)))


def test_samples_are_seeded(flow):
    np.testing.assert_array_equal(image_samples(flow, 2, seed=3), image_samples(flow, 2, seed=3))
    assert not np.array_equal(image_samples(flow, 2, seed=3), image_samples(flow, 2, seed=4))


def test_flow_demo_draws_samples_and_measures_test_digits(flow, mnist_env, tmp_path: Path,
                                                           capsys):
    from ode_zoo.datasets import load_mnist
    output = tmp_path / "new_dir" / "flow.png"
    result = run_flow_demo(output, count=3, seed=1, model=flow)
    assert output.read_bytes()[:8] == PNG_SIGNATURE
    test_digits = load_mnist("test")[0][:3].astype(np.float32)
    np.testing.assert_allclose(result.bits_per_dim, np.mean(flow.bits_per_dim(test_digits)),
                               rtol=1e-6)
    published = flow.zoo_metadata.get("metrics", {}).get("test_bits_per_dim")
    assert result.count == 3 and result.published_bits_per_dim == published
    printed = capsys.readouterr().out
    assert "sampled 3 images (base-noise seed 1)" in printed
    assert "measured bits/dim of 3 test digits" in printed


def test_demo_command_defaults_to_the_flow(flow, mnist_env, tmp_path: Path, capsys,
                                           monkeypatch: pytest.MonkeyPatch):
    loaded = []
    monkeypatch.setattr(ode_zoo, "load", lambda name: loaded.append(name) or flow)
    output = tmp_path / "flow.png"
    assert main(["demo", "--count", "2", "--output", str(output)]) == 0
    best = best_image_flow("mnist")
    assert loaded == [best.name] and output.read_bytes()[:8] == PNG_SIGNATURE
    printed = capsys.readouterr().out
    assert f"showing {best.name}, the published MNIST flow whose samples read most" in printed
    assert f"{best.name} bits/dim: published (test set)" in printed
    measured = re.search(r"published \(test set\) (not published|\d\.\d{3}); measured here "
                         r"on 2 test digits (\S+)", printed)
    assert measured and math.isfinite(float(measured.group(2))), printed


def test_the_demo_flow_is_the_published_mnist_flow_with_the_most_confident_samples():
    shares = {name: json.loads((published_dir(name) / "metadata.json").read_text())
              ["metrics"]["test_sample_confident_share"]
              for name in ("ffjord_mnist", "cfm_mnist") if published_dir(name) is not None}
    if not shares:
        pytest.skip("no MNIST flow is published in this checkout")
    best = best_image_flow("mnist")
    assert best.name == max(shares, key=shares.get)
    assert best.confident_share == shares[best.name]
    assert set(best.others) == set(shares) - {best.name}
    with pytest.raises(LookupError, match="No published toy2d image flow"):
        best_image_flow("toy2d")


def test_sample_command_draws_an_mnist_flow(flow, mnist_env, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ode_zoo, "load", lambda name, version=None: flow)
    output = tmp_path / "mnist.png"
    assert main(["sample", "ffjord_mnist", "--num", "4", "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == PNG_SIGNATURE
    assert write_samples(flow, tmp_path / "again.png", num=2) == str(tmp_path / "again.png")


def test_finetune_example_runs_on_a_tiny_flow(mnist_env, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "finetune_ffjord_mnist.py"), "--tiny",
         "--digit", "3", "--steps", "2", "--batch-size", "8", "--test-count", "8",
         "--output", str(tmp_path / "preset")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = re.search(r"bits/dim of 8 test 3s: before (\S+), after (\S+), "
                       r"(\S+) (better|worse)", done.stdout)
    assert result, done.stdout
    before, after, change = (float(g.rstrip(",")) for g in result.groups()[:3])
    assert math.isfinite(before) and math.isfinite(after)
    assert change == pytest.approx(abs(before - after), abs=2e-3)
    assert result.group(4) == ("better" if after < before else "worse")
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["fine_tuning"]["digit"] == 3
    assert metadata["fine_tuning"]["test_bits_per_dim_after"] == pytest.approx(after, abs=1e-3)


@pytest.mark.skipif(published_dir("ffjord_mnist") is None, reason="ffjord_mnist not published")
def test_published_ffjord_mnist_meets_its_target_on_test_digits(mnist_env) -> None:
    """The full evaluation (10,000 test digits, dopri5) takes minutes: `ode-zoo eval
    ffjord_mnist` reproduces it; here the stored number meets the issue's target and
    the weights give it on the first 200 test digits (their mean is within 0.1)."""
    from ode_zoo.datasets import load_mnist
    model = ode_zoo.load("ffjord_mnist")
    stored = model.zoo_metadata["metrics"]["test_bits_per_dim"]
    assert stored <= 1.5
    digits = load_mnist("test")[0][:200].astype(np.float32)
    assert abs(float(np.mean(model.bits_per_dim(digits))) - stored) < 0.1
