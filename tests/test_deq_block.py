"""DEQBlock: the forward equilibrium, implicit gradients against finite differences and
unrolled autodiff, phantom and Jacobian-free gradients, non-convergence reporting,
saving and training under `model.fit`."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from ode_zoo.layers.deq_block import DEQBlock
from ode_zoo.layers.deq_cells import TanhCell

TIGHT = dict(tol=1e-10, max_iter=200, backward_tol=1e-10, backward_max_iter=200)
X = np.random.default_rng(0).standard_normal((3, 4))
PROBE = np.random.default_rng(1).standard_normal((3, 4))


def loss_of(z):
    """A loss whose gradient g = PROBE + 2 z* is not parallel to anything special."""
    return tf.reduce_sum(z * PROBE) + tf.reduce_sum(z ** 2)


def make_block(**options):
    block = DEQBlock(TanhCell(w_scale=options.pop("w_scale", 0.5), dtype="float64"),
                     dtype="float64", **{**TIGHT, **options})
    block.build((None, 4))
    return block


def gradients(block, x=X):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = loss_of(block(x))
    return tape.gradient(loss, [x, *block.cell.trainable_variables])


def unrolled_gradients(block, steps=200):
    """Autodiff through `steps` plain iterations from zero: the reference gradient."""
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = tf.zeros_like(x)
        for _ in range(steps):
            z = block.cell(z, x)
        loss = loss_of(z)
    return tape.gradient(loss, [x, *block.cell.trainable_variables])


def finite_difference_gradients(block, eps=1e-6):
    """Central differences of the loss, each solve a traced call (the weights are read
    afresh by every call); every one of them must converge."""
    solve = tf.function(block)

    def loss_value():
        return float(loss_of(solve(tf.constant(X))))

    block.forward_not_converged.reset_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = []
        for target in [None, *block.cell.trainable_variables]:
            base = X.copy() if target is None else target.numpy()
            grad = np.zeros_like(base)
            for index in np.ndindex(base.shape):
                values = []
                for sign in (1, -1):
                    moved = base.copy()
                    moved[index] += sign * eps
                    if target is None:
                        values.append(float(loss_of(solve(tf.constant(moved)))))
                    else:
                        target.assign(moved)
                        values.append(loss_value())
                grad[index] = (values[0] - values[1]) / (2 * eps)
            if target is not None:
                target.assign(base)
            result.append(grad)
    assert float(block.forward_not_converged.result()) == 0.0
    return result


def test_forward_is_a_fixed_point_of_the_cell():
    block = make_block()
    z = block(tf.constant(X))
    np.testing.assert_allclose(block.cell(z, tf.constant(X)).numpy(), z.numpy(), atol=1e-9)
    assert float(block.forward_not_converged.result()) == 0.0
    assert float(block.forward_residual.result()) <= 1e-10
    assert float(block.forward_steps.result()) > 1


def test_implicit_gradient_matches_finite_differences_and_unrolled_autodiff():
    block = make_block()
    implicit = gradients(block)
    assert block.backward_steps.count > 0
    assert float(block.backward_not_converged.result()) == 0.0
    assert float(block.backward_residual.result()) <= 1e-10
    for got, fd, unrolled in zip(implicit, finite_difference_gradients(block),
                                 unrolled_gradients(block)):
        np.testing.assert_allclose(got.numpy(), fd, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(got.numpy(), unrolled.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("method", ["broyden", "picard"])
def test_backward_method_can_differ(method):
    reference = gradients(make_block())
    other = gradients(make_block(backward_method=method))
    for a, b in zip(reference, other):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-9)


def _error(grads, reference):
    return sum(float(tf.norm(g - r)) for g, r in zip(grads, reference))


def test_phantom_gradient_approaches_implicit_as_steps_grow():
    implicit = gradients(make_block())
    errors = [_error(gradients(make_block(gradient="phantom", phantom_steps=k)), implicit)
              for k in (1, 5, 20)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3 * errors[0]


def test_jacobian_free_gradient_differs_from_implicit():
    implicit = gradients(make_block())
    free = gradients(make_block(gradient="jacobian_free"))
    assert _error(free, implicit) > 1e-2 * sum(float(tf.norm(g)) for g in implicit)
    # Its x-gradient is exactly one VJP of f at z*: g ∘ (1 − f²) Uᵀ.
    block = make_block(gradient="jacobian_free")
    z = block(tf.constant(X)).numpy()
    g = PROBE + 2 * z
    np.testing.assert_allclose(free[0].numpy(), (g * (1 - z ** 2)) @ block.cell.u.numpy().T,
                               rtol=1e-9)


@pytest.mark.parametrize("gradient, loops", [("implicit", 2), ("phantom", 1),
                                              ("jacobian_free", 1)])
def test_gradient_graph_does_not_differentiate_the_forward_loop(gradient, loops):
    """Memory stays flat in the iterations: the only loops in the gradient graph are the
    forward solve and (implicit) the backward solve, never a gradient of the forward loop."""
    block = make_block(gradient=gradient)

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_of(block(x))
        return tape.gradient(loss, [x, *block.cell.trainable_variables])

    graph = grad.get_concrete_function(tf.TensorSpec((3, 4), tf.float64)).graph
    assert len(while_loops(graph)) == loops


def while_loops(graph):
    """Op types of the while loops in `graph` and every function it calls (a jitted
    forward solve is a function of its own), those loops' bodies excluded."""
    library = graph.as_graph_def().library.function
    nodes = [*graph.as_graph_def().node, *(n for f in library for n in f.node_def)]
    return [n.op for n in nodes if "While" in n.op]


