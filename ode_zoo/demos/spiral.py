"""Spiral demo: learn the cubic spiral ODE of Chen et al. (2018) with a neural ODE.

The true system is ``dy/dt = (y**3) @ A`` with ``A = [[-0.1, 2.0], [-2.0, -0.1]]`` and
``y(0) = [2, 0]`` on ``t in [0, 25]``. A ``DenseVectorField`` applied to ``y**3`` is fitted
on short windows of the trajectory with fixed-step RK4, then integrated over the whole span
with dopri5 and compared with the truth.

Example:
    >>> from ode_zoo.demos.spiral import run_spiral_demo
    >>> result = run_spiral_demo("spiral.png", epochs=1, verbose=0)
    >>> result.output.exists()
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from ode_zoo import odeint
from ode_zoo.layers.vector_fields import DenseVectorField

SPIRAL_MATRIX = ((-0.1, 2.0), (-2.0, -0.1))
SPIRAL_Y0 = (2.0, 0.0)
SPIRAL_T_END = 25.0
SPIRAL_NUM_POINTS = 1000
DEFAULT_EPOCHS = 200


@dataclass(frozen=True)
class SpiralResult:
    """What one run of the demo produced.

    Example:
        >>> SpiralResult(Path("spiral.png"), mse=0.01, final_loss=0.02, seconds=60.0).mse
        0.01
    """

    output: Path
    mse: float
    final_loss: float
    seconds: float


def spiral_dynamics(t: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The true right-hand side ``(y**3) @ A``; ``y`` has shape ``(batch, 2)``.

    Example:
        >>> spiral_dynamics(0.0, tf.constant([[1.0, 0.0]])).numpy().tolist()
        [[-0.10000000149011612, 2.0]]
    """
    return tf.matmul(y**3, tf.constant(SPIRAL_MATRIX, dtype=y.dtype))


def make_spiral(
    num_points: int = SPIRAL_NUM_POINTS, t_end: float = SPIRAL_T_END
) -> tuple[tf.Tensor, tf.Tensor]:
    """Solve the true spiral ODE tightly (float64 dopri5) on an even grid.

    Returns ``(t, y)`` in float32 with shapes ``(num_points,)`` and ``(num_points, 2)``.

    Example:
        >>> t, y = make_spiral(num_points=50)
        >>> y.shape
        TensorShape([50, 2])
    """
    t = tf.linspace(tf.constant(0.0, tf.float64), t_end, num_points)
    y0 = tf.constant([SPIRAL_Y0], dtype=tf.float64)
    y = odeint(spiral_dynamics, y0, t, method="dopri5", rtol=1e-9, atol=1e-9)
    return tf.cast(t, tf.float32), tf.cast(y[:, 0, :], tf.float32)


