"""The flow family in the zoo: the ffjord_toy_* configs are RNODE recipes, flow
batches hold inputs only in a resumable order, solver counts get the metadata's
names, a tiny flow trains, publishes (with a serving export that passes the
serving checks), re-evaluates and draws its samples, and every published toy
entry reproduces its metrics with an NLL close to the true density's."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import ode_zoo
from ode_zoo.cli import main
from ode_zoo.zoo.catalog import published_dir
from ode_zoo.zoo.configs import load_config
from ode_zoo.zoo.evaluate import compare_metrics, evaluate_model, solver_count_key
from ode_zoo.zoo.publish import publish
from ode_zoo.zoo.recipes import batch_arrays, evaluation_data, model_class, training_data
from ode_zoo.zoo.serving_checks import check_static
from ode_zoo.zoo.train import limit_threads, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TOYS = ["8gaussians", "checkerboard", "2spirals", "pinwheel"]
# −mean log p(x) of the zoo's toy test split (toy2d seed 3, 10,000 points) under the
# true density, the NLL a perfect model would score there: 8gaussians from the exact
# mixture; 2spirals with the spiral's parameter integrated by Simpson's rule;
# pinwheel by change of variables from its Gaussian coordinates (arms disjoint);
# checkerboard is uniform on an area of 32.
TRUE_NLL = {"8gaussians": 2.814, "checkerboard": math.log(32.0), "2spirals": 3.039,
            "pinwheel": 1.616}


def tiny_config(tmp_path: Path) -> Path:
    """ffjord_toy_8gaussians shrunk to seconds: small field, 2 rk4 training steps, 4
    rk4 evaluation steps, a few hundred points, and no thread limit (TF already runs)."""
    config = load_config("ffjord_toy_8gaussians")
    config["name"] = "tiny_flow"
    config["model"]["config"].update(hidden_units=[8, 8], num_steps=2,
                                     eval_solver={"method": "rk4", "num_steps": 4})
    config["dataset"]["sizes"] = {"train": 640, "validation": 128, "test": 256}
    config["training"].update(epochs=2, batch_size=64, checkpoint_every=5)
    del config["training"]["threads"]
    config["evaluation"]["batch_size"] = 128
    path = tmp_path / "tiny_flow.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("toy", TOYS)
def test_toy_configs_are_rnode_recipes(toy: str) -> None:
    config = load_config(f"ffjord_toy_{toy}")
    model = config["model"]["config"]
    assert model_class(config).family == "flow" and config["model"]["class"] == "FFJORDToyFlow"
    assert config["dataset"]["name"] == "toy2d" and config["dataset"]["toy"] == toy
    assert (model["solver"]["method"], model["kinetic_weight"], model["jacobian_weight"]) == (
        "rk4", 0.01, 0.01)
    assert (model["eval_solver"]["method"], model["eval_solver"]["rtol"],
            model["eval_solver"]["atol"]) == ("dopri5", 1e-5, 1e-5)
    assert config["training"]["threads"] == 1
    assert (config["training"]["monitor"], config["training"]["mode"]) == ("val_nll", "min")


def test_flow_batches_hold_inputs_only_in_a_resumable_order(tmp_path: Path) -> None:
    config = load_config(str(tiny_config(tmp_path)))
    train_dataset, steps, validation = training_data(config)
    assert steps == 10
    assert train_dataset(0, 0).element_spec == tf.TensorSpec([64, 2], tf.float32)
    assert validation.element_spec == tf.TensorSpec([None, 2], tf.float32)
    epoch = [b.numpy() for b in train_dataset(1, 0)]
    resumed = [b.numpy() for b in train_dataset(1, 3)]
    np.testing.assert_array_equal(np.concatenate(epoch[3:]), np.concatenate(resumed))
    (points,) = batch_arrays(config, "train")
    np.testing.assert_array_equal(np.sort(np.concatenate(epoch), axis=0), np.sort(points, axis=0))
    assert not np.array_equal(epoch[0], next(iter(train_dataset(0, 0))).numpy())
    test_batches = [b.numpy() for b in evaluation_data(config)]
    assert [len(b) for b in test_batches] == [128, 128]


def test_bad_classes_and_datasets_name_the_known_ones(tmp_path: Path) -> None:
    config = load_config(str(tiny_config(tmp_path)))
    with pytest.raises(ValueError, match=r"Unknown model class 'GAN'.*'FFJORDToyFlow'"):
        batch_arrays({**config, "model": {**config["model"], "class": "GAN"}}, "train")
    known = r"\['mnist', 'mocap', 'physionet2012', 'rotating_mnist', 'toy2d'\]"
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar'.*" + known):
        batch_arrays({**config, "dataset": {**config["dataset"], "name": "cifar"}}, "train")
    with pytest.raises(ValueError, match=r"split 'extra'.*\['test', 'train', 'validation'\]"):
        batch_arrays(config, "extra")
    with pytest.raises(ValueError, match="ODENetClassifier trains on labelled examples; "
                                         "dataset 'toy2d' has none"):
        batch_arrays({**config, "model": {**config["model"], "class": "ODENetClassifier"}},
                     "train")


@pytest.mark.parametrize("logged, key", [
    ("nfe", "forward_nfe"), ("backward_nfe", "backward_nfe"),
    ("ode_block_nfe", "forward_nfe"), ("ode_block_backward_nfe", "backward_nfe"),
    ("deq_block_forward_steps", "forward_steps"), ("deq_block_backward_steps", "backward_steps"),
    ("deq_block_forward_residual", None), ("nll", None), ("accuracy", None),
])
def test_solver_counts_get_the_metadata_names(logged: str, key) -> None:
    assert solver_count_key(logged) == key


def test_a_thread_limit_needs_a_fresh_runtime() -> None:
    tf.constant(1.0) + 1.0                                  # TensorFlow has started
    with pytest.raises(RuntimeError, match="threads=1.*train in a fresh process"):
        limit_threads(1)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        limit_threads(0)


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory: pytest.TempPathFactory):
    """(config path, run history, preset directory) of a tiny flow trained 2 epochs
    and published with its checked serving export."""
    tmp_path = tmp_path_factory.mktemp("tiny_flow")
    config_path = tiny_config(tmp_path)
    history = train(str(config_path), run_dir=str(tmp_path / "run"), verbose=0)
    directory = publish(str(config_path), run_dir=tmp_path / "run", output=tmp_path / "preset")
    return config_path, history, directory


def test_training_logs_the_flow_metrics(tiny_preset) -> None:
    history = tiny_preset[1]
    assert len(history) == 2
    assert {"loss", "nll", "kinetic", "jacobian", "val_nll", "val_nfe"} <= set(history[-1])
    assert history[-1]["nfe"] == history[-1]["backward_nfe"] == 8.0     # 2 rk4 steps
    assert history[-1]["val_nfe"] == 16.0                               # 4 rk4 steps


def test_published_flow_metadata_records_nll_and_solver_counts(tiny_preset) -> None:
    metadata = json.loads((tiny_preset[2] / "metadata.json").read_text())
    metrics, training = metadata["metrics"], metadata["training"]
    assert list(metrics) == ["test_nll", "test_forward_nfe"]
    assert 1.0 < metrics["test_nll"] < 20.0 and metrics["test_forward_nfe"] == 16.0
    assert metadata["evaluation"]["solver"] == {"method": "rk4", "rtol": 1e-5, "atol": 1e-5,
                                                "num_steps": 4}
    assert training["solver"] == {"method": "rk4", "num_steps": 2, "adjoint": True}
    assert training["train_forward_nfe"] == training["train_backward_nfe"] == 8.0
    assert training["best_val_nll"] == min(r["val_nll"] for r in tiny_preset[1])
    assert "threads" not in training and training["hardware"]
    assert (tiny_preset[2] / "training_history.json").is_file()


def test_flow_serving_export_has_log_prob_and_sample_endpoints(tiny_preset) -> None:
    """publish ran every serving check on it; here the signatures and their meaning."""
    signatures = check_static(tiny_preset[2].parent / "serving" / "1")
    assert signatures == {"serving_default": {"inputs": ["x"], "outputs": ["log_prob"]},
                          "log_prob": {"inputs": ["x"], "outputs": ["log_prob"]},
                          "sample": {"inputs": ["z"], "outputs": ["x"]}}
    loaded = tf.saved_model.load(str(tiny_preset[2].parent / "serving" / "1"))
    model = ode_zoo.load(str(tiny_preset[2]))
    z = tf.random.stateless_normal((5, 2), seed=[0, 7])
    x = loaded.signatures["sample"](z=z)["x"]
    np.testing.assert_allclose(x, model.sample(z), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loaded.signatures["log_prob"](x=x)["log_prob"],
                               model.log_prob(x), rtol=1e-5, atol=1e-5)


def test_eval_reproduces_the_tiny_flow_and_sample_draws_it(tiny_preset, tmp_path: Path,
                                                            capsys) -> None:
    assert main(["eval", str(tiny_preset[2])]) == 0
    assert "all published metrics reproduced" in capsys.readouterr().out
    output = tmp_path / "tiny.png"
    assert main(["sample", str(tiny_preset[2]), "--output", str(output), "--num", "64"]) == 0
    assert output.read_bytes()[:8] == PNG_SIGNATURE


def test_sample_refuses_models_that_are_not_flows() -> None:
    with pytest.raises(ValueError, match=r"draws zoo flows; 'odenet_mnist' is a 'classifier' "
                                         r"model"):
        main(["sample", "odenet_mnist"])


def _published_toys() -> list:
    return [pytest.param(toy, marks=pytest.mark.skipif(
        published_dir(f"ffjord_toy_{toy}") is None, reason=f"ffjord_toy_{toy} not published"))
        for toy in TOYS]


@pytest.mark.parametrize("toy", _published_toys())
def test_published_toy_flow_reproduces_its_metrics(toy: str) -> None:
    model = ode_zoo.load(f"ffjord_toy_{toy}")
    stored = model.zoo_metadata["metrics"]
    reproduced, lines = compare_metrics(stored, evaluate_model(model, model.zoo_config,
                                                               verbose=0))
    assert reproduced, "\n".join(lines)
    # No model beats the true density by more than sampling noise (its NLL is a
    # cross-entropy); the recipe comes within 0.2 nats of it.
    assert TRUE_NLL[toy] - 0.03 < stored["test_nll"] < TRUE_NLL[toy] + 0.2, stored
    training = model.zoo_metadata["training"]
    assert training["threads"] == 1 and training["wall_clock_hours"] <= 10 / 60
    steps = model.solver.num_steps
    assert training["train_forward_nfe"] == training["train_backward_nfe"] == 4 * steps


@pytest.mark.skipif(published_dir("ffjord_toy_8gaussians") is None,
                    reason="ffjord_toy_8gaussians not published")
def test_sample_command_draws_a_published_toy_flow(tmp_path: Path, capsys) -> None:
    output = tmp_path / "8gaussians.png"
    assert main(["sample", "ffjord_toy_8gaussians", "--output", str(output), "--num", "500",
                 "--seed", "3"]) == 0
    assert output.read_bytes()[:8] == PNG_SIGNATURE
    assert f"wrote {output}" in capsys.readouterr().out
