"""Distributed training: two workers on 127.0.0.1 (MultiWorkerMirroredStrategy)
and two mirrored CPU replicas each train to the weights and logs of one
process that sees the same global batches; strategy names and TF_CONFIG are
checked with errors that say what is expected."""
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.training import make_strategy
from ode_zoo.training.distribute import check_even_split
from ode_zoo.zoo import train

# argv: JSON {"model": "dense" | "ode", "runs": [{"strategy", "dir", "epochs", "seed", "out"}]};
# each run builds a model initialised from `seed` under its strategy and trains it in `dir`,
# resuming a checkpoint found there. LOGICAL_CPUS=n splits the CPU into n logical devices.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    if os.environ.get("LOGICAL_CPUS"):
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration()] * int(os.environ["LOGICAL_CPUS"]))
    import keras, numpy as np
    from ode_zoo.datasets import classification_dataset
    from ode_zoo.layers import DenseVectorField, ODEBlock
    from ode_zoo.training import Trainer, make_strategy
    job = json.loads(sys.argv[1])
    strategies = {name: make_strategy(name)  # before any other TF op: multiworker needs it
                  for name in {run["strategy"] for run in job["runs"]}}
    x = np.random.default_rng(0).normal(size=(96, 3)).astype(np.float32)
    y = (np.sin(3 * x).sum(1) > 0).astype(np.int64)
    def data(epoch, skip):
        return classification_dataset(x, y, 16, shuffle_seed=1, epoch=epoch, skip_batches=skip,
                                      drop_remainder=True)
    validation = classification_dataset(x, y, 25)      # 25 rows: replicas get 13 and 12
    for run in job["runs"]:
        strategy = strategies[run["strategy"]]
        keras.utils.set_random_seed(run["seed"])
        with strategy.scope():
            hidden = ([ODEBlock(DenseVectorField(hidden_units=(8,)), method="rk4", num_steps=2,
                                name="ode")] if job["model"] == "ode" else [])
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                                      *hidden, keras.layers.Dense(2)])
            model.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"],
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = Trainer(model, data, validation, run["dir"], epochs=run["epochs"],
                          steps_per_epoch=6, checkpoint_every=4, verbose=0).fit(resume=True)
        weights = np.concatenate([v.numpy().ravel() for v in model.weights]).tolist()
        with open(run["out"], "w") as f:
            json.dump({"replicas": strategy.num_replicas_in_sync, "history": history,
                       "weights": weights}, f)
