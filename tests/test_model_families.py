"""One harness for every zoo model class: a family's tests are rows of `ROWS`.

Each row is a zoo name with overrides that shrink it to seconds. For every row:
the config round trip (Keras serialization), the preset round trip (save, load,
same outputs on every endpoint), building without solving, the family hooks the
zoo relies on, refusal of images scaled to [0, 1], and an empty result for a batch
of no examples. `SERVED` rows also export and pass the serving checks (TF Serving's
view), one per family.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import keras
import numpy as np
import pytest
import tensorflow as tf

import ode_zoo
from ode_zoo.models.base import ZooModel
from ode_zoo.zoo.catalog import list_published_names, published_dir
from ode_zoo.zoo.configs import load_config
from ode_zoo.zoo.export import endpoint_outputs
from ode_zoo.zoo.presets import load_preset, save_to_preset
from ode_zoo.zoo.recipes import build_model, model_class
from ode_zoo.zoo.serving_checks import check_serving, random_inputs

RK4_1 = {"method": "rk4", "num_steps": 1}
ROWS: Dict[str, Dict[str, Any]] = {
    "odenet_mnist": dict(filters=8, groups=4, method="rk4", num_steps=1),
    "deq_mnist": dict(filters=8, groups=4, max_iter=4, backward_max_iter=4),
    "ffjord_toy_8gaussians": dict(hidden_units=[8], num_steps=1, eval_solver=RK4_1),
    "ffjord_mnist": dict(blocks_per_scale=1, hidden_filters=[4], num_steps=1,
                         eval_solver=RK4_1),
    "cfm_mnist": dict(channels=8, groups=4, eval_solver=RK4_1),
    "ode2vae_mocap": dict(latent_dim=2, bnn_units=[8], coder_units=[8]),
    "ode2vae_rotmnist": dict(latent_dim=2, bnn_units=[8], encoder_filters=4,
                             decoder_filters=4),
    "odernn_physionet": dict(units=4, field_units=[4], head_units=[4]),
    "latent_ode_physionet": dict(units=4, latent_dim=2, encoder_field_units=[4],
                                 decoder_field_units=[4]),
}
SERVED = ("odenet_mnist", "deq_mnist", "ffjord_toy_8gaussians", "cfm_mnist", "ode2vae_mocap",
          "odernn_physionet", "latent_ode_physionet")
PIXEL_MODELS = ("odenet_mnist", "deq_mnist", "ffjord_mnist", "cfm_mnist", "ode2vae_rotmnist")


def tiny(name: str) -> keras.Model:
    return ode_zoo.load(name, load_weights=False, **ROWS[name])


def outputs(model: keras.Model, inputs: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, Any]:
    return {name: endpoint_outputs(model, name, feeds) for name, feeds in inputs.items()}


def assert_same_outputs(a: Dict[str, Any], b: Dict[str, Any]) -> None:
    assert sorted(a) == sorted(b)
    for endpoint in a:
        for key in a[endpoint]:
            np.testing.assert_allclose(a[endpoint][key], b[endpoint][key], rtol=1e-5, atol=1e-5)


def test_rows_cover_every_zoo_model_class() -> None:
    classes = {load_config(name)["model"]["class"] for name in ode_zoo.list_models()}
    assert classes == {load_config(name)["model"]["class"] for name in ROWS}


@pytest.mark.parametrize("name", ROWS)
def test_config_round_trip(name: str) -> None:
    model = tiny(name)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert type(clone) is type(model)
    assert clone.get_config() == model.get_config()
    json.dumps(model.architecture_config())            # configs are JSON


@pytest.mark.parametrize("name", ROWS)
def test_preset_round_trip_keeps_every_endpoint_output(name: str, tmp_path: Path) -> None:
    model = tiny(name)
    model.set_weights([w + 0.01 for w in model.get_weights()])   # not the initial weights
    inputs = random_inputs(model, batch_size=2)
    save_to_preset(model, tmp_path / name, {"note": "harness"})
    loaded = load_preset(tmp_path / name)
    assert loaded.zoo_metadata["note"] == "harness"
    assert_same_outputs(outputs(model, inputs), outputs(loaded, inputs))
    assert not list(tmp_path.glob(".tmp-*")), "save_to_preset left its staging folder"


@pytest.mark.parametrize("name", ROWS)
def test_family_hooks(name: str) -> None:
    model = tiny(name)
    assert isinstance(model, ZooModel) and model.built
    assert next(iter(model.serving_endpoints())) == "serving_default"
    assert model_class(model.zoo_config) is type(model)
    assert isinstance(model.compile_defaults(), dict)
    assert model.family in ("classifier", "flow", "sequence_vae", "irregular_series")
    inputs = random_inputs(model, batch_size=2)
    assert sorted(inputs) == sorted(model.serving_endpoints())
    results = outputs(model, inputs)
    assert all(np.all(np.isfinite(v)) for r in results.values() for v in r.values())


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_images_scaled_to_unit_range_are_refused(name: str) -> None:
    model = tiny(name)
    endpoint, feeds = next(iter(random_inputs(model, batch_size=2).items()))
    key = next(iter(feeds))
    scaled = {**feeds, key: feeds[key] / 255.0}
    with pytest.raises(ValueError, match=r"0–255.*scaled to \[0, 1\]"):
        endpoint_outputs(model, endpoint, scaled)
    graph = tf.function(lambda x: model.serving_endpoints()[endpoint].function(**{key: x}))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"scaled to \[0, 1\]"):
        graph(tf.constant(scaled[key]))


@pytest.mark.parametrize("name", sorted(ROWS))
def test_an_empty_batch_gives_an_empty_result_on_every_entry_point(name: str) -> None:
    """Keras' predict, TF's convolutions and the adaptive solver's error norm each
    failed on a batch of no examples."""
    model = tiny(name)
    examples = model.random_examples(1)            # an array, or a dict of them
    entries = {"call": model, "predict": lambda x: model.predict(x, verbose=0)}
    entries.update({method: getattr(model, method) for method in ("log_prob", "reconstruct")
                    if hasattr(model, method)})
    for entry, run in entries.items():
        no_examples = tf.nest.map_structure(lambda a: a[:0], examples)
        one, none = np.asarray(run(examples)), np.asarray(run(no_examples))
        assert none.shape == (0, *one.shape[1:]), (entry, none.shape, one.shape)
    if hasattr(model, "sample"):
        assert model.sample(np.zeros((0, model.dim), np.float32)).shape == (0, *model.event_shape)


@pytest.mark.parametrize("name", ["odenet_mnist", "ffjord_mnist"])
def test_loading_solves_nothing(name: str) -> None:
    # One allowed step would fail any solve: building must not integrate.
    model = ode_zoo.load(name, max_num_steps=1)
    assert model.built and model.solver.max_num_steps == 1


@pytest.mark.parametrize("name", list_published_names())
def test_published_preset_and_zoo_config_agree(name: str) -> None:
    """`load(name)` reads the newest version's config.json; training reads zoo_configs/.
    Both must describe the same model, data and recipe (older versions keep theirs)."""
    preset = json.loads((published_dir(name) / "config.json").read_text())
    zoo = load_config(name)
    for section in ("name", "dataset", "training", "evaluation"):
        assert preset[section] == zoo[section], section
    assert preset["model"]["class"] == zoo["model"]["class"]
    built = [build_model(c).architecture_config() for c in (preset, zoo)]
    assert built[0] == built[1]


@pytest.mark.parametrize("name", SERVED)
def test_export_passes_the_serving_checks(name: str, tmp_path: Path) -> None:
    model = tiny(name)
    path = ode_zoo.export(model, tmp_path / "serving")
    check_serving(path, model, random_inputs(model, batch_size=2))


# Overrides under which every solve of the model stops at its step budget.
OUT_OF_STEPS = {"method": "rk4", "num_steps": 4, "max_num_steps": 2}
FAILING_SOLVES: Dict[str, Dict[str, Any]] = {
    "ffjord_toy_8gaussians": dict(eval_solver=OUT_OF_STEPS),
    "cfm_mnist": dict(eval_solver=OUT_OF_STEPS),
    "ode2vae_mocap": dict(max_num_steps=2),                # rk4 at step_size 0.05
    "latent_ode_physionet": dict(OUT_OF_STEPS),
}


@pytest.mark.parametrize("name", FAILING_SOLVES)
def test_predict_under_xla_raises_a_failed_solve(name: str) -> None:
    model = ode_zoo.load(name, load_weights=False, **{**ROWS[name], **FAILING_SOLVES[name]})
    model.compile(optimizer="sgd", jit_compile=True, **model.compile_defaults())
    examples = model.random_examples(2)
    with pytest.raises(ode_zoo.MaxStepsExceededError, match="max_num_steps=2"):
        model.predict(examples, verbose=0)


@pytest.mark.parametrize("name", ["ffjord_toy_8gaussians", "cfm_mnist"])
def test_eager_log_prob_and_sample_of_many_examples_go_in_batches_with_progress(
        name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    model = tiny(name)
    x = model.random_examples(5)
    z = np.random.default_rng(0).standard_normal((5, model.dim)).astype(np.float32)
    whole_log_prob, whole_sample = model.log_prob(x).numpy(), model.sample(z).numpy()
    assert "5/5" not in capsys.readouterr().out                  # one batch: no bar
    monkeypatch.setattr(type(model), "eager_batch_size", 2)
    # cfm_mnist's Hutchinson noise is drawn per solved batch: equal within its variance.
    np.testing.assert_allclose(model.log_prob(x).numpy(), whole_log_prob, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.sample(z).numpy(), whole_sample, rtol=1e-5, atol=1e-4)
    shown = capsys.readouterr().out
    assert shown.count("5/5") == 2, shown
