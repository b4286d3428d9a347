"""The training loop: checkpoints are atomic and compatible-checked, and a run
killed with SIGKILL resumes to exactly the weights of an uninterrupted run."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.datasets import classification_dataset
from ode_zoo.training import (IncompatibleCheckpointError, Trainer, TrainingInterrupted,
                              load_checkpoint, save_checkpoint)
from ode_zoo.training.distribute import build_state

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


# Ctrl-C, exact resumption of a running epoch's metrics, stale temporary files and
# existing run directories. A tiny classifier; the interrupt is a KeyboardInterrupt
# raised around the k-th step, before the step ran or after its update (and before the
# loop counted it), the two places a real Ctrl-C can land.

def _classifier_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (np.sin(3 * x).sum(1) > 0).astype(np.int64)

    def data(epoch, skip):
        return classification_dataset(x, y, 8, shuffle_seed=1, epoch=epoch, skip_batches=skip,
                                       drop_remainder=True)

    return data, classification_dataset(x, y, 32)


def _trainer(run_dir, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"),
                              keras.layers.Dense(2)])
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data, validation = _classifier_data()
    options = dict(epochs=2, steps_per_epoch=8, checkpoint_every=100, verbose=0)
    options.update(kwargs)
    return Trainer(model, data, validation, str(run_dir), **options)


def _interrupt_at(trainer, call, when, error=KeyboardInterrupt):
    """Make the `call`-th step (1-based, over the whole run) raise `error`."""
    step, calls = trainer._train_step, []

    def interrupted_step(batch):
        calls.append(1)
        if len(calls) == call and when == "before":
            raise error()
        logs = step(batch)
        if len(calls) == call:
            raise error()
        return logs

    trainer._train_step = interrupted_step


def _weights(trainer):
    return [v.numpy() for v in trainer.model.weights]


def _history(run_dir):
    return json.loads((run_dir / "history.json").read_text())["history"]


def _state(run_dir):
    return json.loads(np.load(run_dir / "checkpoint.npz")["state"].tobytes())


@pytest.mark.parametrize("when", ["before", "after"])
def test_ctrl_c_saves_the_current_step_and_resumes_exactly(tmp_path, capsys, when):
    straight = _trainer(tmp_path / "straight")
    straight.fit()
    run = tmp_path / "interrupted"
    trainer = _trainer(run, resume_command="ode-zoo train tiny --resume")
    _interrupt_at(trainer, 11, when)          # epoch 2: steps 1-2 done, the 3rd interrupted
    with pytest.raises(TrainingInterrupted) as interrupt:
        trainer.fit()
    assert isinstance(interrupt.value, KeyboardInterrupt)
    step = 2 if when == "before" else 3       # after: the update is in the weights, so counted
    state = _state(run)
    assert (state["epoch"], state["step"]) == (1, step)
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and str(run / "checkpoint.npz") in line, line
    assert line.endswith("resume with: ode-zoo train tiny --resume"), line
    assert f"epoch 2, step {step}/8" in line
    resumed = _trainer(run, seed=1)           # another init: only the checkpoint can match
    resumed.fit(resume=True)
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_array_equal(a, b)
    assert _history(run) == _history(tmp_path / "straight")


def test_ctrl_c_during_validation_resumes_with_the_epochs_training_metrics(tmp_path):
    straight = _trainer(tmp_path / "straight")
    straight.fit()
    run = tmp_path / "interrupted"
    trainer = _trainer(run)
    validate, calls = trainer._validate, []

    def interrupted_validation():
        calls.append(1)
        if len(calls) == 2:                   # epoch 2's validation
            validate()
            raise KeyboardInterrupt
        return validate()

    trainer._validate = interrupted_validation
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    state = _state(run)
    assert (state["epoch"], state["step"], len(state["history"])) == (1, 8, 1)
    resumed = _trainer(run, seed=1)
    resumed.fit(resume=True)
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_array_equal(a, b)
    assert _history(run) == _history(tmp_path / "straight")


def test_a_resumed_epoch_records_the_averages_of_an_uninterrupted_one(tmp_path):
    """The checkpoint holds the running epoch's metric totals and counts: a crash
    (no Ctrl-C checkpoint) resumed from the mid-epoch checkpoint at step 3 of epoch 2
    averages all 8 steps of that epoch, not the 5 after the resume."""
    _trainer(tmp_path / "straight", checkpoint_every=3).fit()
    run = tmp_path / "crashed"
    trainer = _trainer(run, checkpoint_every=3)
    _interrupt_at(trainer, 13, "before", error=RuntimeError)   # after the step-3 checkpoint
    with pytest.raises(RuntimeError):
        trainer.fit()
    assert (_state(run)["epoch"], _state(run)["step"]) == (1, 3)
    model = _trainer(run).model
    build_state(model, _classifier_data()[0](0, 0).element_spec)   # as the trainer does
    load_checkpoint(str(run / "checkpoint.npz"), model)
    loss, accuracy = model.metrics[0], model.metrics[1].metrics[0]
    assert (float(loss.count.numpy()), float(accuracy.count.numpy())) == (3 * 8.0, 3 * 8.0)
    _trainer(run, seed=1, checkpoint_every=3).fit(resume=True)
    assert _history(run) == _history(tmp_path / "straight")


def test_stale_temporary_files_are_removed_on_the_next_start(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead, alive = int(ended.stdout), os.getppid()
    run = tmp_path / "run"
    run.mkdir()
    stale = [f"checkpoint.npz.tmp-{dead}", f"history.json.tmp-{dead}", f"tmp-{dead}.weights.h5"]
    kept = [f"checkpoint.npz.tmp-{alive}", "notes.tmp-x.txt"]
    for name in stale + kept:
        (run / name).write_bytes(b"partial")
    _trainer(run, epochs=1).fit(resume=True)
    assert sorted(f for f in os.listdir(run) if "tmp" in f) == sorted(kept)


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from ode_zoo.training import checkpoints

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(str(tmp_path / "checkpoint.npz"), _model(2), {})
    assert os.listdir(tmp_path) == []


def test_an_existing_run_is_kept_unless_resumed_or_overwritten(tmp_path):
    run = tmp_path / "run"
    _trainer(run, epochs=1).fit()
    before = (run / "checkpoint.npz").read_bytes()
    with pytest.raises(FileExistsError, match=r"already holds a training run \(checkpoint.npz, "
                       r"best.weights.h5\).*resume=True.*overwrite=True"):
        _trainer(run, epochs=1).fit()
    assert (run / "checkpoint.npz").read_bytes() == before
    (run / "history.json").write_text('{"history": [{"epoch": 7}]}')
    _trainer(run, seed=1, epochs=1).fit(overwrite=True)        # starts over
    assert [h["epoch"] for h in _history(run)] == [1]
    assert (run / "checkpoint.npz").read_bytes() != before
    with pytest.raises(ValueError, match="one of them"):
        _trainer(run).fit(resume=True, overwrite=True)


class CountingModel(keras.Model):
    """Logs a loss, the evaluation counts `nfe` (training and validation) and
    `backward_nfe` (training only) like the zoo's ODE models, and `unused`, a Mean
    never updated."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("loss", "nfe", "backward_nfe", "unused")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self(x)[:, 0] - tf.cast(y, tf.float32)))
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables),
                             self.trainable_variables)
        self.trackers["loss"].update_state(loss)
        self.trackers["nfe"].update_state(26.0)
        self.trackers["backward_nfe"].update_state(38.0)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        self.trackers["nfe"].update_state(14.0)
        return {m.name: m.result() for m in self.metrics}


def test_logs_show_only_updated_metrics_with_the_evaluation_counts_and_an_estimate(
        tmp_path, capsys):
    data, validation = _classifier_data()
    model = CountingModel()
    model.compile(optimizer="sgd")
    Trainer(model, data, validation, str(tmp_path / "run"), epochs=2, steps_per_epoch=8,
            monitor="val_nfe", mode="min", verbose=1).fit()
    out = capsys.readouterr().out
    validation_lines = [l.strip() for l in out.splitlines() if "validation:" in l]
    assert validation_lines == ["validation: nfe 14.0000"] * 2
    bar = out.split("Epoch 2/2")[0]           # the progress bar of epoch 1
    assert "nfe: 26.0000" in bar and "backward_nfe: 38.0000" in bar and "loss:" in bar
    assert "unused" not in out
    assert re.search(r"Epoch 2/2 \(about \d+ s left at [\d.e-]+ s/step\)", out), out
    assert "Epoch 1/2\n" in out               # nothing timed yet
    history = _history(tmp_path / "run")
    assert set(history[0]) == {"epoch", "loss", "nfe", "backward_nfe", "val_nfe"}
    assert (history[0]["nfe"], history[0]["backward_nfe"], history[0]["val_nfe"]) == (26, 38, 14)