""")
TIMEOUT = 150


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run(tmp_path, processes):
    """Start `processes` ([(model, [(strategy, run_dir, epochs, seed)], extra_env)]) at
    once; returns each one's results, one per run. Those still running are killed
    after TIMEOUT or as soon as one fails (its peers would wait for it forever)."""
    # No bytecode: autograph imports its generated code from the temporary directory,
    # which is the non-chief worker's output directory that must end up empty.
    base_env = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"},
                "PYTHONDONTWRITEBYTECODE": "1"}
    started, logs, outputs = [], [], []
    try:
        for i, (model, runs, env) in enumerate(processes):
            outputs.append([tmp_path / f"{run[1].name}-{i}.json" for run in runs])
            job = {"model": model, "runs": [
                {"strategy": strategy, "dir": str(d), "epochs": e, "seed": seed, "out": str(out)}
                for (strategy, d, e, seed), out in zip(runs, outputs[-1])]}
            logs.append(tmp_path / f"process{i}.log")
            with open(logs[-1], "wb") as log:
                started.append(subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(job)],
                                                env={**base_env, **env}, stdout=log,
                                                stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            codes = [process.poll() for process in started]
            if None not in codes or any(codes):      # all done, or one failed: stop waiting
                break
            time.sleep(0.1)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, log in zip(started, logs):
        assert process.returncode == 0, (
            f"{log}: exit {process.returncode} (-9: killed after {TIMEOUT} s or after "
            "another process failed):\n" + log.read_text(errors="replace")[-3000:])
    return [[json.loads(out.read_text()) for out in outs] for outs in outputs]


def _assert_same_training(run, reference):
    np.testing.assert_allclose(run["weights"], reference["weights"], rtol=1e-5, atol=1e-6)
    assert [sorted(r) for r in run["history"]] == [sorted(r) for r in reference["history"]]
    for record, expected in zip(run["history"], reference["history"]):
        np.testing.assert_allclose([record[k] for k in sorted(record)],
                                   [expected[k] for k in sorted(expected)], rtol=1e-5)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """One device: 1 epoch (its checkpoint seeds a resume) and 2 epochs from scratch."""
    tmp_path = tmp_path_factory.mktemp("one_process")
    runs = [("default", tmp_path / "epoch1", 1, 0), ("default", tmp_path / "epochs2", 2, 0)]
    [(epoch1, epochs2)] = _run(tmp_path, [("dense", runs, {})])
    assert epoch1["replicas"] == epochs2["replicas"] == 1
    assert epoch1["history"] == epochs2["history"][:1]
    return {"dir": tmp_path, "epochs2": epochs2}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, one_process):
    """Two MultiWorkerMirroredStrategy workers on 127.0.0.1, each with its own
    TMPDIR: 2 epochs from scratch, then 2 epochs resuming the one-device epoch-1
    checkpoint (with another init seed, so a run that failed to resume would show)."""
    tmp_path = tmp_path_factory.mktemp("two_workers")
    (tmp_path / "resumed").mkdir()
    shutil.copy(one_process["dir"] / "epoch1" / "checkpoint.npz", tmp_path / "resumed")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        (tmp_path / f"tmp{index}").mkdir()
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        processes.append(("dense", [("multiworker", tmp_path / "fresh", 2, 0),
                                    ("multiworker", tmp_path / "resumed", 2, 1)],
                          {"TMPDIR": str(tmp_path / f"tmp{index}"),
                           "TF_CONFIG": json.dumps(tf_config)}))
    chief, worker = _run(tmp_path, processes)
    return {"dir": tmp_path, "chief": chief, "worker": worker}


def test_two_workers_train_like_one_process(one_process, two_workers):
    (chief, _), (worker, _) = two_workers["chief"], two_workers["worker"]
    assert chief["replicas"] == worker["replicas"] == 2
    _assert_same_training(chief, one_process["epochs2"])
    np.testing.assert_array_equal(chief["weights"], worker["weights"])
    assert chief["history"] == worker["history"]      # logs are reduced over both workers


def _files_per_dir(run_dir):
    return {os.path.relpath(d, run_dir): len(files) for d, _, files in os.walk(run_dir)}


def test_only_the_chief_keeps_files(one_process, two_workers):
    assert sorted(os.listdir(two_workers["dir"] / "fresh")) == [
        "best.weights.h5", "checkpoint.npz", "history.json", "logs"]
    assert (_files_per_dir(two_workers["dir"] / "fresh")          # one TensorBoard writer
            == _files_per_dir(one_process["dir"] / "epochs2"))
    assert not os.listdir(two_workers["dir"] / "tmp1")   # the other worker's files are gone


def test_two_workers_resume_a_checkpoint_of_one_process(one_process, two_workers):
    (_, chief), (_, worker) = two_workers["chief"], two_workers["worker"]
    _assert_same_training(chief, one_process["epochs2"])
    np.testing.assert_array_equal(chief["weights"], worker["weights"])


def test_two_mirrored_cpu_replicas_train_an_ode_like_one_device(tmp_path):
    [(one_device, mirrored)] = _run(tmp_path, [
        ("ode", [("default", tmp_path / "one_device", 2, 0),
                 ("mirrored", tmp_path / "mirrored", 2, 0)], {"LOGICAL_CPUS": "2"})])
    assert (one_device["replicas"], mirrored["replicas"]) == (1, 2)
    assert {"ode_nfe", "ode_backward_nfe", "val_accuracy"} <= set(mirrored["history"][0])
    _assert_same_training(mirrored, one_device)


def test_unknown_strategy_lists_the_names():
    with pytest.raises(ValueError, match=r"'tpu'.*\['default', 'mirrored', 'multiworker'\]"):
        make_strategy("tpu")
    with pytest.raises(ValueError, match="available strategies"):   # checked before anything
        train("no_such_model", strategy="tpu")


@pytest.mark.parametrize("tf_config, problem", [
    (None, "TF_CONFIG is not set"),
    ("{cluster", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "'cluster' must map job names"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}',
     r"'task' must name this process's job, one of \['worker'\]"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
     r"task index 1 is not in cluster\['worker'\] \(1 entries\)"),
])
def test_multiworker_without_a_valid_tf_config_says_what_it_needs(monkeypatch, tf_config,
                                                                  problem):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=rf"needs the environment variable TF_CONFIG.*"
                                         rf"\"cluster\".*\"task\".*Here {problem}"):
        make_strategy("multiworker")


def test_global_batches_must_split_evenly_over_replicas():
    batches = tf.data.Dataset.range(60).batch(15, drop_remainder=True)
    check_even_split(batches, 1)
    check_even_split(batches, 3)
    with pytest.raises(ValueError, match=r"global batch size \(15\).*replicas \(2\)"):
        check_even_split(batches, 2)
    with pytest.raises(ValueError, match=r"global batch size \(None\)"):
        check_even_split(tf.data.Dataset.range(60).batch(16), 2)