def xla_functions(graph):
    return [f.signature.name for f in graph.as_graph_def().library.function
            if f.attr["_XlaMustCompile"].b]


def test_traced_forward_solve_is_compiled_with_xla_unless_portable_or_disabled():
    """`jit_forward` (default): a traced call solves in an XLA function and gives the
    graph-mode equilibrium; eager calls, `jit_forward=False` and graphs traced inside
    `portable_graphs()` (serving exports) contain no XLA function."""
    from ode_zoo.layers.portable import portable_graphs
    spec = tf.TensorSpec((3, 4), tf.float64)
    jitted, plain = make_block(), make_block(jit_forward=False)
    plain.cell.set_weights(jitted.cell.get_weights())
    assert len(xla_functions(tf.function(jitted).get_concrete_function(spec).graph)) == 1
    assert xla_functions(tf.function(plain).get_concrete_function(spec).graph) == []
    with portable_graphs():
        assert xla_functions(tf.function(jitted).get_concrete_function(spec).graph) == []
    x = tf.constant(X)
    np.testing.assert_allclose(tf.function(jitted)(x).numpy(), tf.function(plain)(x).numpy(),
                               rtol=1e-9)
    np.testing.assert_allclose(jitted(x).numpy(), plain(x).numpy(), rtol=1e-9)
    for got, want in zip(tf.function(lambda: gradients(jitted))(), gradients(plain)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-8)


def test_non_contractive_cell_reports_non_convergence_and_warns_eagerly():
    block = make_block(w_scale=3.0, tol=1e-8, max_iter=10, method="picard")
    with pytest.warns(RuntimeWarning, match="did not converge in the forward solve"):
        block(tf.constant(X))
    assert float(block.forward_not_converged.result()) > 0.0
    with pytest.warns(RuntimeWarning, match="did not converge in the backward solve"):
        gradients(block)
    assert float(block.backward_not_converged.result()) > 0.0

    graph_block = make_block(w_scale=3.0, tol=1e-8, max_iter=10, method="picard")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf.function(graph_block)(tf.constant(X))
    assert float(graph_block.forward_not_converged.result()) > 0.0


def test_argument_checks_name_the_accepted_values():
    with pytest.raises(ValueError, match="available are"):
        DEQBlock(TanhCell(), gradient="exact")
    with pytest.raises(ValueError, match="available methods"):
        DEQBlock(TanhCell(), backward_method="newton")
    with pytest.raises(ValueError, match="phantom_damping"):
        DEQBlock(TanhCell(), gradient="phantom", phantom_damping=0.0)
    with pytest.raises(TypeError, match="keras.layers.Layer"):
        DEQBlock(lambda z, x: z)


