"""ConvDEQCell and DEQClassifier: shapes, checks, the equilibrium they compute, saving,
a training step that moves the loss, and warnings (also from predict) when equilibria
are not found."""
from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.layers import ConvDEQCell
from ode_zoo.models import DEQClassifier

SMALL = dict(filters=8, groups=4, max_iter=20, backward_max_iter=20)


def test_conv_cell_is_mdeq_residual_block_and_checks_shapes():
    cell = ConvDEQCell(filters=4, hidden_filters=8, groups=2)
    z = tf.random.stateless_normal((2, 5, 5, 4), [0, 1])
    x = tf.random.stateless_normal((2, 5, 5, 4), [0, 2])
    out = cell(z, x)
    h = cell.norm_1(tf.nn.relu(cell.conv_1(z)))
    expected = cell.norm_3(tf.nn.relu(cell.norm_2(cell.conv_2(h) + x) + z))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="must divide"):
        ConvDEQCell(filters=6, groups=4)
    with pytest.raises(ValueError, match="one shape"):
        ConvDEQCell(filters=4, groups=2)(z, tf.zeros((2, 5, 5, 3)))


def test_classifier_output_is_the_head_of_the_equilibrium():
    model = DEQClassifier(**{**SMALL, "max_iter": 60}, tol=1e-6)
    images = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
    logits = model(images)
    assert logits.shape == (3, 10)
    h = images / 255.0
    for layer in model.stem:
        h = layer(h)
    z = model.deq_block(h)
    np.testing.assert_allclose(model.deq_block.cell(z, h).numpy(), z.numpy(), atol=1e-4)
    assert float(model.deq_block.forward_not_converged.result()) == 0.0


def test_classifier_rejects_bad_images():
    model = DEQClassifier(**SMALL)
    with pytest.raises(ValueError, match=r"shape \[N, 28, 28, 1\]"):
        model(np.zeros((2, 28, 28), "float32"))
    with pytest.raises(TypeError, match="float32 raw pixel"):
        model(tf.zeros((2, 28, 28, 1), tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        model(np.full((1, 28, 28, 1), np.nan, "float32"))


def test_keras_round_trip_and_training_step(tmp_path):
    keras.utils.set_random_seed(0)
    model = DEQClassifier(**SMALL, jacobian_weight=0.5)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (16, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 2, 16)
    images[labels == 1, :14] = 0.0              # a learnable difference
    losses = [model.train_on_batch(images, labels) for _ in range(8)]
    assert losses[-1] < losses[0]
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert logs["deq_forward_steps"] > 0 and logs["deq_backward_steps"] > 0
    assert logs["deq_jacobian"] > 0
    path = tmp_path / "deq.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.deq_block.jacobian_weight == 0.5
    np.testing.assert_allclose(loaded(images).numpy(), model(images).numpy(), atol=1e-4)


def test_predict_and_calls_warn_with_the_share_that_did_not_converge():
    """predict runs in a tf.function, where the block cannot warn: it said nothing
    when 75% of the published model's noise images did not converge."""
    model = DEQClassifier(**{**SMALL, "max_iter": 1}, tol=1e-9)
    images = np.random.default_rng(2).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    share = r"deq: 4 of 4 samples \(100%\) did not converge in the forward solve.*max_iter"
    with pytest.warns(RuntimeWarning, match=share):
        model.predict(images, batch_size=2, verbose=0)
    assert model.deq_block.forward_counts() == (4, 4)
    with pytest.warns(RuntimeWarning, match=share):
        model(images)


def test_predict_is_silent_when_every_equilibrium_is_found():
    model = DEQClassifier(**{**SMALL, "max_iter": 60}, tol=1e-3)
    images = np.random.default_rng(2).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.predict(images, verbose=0)
    assert model.deq_block.forward_counts() == (0, 2)
