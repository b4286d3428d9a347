"""Benchmark: ode_zoo's fixed-point solvers and DEQ gradients, 2 threads, one run.

Two standard cells:
  dense  TanhCell f(z, x) = tanh(z W + x U + b), ‖W‖₂ = 0.9, D = 256, batch 512,
         x ~ N(0, 0.1²);
  conv   the published deq_mnist cell (MDEQ-style ConvDEQCell, 6×6×64) on the
         stem features of 128 MNIST test images (ODE_ZOO_DATA), or, with
         --random-conv or without the preset, a randomly initialized ConvDEQCell
         with kernel std 0.05.
For Picard (damping 1), Anderson and Broyden at relative tolerance 1e-4: mean
iterations per sample, evaluations of f, converged share, time (tf.function,
median) and peak memory growth (child process). Then the gradient of a loss
through the equilibrium: implicit (a fixed-point solve on VJPs) against
autodiff unrolled through as many Picard iterations as the slowest converging
sample needed: time, peak memory growth and their relative difference.

Run: python benchmarks/deq_solve.py [--repeats 5] [--random-conv]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import child_peak_growth, report_peak_growth, setup_threads, timed  # noqa: E402

TOL, MAX_ITER = 1e-4, 200
METHODS = ("picard", "anderson", "broyden")


def dense_problem():
    """Small injections keep tanh near its linear range, so Picard contracts at ~0.9."""
    from ode_zoo.layers import TanhCell
    cell = TanhCell(w_scale=0.9)
    x = 0.1 * tf.random.stateless_normal((512, 256), [0, 0])
    cell(x, x)
    return cell, x


def conv_problem(random: bool):
    """The deq_mnist cell on real stem features, or a random one."""
    if not random:
        try:
            import ode_zoo
            from ode_zoo.datasets import load_mnist
            model = ode_zoo.load("deq_mnist")
            images, _ = load_mnist("test")
            h = tf.constant(images[:128].astype("float32")) / 255.0
            for layer in model.stem:
                h = layer(h)
            return model.deq_block.cell, h, "deq_mnist"
        except (FileNotFoundError, ValueError, OSError) as error:
            print(f"(deq_mnist unavailable: {error}; using a random conv cell)")
    from ode_zoo.layers import ConvDEQCell
    cell = ConvDEQCell(64, groups=32, init_scale=0.05)
    x = tf.random.stateless_normal((128, 6, 6, 64), [0, 1])
    cell(x, x)
    return cell, x, "random"


def cell_fn(cell, x):
    """f(z) = cell(z, x) through stateless_call on the cell's weights as tensors."""
    weights = [v.value for v in cell.trainable_variables]
    frozen = [v.value for v in cell.non_trainable_variables]
    return lambda z, params=weights: cell.stateless_call(list(params), frozen, z, x)[0]


def solve(cell, x, method):
    from ode_zoo import fixed_point
    f = cell_fn(cell, x)
    return tf.function(lambda: fixed_point(f, tf.zeros_like(x), method=method, tol=TOL,
                                           max_iter=MAX_ITER))


def gradient_functions(cell, x, unrolled_steps):
    """(implicit, unrolled) gradient functions of sum(z*²) w.r.t. the cell's weights."""
    from ode_zoo.layers import DEQBlock
    block = DEQBlock(cell, method="anderson", tol=TOL, max_iter=MAX_ITER, backward_tol=TOL,
                     backward_max_iter=MAX_ITER)

    @tf.function
    def implicit():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(block(x) ** 2)
        return tape.gradient(loss, cell.trainable_variables)

    @tf.function
    def unrolled():
        with tf.GradientTape() as tape:
            z = tf.zeros_like(x)
            for _ in range(unrolled_steps):
                z = cell(z, x)
            loss = tf.reduce_sum(z ** 2)
        return tape.gradient(loss, cell.trainable_variables)

    return implicit, unrolled


def problem(name: str, random_conv: bool):
    if name == "dense":
        cell, x = dense_problem()
        return cell, x, "TanhCell D=256 batch 512"
    cell, x, source = conv_problem(random_conv)
    return cell, x, f"ConvDEQCell {tuple(x.shape[1:])} batch {x.shape[0]} ({source})"


def unrolling_depth(picard) -> int:
    """Picard iterations of the slowest sample that converged, from a Picard result."""
    return int(tf.reduce_max(tf.where(picard.converged, picard.num_steps, 0)))


def memory_probe(kind: str, what: str, random_conv: bool) -> None:
    """Child: peak memory growth of one forward solve or one gradient."""
    setup_threads()
    cell, x, _ = problem(kind, random_conv)
    if what in METHODS:
        fn = solve(cell, x, what)
    else:
        steps = unrolling_depth(solve(cell, x, "picard")())
        fn = dict(zip(("implicit", "unrolled"), gradient_functions(cell, x, steps)))[what]
    report_peak_growth(fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--random-conv", action="store_true")
    parser.add_argument("--memory-probe", nargs=2, metavar=("CELL", "WHAT"))
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(*args.memory_probe, args.random_conv)
        return
    setup_threads()
    keras.utils.set_random_seed(0)
    flags = ["--random-conv"] if args.random_conv else []
    for kind in ("dense", "conv"):
        cell, x, title = problem(kind, args.random_conv)
        print(f"\n== {kind}: {title}, rel tol {TOL}, 2 threads, median of {args.repeats} ==")
        print(f"{'method':10s} {'iters':>7s} {'evals':>6s} {'conv.':>6s} {'ms':>9s} "
              f"{'mem MB':>8s}")
        results = {}
        for method in METHODS:
            fn = solve(cell, x, method)
            result = results[method] = fn()
            seconds = timed(fn, args.repeats)
            memory = child_peak_growth(__file__, ["--memory-probe", kind, method, *flags])
            print(f"{method:10s} {float(tf.reduce_mean(result.num_steps)):7.1f} "
                  f"{int(result.num_evaluations):6d} "
                  f"{float(tf.reduce_mean(tf.cast(result.converged, tf.float32))):6.2f} "
                  f"{seconds * 1e3:9.1f} {memory['growth_mb']:8.1f}")
        steps = unrolling_depth(results["picard"])
        implicit, unrolled = gradient_functions(cell, x, steps)
        g_implicit, g_unrolled = implicit(), unrolled()
        difference = max(float(tf.norm(a - b) / tf.norm(b)) for a, b in zip(g_implicit,
                                                                            g_unrolled))
        print(f"gradient   implicit {timed(implicit, args.repeats) * 1e3:8.1f} ms "
              f"{child_peak_growth(__file__, ['--memory-probe', kind, 'implicit', *flags])['growth_mb']:7.1f} MB | "
              f"unrolled ({steps} Picard steps) {timed(unrolled, args.repeats) * 1e3:8.1f} ms "
              f"{child_peak_growth(__file__, ['--memory-probe', kind, 'unrolled', *flags])['growth_mb']:7.1f} MB | "
              f"max relative difference {difference:.2e}")


if __name__ == "__main__":
    main()
