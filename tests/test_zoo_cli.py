"""The zoo through its command line: list, info, eval reproducing the published
metrics, the digits demo, and publishing a run."""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ode_zoo.cli import main
from ode_zoo.zoo.catalog import published_dir
from ode_zoo.zoo.configs import load_config
from ode_zoo.zoo.evaluate import compare_metrics
from ode_zoo.zoo.publish import publish
from ode_zoo.zoo.recipes import build_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_compare_metrics_flags_differences_and_missing_metrics():
    ok, lines = compare_metrics({"test_accuracy": 0.99, "note": "text"},
                                {"test_accuracy": 0.99})
    assert ok and len(lines) == 1
    ok, lines = compare_metrics({"test_accuracy": 0.99}, {"test_accuracy": 0.98})
    assert not ok and "DIFFERS" in lines[0]
    ok, lines = compare_metrics({"test_loss": 0.1}, {})
    assert not ok and "not measured" in lines[0]


def test_list_and_info_show_the_published_model(capsys):
    assert main(["list"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("odenet_mnist"))
    assert "classifier" in line and "test_accuracy 0.996" in line
    assert main(["info", "odenet_mnist"]) == 0
    info = capsys.readouterr().out
    assert "ODENetClassifier" in info and '"metrics_command": "ode-zoo eval odenet_mnist"' in info


def test_list_shows_the_toy_flows_with_their_nll(capsys):
    assert main(["list"]) == 0
    lines = {l.split()[0]: l for l in capsys.readouterr().out.splitlines()
             if l.startswith("ffjord_toy_")}
    assert sorted(lines) == ["ffjord_toy_2spirals", "ffjord_toy_8gaussians",
                             "ffjord_toy_checkerboard", "ffjord_toy_pinwheel"]
    for name, line in lines.items():
        assert line.split()[1] == "flow"
        assert ("test_nll" in line) == (published_dir(name) is not None), line


def test_unknown_model_lists_the_zoo(capsys):
    with pytest.raises(ValueError, match="available models are.*odenet_mnist"):
        main(["info", "odenet_cifar"])


# The issues' targets for the published classifiers, on the 10,000 test images.
CLASSIFIER_TARGETS = {
    "odenet_mnist": lambda m: m["test_error"] <= 0.006,
    "deq_mnist": lambda m: m["test_accuracy"] >= 0.992 and m["test_forward_steps"] <= 15,
}


@pytest.mark.parametrize("name", sorted(CLASSIFIER_TARGETS))
def test_eval_reproduces_every_published_metric(name, mnist_env, capsys):
    assert main(["eval", name]) == 0
    out = capsys.readouterr().out
    assert "all published metrics reproduced" in out
    metrics = json.loads(out[out.index("{"):out.index("}") + 1])
    assert CLASSIFIER_TARGETS[name](metrics), metrics


def test_digits_demo_writes_a_png(mnist_env, tmp_path, capsys):
    output = tmp_path / "digits.png"
    assert main(["demo", "digits", "--count", "8", "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == PNG_SIGNATURE
    assert "of 8 test digits correctly" in capsys.readouterr().out


def test_publish_writes_an_evaluated_preset_with_a_checked_export(mnist_env, tmp_path):
    config = load_config("odenet_mnist")
    config["model"]["config"].update(filters=8, groups=4, method="rk4", num_steps=1)
    config["training"]["model_overrides"] = {"method": "rk4", "num_steps": 1}
    config_path = tmp_path / "tiny_odenet.json"
    config_path.write_text(json.dumps(config))
    run = tmp_path / "run"
    run.mkdir()
    keras.utils.set_random_seed(0)
    model = build_model(config)
    model(np.zeros((1, 28, 28, 1), np.float32))
    model.save_weights(str(run / "best.weights.h5"))
    (run / "history.json").write_text(json.dumps({
        "history": [{"epoch": 1}], "best": 0.1, "best_epoch": 1, "train_seconds": 36.0,
        "hardware": "test"}))
    directory = publish(str(config_path), run_dir=run, output=tmp_path / "preset")
    metadata = json.loads((directory / "metadata.json").read_text())
    assert 0.0 <= metadata["metrics"]["test_accuracy"] <= 1.0
    assert metadata["metrics"]["test_forward_nfe"] == 4.0            # one rk4 step
    assert metadata["training"]["train_forward_nfe"] == 4.0
    assert metadata["training"]["train_backward_nfe"] == 4.0         # adjoint, one rk4 step
    assert metadata["training"]["wall_clock_hours"] == 0.01
    assert (directory / "serving" / "1" / "saved_model.pb").is_file()
    assert (directory / "training_history.json").is_file()
    assert main(["eval", str(directory)]) == 0                       # reproduces itself


@pytest.mark.parametrize("images,error,match", [
    (np.zeros((2, 32, 32, 1), np.float32), ValueError, r"images of shape \[N, 28, 28, 1\]"),
    (np.zeros((2, 28, 28, 1), np.uint8), TypeError, "float32 raw pixel values"),
    (np.full((2, 28, 28, 1), np.nan, np.float32), Exception, "NaN or inf"),
])
def test_bad_images_get_clear_errors(images, error, match):
    import ode_zoo
    model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4,
                         method="rk4", num_steps=1)
    with pytest.raises(error, match=match):
        model(images)
    with pytest.raises(error, match=match):
        model.predict(images, verbose=0)


def test_published_model_loads_by_name_from_any_directory(tmp_path):
    """In CI the non-editable install is imported: its package data must hold the weights."""
    import os
    import subprocess
    import sys
    script = ("import json, ode_zoo\n"
              "model = ode_zoo.load('odenet_mnist')\n"
              "print(json.dumps({'sha': model.zoo_metadata['weights_sha256'],\n"
              "                  'file': ode_zoo.__file__}))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    published = Path(__file__).resolve().parents[1] / "saved_models" / "odenet_mnist"
    assert report["sha"] == json.loads((published / "metadata.json").read_text())[
        "weights_sha256"]
