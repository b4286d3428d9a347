"""The zoo through its command line: list, info, eval reproducing the published
metrics, the digits demo, and publishing a run."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sysconfig
import time
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
    assert directory.name == "1" and metadata["version"] == 1
    assert (directory.parent / "serving" / "1" / "saved_model.pb").is_file()
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
    newest = published_dir("odenet_mnist")
    assert report["sha"] == json.loads((newest / "metadata.json").read_text())["weights_sha256"]


# `ode-zoo train` on a tiny 2-D flow (seconds): existing run directories, --overwrite,
# the progress shown, Ctrl-C.

def _tiny_flow(tmp_path: Path) -> Path:
    """ffjord_toy_8gaussians with an 8x8 field on 640 training points: 10 steps of 64
    per epoch, a checkpoint every 5, 2 epochs; no thread limit (TF already runs here)."""
    config = load_config("ffjord_toy_8gaussians")
    config["name"] = "tiny_flow"
    config["model"]["config"]["hidden_units"] = [8, 8]
    config["dataset"]["sizes"] = {"train": 640, "validation": 128, "test": 256}
    config["training"].update(epochs=2, batch_size=64, checkpoint_every=5)
    config["training"].pop("threads", None)
    path = tmp_path / "tiny_flow.json"
    path.write_text(json.dumps(config))
    return path


def test_train_refuses_an_existing_run(tmp_path, monkeypatch, capsys):
    config = _tiny_flow(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.weights.h5").write_bytes(b"earlier run")
    with pytest.raises(FileExistsError, match=r"holds a training run \(best.weights.h5\): add "
                       r"--resume to continue it, --overwrite to start over.*--run-dir"):
        main(["train", str(config), "--run-dir", str(run)])
    monkeypatch.setattr("sys.argv", ["ode-zoo", "train", str(config), "--run-dir", str(run)])
    assert main() == 1                                       # the command: one line
    err = capsys.readouterr().err
    assert err.startswith(f"ode-zoo: error: {run} already holds a training run") and (
        err.count("\n") == 1), err
    assert (run / "best.weights.h5").read_bytes() == b"earlier run"
    with pytest.raises(SystemExit):                          # argparse: one or the other
        main(["train", str(config), "--resume", "--overwrite"])


def test_train_overwrite_starts_over_and_shows_solver_counts_and_time_left(tmp_path, capsys):
    config = _tiny_flow(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"another model's checkpoint")
    (run / "history.json").write_text('{"history": [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]}')
    assert main(["train", str(config), "--run-dir", str(run), "--overwrite"]) == 0
    history = json.loads((run / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    out = capsys.readouterr().out
    bar = out.replace("\r", "\n").split("Epoch 2/2")[0]
    assert re.search(r"nfe: \d", bar) and re.search(r"backward_nfe: \d", bar), bar[-2000:]
    assert re.search(r"Epoch 2/2 \(about .+ left at .+ s/step\)", out)
    validation = [l.strip() for l in out.splitlines() if "validation:" in l]
    assert len(validation) == 2 and all(
        l.startswith("validation: nll ") and "loss" not in l and "backward" not in l
        for l in validation), validation
    assert "val_loss" not in history[0] and "val_backward_nfe" not in history[0]
    assert {"loss", "nll", "nfe", "backward_nfe", "val_nll", "val_nfe"} <= set(history[0])


def test_ctrl_c_stops_ode_zoo_train_with_a_checkpoint_to_resume_from(tmp_path):
    config, run = _tiny_flow(tmp_path), tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = shutil.which("ode-zoo", path=os.pathsep.join([sysconfig.get_path("scripts"),
                                                            os.environ.get("PATH", "")]))
    # As from a terminal: a suite run as a background job (`bash .ci/run &`) ignores
    # SIGINT, and a child inherits that; the trainer rightly leaves it ignored then.
    process = subprocess.Popen([command, "train", str(config), "--run-dir", str(run),
                                "--epochs", "200"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not (run / "checkpoint.npz").exists() and process.poll() is None:
        assert time.time() < deadline
        time.sleep(0.1)
    time.sleep(0.5)                                          # somewhere in a later step
    process.send_signal(signal.SIGINT)
    interrupted = time.time()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert time.time() - interrupted < 10
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    line = out.replace("\r", "\n").strip().splitlines()[-1]
    assert line.startswith("Interrupted: saved the checkpoint of epoch ") and (
        f"to {run / 'checkpoint.npz'}; resume with: ode-zoo train {config} --resume "
        f"--run-dir {run} --epochs 200") in line, line
    state = json.loads(np.load(run / "checkpoint.npz")["state"].tobytes())
    assert 0 <= state["step"] <= 10 and state["epoch"] < 200
    epochs = str(state["epoch"] + 1)                         # resume: finish that epoch
    assert main(["train", str(config), "--run-dir", str(run), "--resume", "--epochs",
                 epochs]) == 0
    history = json.loads((run / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, state["epoch"] + 2))


def test_two_fresh_runs_of_one_recipe_give_the_same_weights_and_history(tmp_path):
    config = _tiny_flow(tmp_path)
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        keras.utils.set_random_seed(123 if run == runs[0] else 456)   # the recipe's seed wins
        assert main(["train", str(config), "--run-dir", str(run)]) == 0
    first, second = (json.loads((run / "history.json").read_text())["history"] for run in runs)
    assert first == second
    with np.load(runs[0] / "checkpoint.npz") as a, np.load(runs[1] / "checkpoint.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in set(a.files) - {"state"}:                  # "state": progress and clock
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_export_to_a_relative_path_and_a_failed_check_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def failing_check(*args, **kwargs):
        raise RuntimeError("the serving check failed")

    with monkeypatch.context() as patch:
        patch.setattr("ode_zoo.zoo.publish.check_serving", failing_check)
        with pytest.raises(RuntimeError, match="the serving check failed"):
            main(["export", "ffjord_toy_8gaussians", "--output", "serving"])
    assert not list((tmp_path / "serving").glob("*"))            # nothing half-made
    assert main(["export", "ffjord_toy_8gaussians", "--output", "serving"]) == 0  # retry
    assert (tmp_path / "serving" / "1" / "saved_model.pb").is_file()
