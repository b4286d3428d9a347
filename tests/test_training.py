"""The training loop: checkpoints are atomic and compatible-checked, and a run
killed with SIGKILL resumes to exactly the weights of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from ode_zoo.datasets import classification_dataset
from ode_zoo.training import (IncompatibleCheckpointError, Trainer, load_checkpoint,
                              save_checkpoint)

SCRIPT = textwrap.dedent("""
    import os, sys, json
    import numpy as np, keras, tensorflow as tf
    from ode_zoo.training import Trainer
    from ode_zoo.datasets import classification_dataset
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(256, 6, 6, 1)).astype(np.uint8)
    y = (x.reshape(256, -1).mean(1) > 127).astype(np.int64)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    delay = float(os.environ.get("STEP_DELAY", "0"))
    def slowly(images):
        import time
        time.sleep(delay)
        return images
    def data(epoch, skip):
        ds = classification_dataset(x, y, 16, shuffle_seed=1, epoch=epoch, skip_batches=skip,
                                    drop_remainder=True)
        return ds.map(lambda a, b: (tf.ensure_shape(
            tf.numpy_function(slowly, [a], tf.float32), a.shape), b)) if delay else ds
    trainer = Trainer(model, data, classification_dataset(x, y, 64), sys.argv[1], epochs=3,
                      steps_per_epoch=16, checkpoint_every=4, verbose=0)
    trainer.fit(resume=True)
    np.save(os.path.join(sys.argv[1], "final.npy"),
            np.concatenate([v.numpy().ravel() for v in model.weights]))
""")


def _run(run_dir, env=None, wait=True):
    env = {**os.environ, **(env or {})}
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(run_dir)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-2000:]
    return process


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path):
    _run(tmp_path / "straight")
    killed = tmp_path / "killed"
    process = _run(killed, env={"STEP_DELAY": "0.2"}, wait=False)   # epochs 2-3 take >= 6 s
    deadline = time.time() + 240
    while time.time() < deadline:      # kill once a mid-run checkpoint exists
        history = killed / "history.json"
        if history.exists() and json.loads(history.read_text())["history"]:
            break
        time.sleep(0.2)
    time.sleep(1.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "final.npy").exists(), "the run ended before it could be killed"
    state = json.loads(np.load(killed / "checkpoint.npz")["state"].tobytes())
    assert (state["epoch"], state["step"]) > (1, 0)          # killed mid-epoch 2
    _run(killed)
    np.testing.assert_array_equal(np.load(killed / "final.npy"),
                                  np.load(tmp_path / "straight" / "final.npy"))
    history = json.loads((killed / "history.json").read_text())
    assert [h["epoch"] for h in history["history"]] == [1, 2, 3]
    assert (killed / "best.weights.h5").exists()


def test_resume_into_a_model_without_variables_yet(tmp_path):
    """A subclassed model (or one without an Input) has no variables until it is
    built: the trainer builds it before loading the checkpoint."""
    x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)

    def data(epoch, skip):
        return classification_dataset(x, y, 8, shuffle_seed=0, epoch=epoch, skip_batches=skip,
                                      drop_remainder=True)

    def train(run_dir, epochs, seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
        model.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        assert not model.variables
        Trainer(model, data, None, str(run_dir), epochs=epochs, steps_per_epoch=4,
                verbose=0).fit(resume=True)
        return [v.numpy() for v in model.weights]

    straight = train(tmp_path / "straight", 2, seed=0)
    train(tmp_path / "resumed", 1, seed=0)
    resumed = train(tmp_path / "resumed", 2, seed=1)     # another init: only a resume matches
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def _model(width):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(width)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    model = _model(2)
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), verbose=0)
    path = str(tmp_path / "checkpoint.npz")
    save_checkpoint(path, model, {"epoch": 4})
    other = _model(2)
    assert load_checkpoint(path, other) == {"epoch": 4}
    for a, b in zip(model.variables + model.optimizer.variables,
                    other.variables + other.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_incompatible_checkpoint_names_the_file(tmp_path):
    path = str(tmp_path / "checkpoint.npz")
    save_checkpoint(path, _model(2), {})
    with pytest.raises(IncompatibleCheckpointError, match="checkpoint.npz.*shape"):
        load_checkpoint(path, _model(5))
    (tmp_path / "broken.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(IncompatibleCheckpointError, match="broken.npz"):
        load_checkpoint(str(tmp_path / "broken.npz"), _model(2))
