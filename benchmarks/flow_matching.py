"""Benchmark: what flow matching saves, in one run.

1. **Training cost per image** of the `cfm_mnist` and `ffjord_mnist` recipes: each
   model is built from its zoo config, compiled as `ode_zoo.load` compiles it, and
   `train_on_batch` is timed on real MNIST batches of the recipe's size (random
   pixels when the MNIST files are absent, said in the output). Prints seconds per
   image and ffjord/cfm.
2. **Evaluations of the likelihood solve** (dopri5 at 1e-5, exact trace, the same
   10,000 held-out points) on 8 Gaussians: fields trained here by OT-CFM
   (Sinkhorn pairs) and by independent CFM for `--fm-steps` steps, against the
   published FFJORD+RNODE flow `ffjord_toy_8gaussians`; with the NLL of each
   (true density: the generator's). Straighter paths need fewer evaluations.
3. **U-Net training step at torchcfm's MNIST configuration** (32 channels, one
   residual block per resolution, batch 128, independent coupling): ours, and
   torchcfm's `UNetModel` in PyTorch when torch and torchcfm are installed (neither
   is a dependency; otherwise that line says it was skipped). Both on `--threads`.

Run:  python benchmarks/flow_matching.py [--threads 2] [--repeats 5] [--fm-steps 3000]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import setup_threads, timed  # noqa: E402

from ode_zoo.datasets.toy2d import sample_toy  # noqa: E402
from ode_zoo.flows import FFJORD  # noqa: E402
from ode_zoo.flows.flow_matching import independent_path, ot_path, sinkhorn_pairing  # noqa: E402
from ode_zoo.flows.gaussian import standard_normal_log_prob  # noqa: E402
from ode_zoo.layers import DenseVectorField  # noqa: E402
from ode_zoo.layers.ode_block import EvaluationCount  # noqa: E402
from ode_zoo.zoo.configs import load_config  # noqa: E402
from ode_zoo.zoo.presets import build_compiled_model  # noqa: E402

TOY, TEST_POINTS, FM_BATCH = "8gaussians", 10_000, 256
UNET_BATCH = 128           # torchcfm's MNIST batch, at least either recipe's batch
LIKELIHOOD_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}


def mnist_batch(size: int) -> tuple[np.ndarray, str]:
    """The first `size` MNIST training images, or seeded random pixels without the files."""
    try:
        from ode_zoo.datasets import load_mnist
        return load_mnist("train")[0][:size].astype(np.float32), "MNIST"
    except (FileNotFoundError, OSError):
        pixels = np.random.default_rng(0).integers(0, 256, (size, 28, 28, 1))
        return pixels.astype(np.float32), "random pixels (no MNIST files found)"


def recipe_seconds_per_image(name: str, images: np.ndarray, repeats: int) -> float:
    """Median wall seconds of one `train_on_batch` of recipe `name` on the first
    batch of `images`, per image."""
    config = load_config(name)
    batch_size = config["training"]["batch_size"]
    model = build_compiled_model(config, config["training"].get("model_overrides", {}))
    return timed(lambda: model.train_on_batch(images[:batch_size]), repeats) / batch_size


def train_toy_field(path: str, steps: int) -> DenseVectorField:
    """A 2-D field trained by flow matching on the toy: "ot" (OT path, Sinkhorn
    pairs) or "independent" (I-CFM: independent pairs, σ = 0.01)."""
    keras.utils.set_random_seed(0)
    field = DenseVectorField((64, 64, 64), activation="softplus")
    field.build((), (None, 2))
    data = tf.constant(sample_toy(TOY, steps * FM_BATCH, seed=1).reshape(steps, FM_BATCH, 2))
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps))

    @tf.function
    def step(x1, k):
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(0, tf.int64), k]), 4)
        x0 = tf.random.stateless_normal(tf.shape(x1), seeds[0])
        t = tf.random.stateless_uniform([FM_BATCH], seeds[1])
        if path == "ot":
            x1 = tf.gather(x1, sinkhorn_pairing(x0, x1, 0.01, 100, seed=seeds[2]))
            x_t, target = ot_path(x0, x1, t, 1e-4)
        else:
            x_t, target = independent_path(x0, x1, t, 0.01,
                                           tf.random.stateless_normal(tf.shape(x1), seeds[3]))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(field(t[:, None], x_t) - target))
        optimizer.apply(tape.gradient(loss, field.trainable_variables), field.trainable_variables)

    for k in range(steps):
        step(data[k], tf.constant(k, tf.int64))
    return field


def field_likelihood(field: DenseVectorField, points: np.ndarray) -> tuple[float, float]:
    """Mean NLL (nats) of `points` under the CNF of `field` and the evaluations of its solve."""
    nfe = EvaluationCount()
    flow = FFJORD(field, trace="exact", solver=LIKELIHOOD_SOLVER, stats_sink=nfe)
    y = tf.constant(points)
    log_prob = standard_normal_log_prob(flow.inverse(y)) + flow.inverse_log_det_jacobian(
        y, event_ndims=1)
    return -float(tf.reduce_mean(log_prob)), float(nfe.result())


def published_ffjord_likelihood(points: np.ndarray) -> tuple[float, float]:
    """Mean NLL and evaluations of the published ffjord_toy_8gaussians at the same solver."""
    import ode_zoo
    model = ode_zoo.load("ffjord_toy_8gaussians", eval_solver=LIKELIHOOD_SOLVER)
    result = model.evaluate(points, batch_size=len(points), verbose=0, return_dict=True)
    return float(result["nll"]), float(result["nfe"])


def ours_unet_step(images: np.ndarray, repeats: int) -> float:
    """Seconds of one flow-matching step of our U-Net at torchcfm's MNIST size on a
    batch of `images`."""
    config = load_config("cfm_mnist")
    config["model"]["config"].update(coupling="independent")
    model = build_compiled_model(config, {})
    return timed(lambda: model.train_on_batch(images), repeats)


def torchcfm_unet_step(images: np.ndarray, repeats: int, threads: int) -> str:
    """Seconds of one I-CFM step of torchcfm's MNIST U-Net in PyTorch, or why skipped."""
    try:
        import torch
        from torchcfm.models.unet import UNetModel
    except ImportError as error:
        return f"skipped ({error.name} is not installed)"
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = UNetModel(dim=(1, 28, 28), num_channels=32, num_res_blocks=1)
    optimizer = torch.optim.Adam(model.parameters(), 2e-4)
    x1 = torch.from_numpy(images).permute(0, 3, 1, 2) / 127.5 - 1.0

    def step() -> None:
        x0, t = torch.randn_like(x1), torch.rand(len(x1))
        x_t = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * x1
        loss = ((model(t, x_t) - (x1 - x0)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    parameters = sum(p.numel() for p in model.parameters())
    return f"{np.median(times):.3f} s ({parameters / 1e6:.2f}M parameters)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fm-steps", type=int, default=3000,
                        help="training steps of each 2-D flow-matching field")
    args = parser.parse_args()
    setup_threads(args.threads)
    images, source = mnist_batch(UNET_BATCH)
    print(f"threads {args.threads}; training batches: {source}")

    cfm = recipe_seconds_per_image("cfm_mnist", images, args.repeats)
    ffjord = recipe_seconds_per_image("ffjord_mnist", images, args.repeats)
    print(f"training seconds per image: cfm_mnist {cfm * 1e3:.2f} ms, ffjord_mnist "
          f"{ffjord * 1e3:.2f} ms, ffjord/cfm {ffjord / cfm:.2f}x")

    points = sample_toy(TOY, TEST_POINTS, seed=123).astype(np.float32)
    rows = {}
    for path in ("ot", "independent"):
        rows[f"{path} CFM ({args.fm_steps} steps)"] = field_likelihood(
            train_toy_field(path, args.fm_steps), points)
    rows["FFJORD+RNODE (published)"] = published_ffjord_likelihood(points)
    print(f"likelihood solve on {TOY}, {TEST_POINTS} points, dopri5 1e-5, exact trace:")
    for label, (nll, nfe) in rows.items():
        print(f"  {label:28s} NLL {nll:.3f} nats, {nfe:.0f} evaluations")

    ours = ours_unet_step(images, args.repeats)
    print(f"U-Net I-CFM step, batch {UNET_BATCH}: ode_zoo {ours:.3f} s; torchcfm "
          f"{torchcfm_unet_step(images, args.repeats, args.threads)}")


if __name__ == "__main__":
    main()