class CubicDynamics:
    """A learned autonomous field on cubic features: ``f(t, y) = field(0, y**3)``.

    The spiral is autonomous and training windows all start at ``t = 0``, so the
    time-conditioned ``field`` is always given time 0 (else it would be asked about
    times it never saw in training when the whole span is integrated).

    Example:
        >>> dynamics = CubicDynamics(DenseVectorField(hidden_units=(16,)))
        >>> dynamics(tf.constant(0.0), tf.zeros((3, 2))).shape
        TensorShape([3, 2])
    """

    def __init__(self, field: keras.layers.Layer) -> None:
        self.field = field

    def __call__(self, t: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return self.field(tf.zeros_like(t), y**3)


def fit_spiral(
    t: tf.Tensor,
    y: tf.Tensor,
    *,
    epochs: int,
    seed: int = 0,
    window: int = 10,
    batch_size: int = 32,
    learning_rate: float = 1e-2,
    verbose: int = 1,
) -> tuple[CubicDynamics, list[float]]:
    """Fit a neural ODE to the trajectory ``y(t)`` on minibatches of short windows.

    One epoch visits every window start once, in a random order. Windows are integrated
    with fixed-step RK4 at the grid spacing and scored by mean squared error; Adam's
    learning rate follows a cosine decay to 1% of ``learning_rate`` over the run.
    Returns the learned dynamics and the mean training loss of each epoch.

    Example:
        >>> t, y = make_spiral(num_points=200)
        >>> dynamics, losses = fit_spiral(t, y, epochs=2, verbose=0)
        >>> len(losses)
        2
    """
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    field = DenseVectorField(hidden_units=(64, 64), activation="tanh")
    dynamics = CubicDynamics(field)
    dynamics(t[0], y[:1])  # builds the layer's weights
    num_starts = int(y.shape[0]) - window + 1
    steps_per_epoch = -(-num_starts // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=epochs * steps_per_epoch, alpha=0.01
    )
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    optimizer.build(field.trainable_variables)

    t_window = t[:window] - t[0]
    step_size = float(t[1] - t[0])
    offsets = np.arange(window)

    @tf.function(reduce_retracing=True)
    def train_step(y0: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            prediction = odeint(dynamics, y0, t_window, method="rk4", step_size=step_size)
            loss = tf.reduce_mean(tf.square(prediction - target))
        gradients = tape.gradient(loss, field.trainable_variables)
        optimizer.apply_gradients(zip(gradients, field.trainable_variables))
        return loss

    progbar = keras.utils.Progbar(
        epochs, verbose=verbose, stateful_metrics=["loss"], unit_name="epoch"
    )
    losses = []
    for epoch in range(epochs):
        starts = rng.permutation(num_starts)
        batch_losses = []
        for begin in range(0, num_starts, batch_size):
            batch = starts[begin : begin + batch_size]
            target = tf.gather(y, batch[None, :] + offsets[:, None])  # (window, batch, 2)
            batch_losses.append(float(train_step(target[0], target)))
        losses.append(float(np.mean(batch_losses)))
        progbar.update(epoch + 1, [("loss", losses[-1])])
    return dynamics, losses


def predict_spiral(dynamics: CubicDynamics, t: tf.Tensor, y0: tf.Tensor) -> tf.Tensor:
    """Integrate learned dynamics from ``y0`` (shape ``(2,)``) over ``t`` with dopri5.

    Example:
        >>> t, y = make_spiral(num_points=20)
        >>> predict_spiral(CubicDynamics(DenseVectorField()), t, y[0]).shape
        TensorShape([20, 2])
    """
    return odeint(dynamics, y0[None, :], t, method="dopri5")[:, 0, :]


def plot_spiral(
    path: Path, t: tf.Tensor, y_true: tf.Tensor, y_pred: tf.Tensor, dynamics: CubicDynamics
) -> None:
    """Write a PNG: x, y against t; the phase portrait; the learned vector field.

    Example:
        >>> t, y = make_spiral(num_points=20)
        >>> plot_spiral(Path("truth.png"), t, y, y, CubicDynamics(DenseVectorField()))
    """
    t, y_true, y_pred = np.asarray(t), np.asarray(y_true), np.asarray(y_pred)
    figure = Figure(figsize=(15, 4.5), layout="tight")
    ax_time, ax_phase, ax_field = figure.subplots(1, 3)

    for i, (name, color) in enumerate((("x", "tab:blue"), ("y", "tab:orange"))):
        ax_time.plot(t, y_true[:, i], color=color, label=f"{name} true")
        ax_time.plot(t, y_pred[:, i], "--", color=color, label=f"{name} learned")
    ax_time.set(title="Trajectories", xlabel="t", ylabel="x, y")
    ax_time.legend(loc="upper right", fontsize="small")

    ax_phase.plot(y_true[:, 0], y_true[:, 1], color="tab:green", label="true")
    ax_phase.plot(y_pred[:, 0], y_pred[:, 1], "--", color="tab:blue", label="learned")
    ax_phase.set(title="Phase portrait", xlabel="x", ylabel="y", aspect="equal")
    ax_phase.legend(loc="upper right", fontsize="small")

    grid = np.linspace(-2.2, 2.2, 21, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)
    velocity = np.asarray(dynamics(tf.constant(0.0), tf.constant(points))).reshape(*gx.shape, 2)
    ax_field.streamplot(gx, gy, velocity[..., 0], velocity[..., 1], color="black", density=0.8)
    ax_field.set(title="Learned vector field", xlabel="x", ylabel="y", aspect="equal")

    figure.savefig(path, format="png", dpi=100)


def run_spiral_demo(
    output: str | Path = "spiral.png",
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    verbose: int = 1,
) -> SpiralResult:
    """Make the spiral, fit it, predict the whole trajectory, write the PNG.

    Example:
        >>> result = run_spiral_demo("spiral.png", epochs=1, verbose=0)
        >>> result.output.read_bytes()[:4]
        b'\\x89PNG'
    """
    started = time.perf_counter()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    t, y = make_spiral()
    dynamics, losses = fit_spiral(t, y, epochs=epochs, seed=seed, verbose=verbose)
    y_pred = predict_spiral(dynamics, t, y[0])
    mse = float(tf.reduce_mean(tf.square(y_pred - y)))
    plot_spiral(output, t, y, y_pred, dynamics)
    return SpiralResult(output, mse, losses[-1], time.perf_counter() - started)