def _model(**options):
    inputs = keras.Input((4,))
    deq = DEQBlock(TanhCell(), name="deq", **options)
    outputs = keras.layers.Dense(1)(deq(keras.layers.Dense(4)(inputs)))
    return keras.Model(inputs, outputs)


def test_keras_file_round_trip(tmp_path):
    model = _model(gradient="phantom", phantom_steps=3, backward_method="broyden")
    x = X.astype("float32")
    path = tmp_path / "deq.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-5)
    deq = loaded.get_layer("deq")
    assert isinstance(deq.cell, TanhCell)
    assert (deq.gradient, deq.phantom_steps, deq.backward_method) == ("phantom", 3, "broyden")


def test_fit_lowers_the_loss_and_logs_solver_metrics():
    keras.utils.set_random_seed(0)
    model = _model(tol=1e-5)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    x = np.random.default_rng(2).standard_normal((32, 4)).astype("float32")
    y = np.sin(x.sum(axis=1, keepdims=True))
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["deq_forward_steps"][-1] > 0
    assert history["deq_backward_steps"][-1] > 0
    assert history["deq_backward_not_converged"][-1] == 0.0


@keras.saving.register_keras_serializable(package="ode_zoo_tests")
class ScaledCell(keras.layers.Layer):
    """f(z, x) = c·z + x: ∂f/∂z = c·I, so ‖εᵀ∂f/∂z‖²/d = c²·mean(ε²) ≈ c²."""

    def build(self, z_shape, x_shape):
        self.c = self.add_weight(name="c", shape=(), initializer=keras.initializers.Constant(0.3))

    def call(self, z, x):
        return self.c * z + x


def test_jacobian_regularizer_is_the_hutchinson_estimate_of_the_frobenius_norm():
    block = DEQBlock(ScaledCell(), jacobian_weight=2.0, tol=1e-6)
    x = tf.ones((50, 40))
    with tf.GradientTape() as tape:
        block(x, training=True)
        (loss,) = block.losses
    # weight · c² · mean(ε²) with 2,000 standard normal draws: within 10% of 2 · 0.09.
    assert float(loss) == pytest.approx(2.0 * 0.09, rel=0.1)
    assert float(block.jacobian_metric.result()) == pytest.approx(float(loss) / 2.0)
    # d/dc (w c² mean(ε²)) = 2 w c mean(ε²) = loss · 2 / c.
    assert float(tape.gradient(loss, block.cell.c)) == pytest.approx(float(loss) * 2 / 0.3,
                                                                       rel=1e-5)


def test_jacobian_regularizer_only_in_training_and_at_its_frequency():
    block = DEQBlock(ScaledCell(), jacobian_weight=1.0, jacobian_frequency=0.3, tol=1e-6)
    x = tf.ones((4, 8))
    block(x)
    assert block.losses == []
    active = 0
    for _ in range(200):
        block(x, training=True)
        active += float(block.losses[0]) > 0
    assert 40 <= active <= 80          # 200 draws at 0.3: mean 60, std 6.5
    with pytest.raises(ValueError, match="jacobian_frequency"):
        DEQBlock(ScaledCell(), jacobian_frequency=0.0)
    with pytest.raises(ValueError, match="jacobian_weight"):
        DEQBlock(ScaledCell(), jacobian_weight=-1.0)


def test_jacobian_regularizer_lowers_the_iterations_in_fit():
    """Trained with a strong regularizer, the cell becomes more contractive than without."""
    x = np.random.default_rng(3).standard_normal((64, 8)).astype("float32")
    y = np.tanh(3 * x)
    steps = {}
    for weight in (0.0, 10.0):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8,))
        deq = DEQBlock(TanhCell(w_scale=0.9), name="deq", method="picard", tol=1e-4,
                       max_iter=100, jacobian_weight=weight)
        model = keras.Model(inputs, deq(inputs))
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        model.fit(x, y, epochs=20, batch_size=64, verbose=0)
        deq.forward_steps.reset_state()
        model(x)
        steps[weight] = float(deq.forward_steps.result())
    assert steps[10.0] < steps[0.0]
