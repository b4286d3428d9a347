"""Benchmark: ode_zoo's fixed-point solvers beside TorchDEQ's, and DEQ gradients, in one run.

Two standard cells:
  dense  f(z, x) = tanh(z Wᵀ + x Uᵀ), D = 256, batch 512: W standard normal scaled to
         spectral radius 0.95 (so the Picard iteration contracts slowly), U standard
         normal / √D, x ~ N(0, 0.1²); all drawn with numpy (seed 0) and given to ode_zoo
         (a TanhCell with these weights) and, when torch and torchdeq are installed
         (no dependency of ode_zoo), to TorchDEQ's solvers as the same function.
  conv   the published deq_mnist cell (MDEQ-style ConvDEQCell, 6×6×64) on the
         stem features of 128 MNIST test images (ODE_ZOO_DATA), or, with
         --random-conv or without the preset, a randomly initialized ConvDEQCell
         with kernel std 0.05.
Relative tolerance 1e-4 for every sample, at most 300 iterations, default options.
Dense: for Picard (TorchDEQ's fixed_point_iter), Anderson and Broyden, evaluations
of f, converged samples and the best of --repeats times (tf.function in graph mode
and under XLA; the implementations take turns, so load drifts hit all alike), with
the ratio of ode_zoo's faster mode to TorchDEQ. Conv: mean iterations per sample,
evaluations, converged share, median time in graph mode and under XLA, and peak
memory growth (child process).
Then the gradient of a loss through the equilibrium: implicit (a fixed-point solve
on VJPs) against autodiff unrolled through as many Picard iterations as the
slowest converging sample needed: time, peak memory growth and their relative
difference.

On a loaded machine torch's OpenMP threads wait on each other (2 threads: a median
evaluation 30 times its best); --threads 1 compares both libraries on one thread.

Run: python benchmarks/deq_solve.py [--repeats 5] [--threads 2] [--random-conv] [--dense-only]
(TorchDEQ: pip install torch==2.13.0 and pip install torchdeq --no-deps)
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import child_peak_growth, report_peak_growth, setup_threads, timed  # noqa: E402

TOL, MAX_ITER = 1e-4, 300
METHODS = ("picard", "anderson", "broyden")
TORCHDEQ_SOLVERS = {"picard": "fixed_point_iter", "anderson": "anderson", "broyden": "broyden"}


def dense_weights(d: int = 256, batch: int = 512, radius: float = 0.95, seed: int = 0):
    """(W, U, x) as float32 numpy arrays; W has spectral radius `radius`."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((d, d))
    w *= radius / np.abs(np.linalg.eigvals(w)).max()
    u = rng.standard_normal((d, d)) / np.sqrt(d)
    x = 0.1 * rng.standard_normal((batch, d))
    return w.astype("float32"), u.astype("float32"), x.astype("float32")


def dense_problem():
    """A TanhCell holding the numpy weights (its z W_cell is z Wᵀ), and x."""
    from ode_zoo.layers import TanhCell
    w, u, x = dense_weights()
    cell = TanhCell()
    x = tf.constant(x)
    cell(x, x)
    cell.w.assign(w.T)
    cell.u.assign(u.T)
    return cell, x


def wall_time(fn) -> float:
    """Wall time of one call of fn, its outputs fetched."""
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn())
    return time.perf_counter() - start


def torchdeq_runners(threads: int):
    """{method: callable returning (evaluations, converged, seconds)} on the dense cell in
    TorchDEQ with `threads` threads, or {} without torch or torchdeq."""
    try:
        import torch
        from torchdeq.solver import get_solver
    except ImportError as error:
        print(f"(TorchDEQ unavailable: {error}; pip install torch==2.13.0 and "
              f"pip install torchdeq --no-deps)")
        return {}
    torch.set_num_threads(threads)
    w, u, x = (torch.from_numpy(a) for a in dense_weights())
    injection = x @ u.T

    def run(method):
        calls = [0]

        def f(z):
            calls[0] += 1
            return torch.tanh(z @ w.T + injection)

        with torch.no_grad():
            start = time.perf_counter()
            _, _, info = get_solver(TORCHDEQ_SOLVERS[method])(
                f, torch.zeros_like(injection), max_iter=MAX_ITER, tol=TOL, stop_mode="rel")
            seconds = time.perf_counter() - start
        return calls[0], int((info["rel_lowest"] <= TOL).sum()), seconds

    return {method: (lambda method=method: run(method)) for method in METHODS}


def compare_dense(repeats: int, threads: int) -> None:
    """The dense cell: ode_zoo (graph, XLA) and TorchDEQ, times as best of `repeats`."""
    from ode_zoo import fixed_point
    cell, x = dense_problem()
    f = cell_fn(cell, x)
    torchdeq = torchdeq_runners(threads)
    print(f"\n== dense: f(z) = tanh(z Wᵀ + x Uᵀ), D={x.shape[1]}, batch {x.shape[0]}, "
          f"spectral radius of W 0.95, rel tol {TOL}, max_iter {MAX_ITER}, {threads} threads, "
          f"best of {repeats} ==")
    print(f"{'method':9s} {'impl':9s} {'evals':>6s} {'conv.':>8s} {'ms':>8s} {'ms/eval':>8s}")
    for method in METHODS:
        solves = {mode: tf.function(lambda: fixed_point(f, tf.zeros_like(x), method=method,
                                                        tol=TOL, max_iter=MAX_ITER),
                                    jit_compile=mode == "xla") for mode in ("graph", "xla")}
        rows = {mode: [int(r.num_evaluations), int(tf.reduce_sum(tf.cast(r.converged, tf.int32)))]
                for mode, r in ((mode, solve()) for mode, solve in solves.items())}
        seconds = {name: [] for name in [*solves, *(["torchdeq"] if torchdeq else [])]}
        for _ in range(repeats):           # taking turns, so load drifts hit all alike
            for mode, solve in solves.items():
                seconds[mode].append(wall_time(solve))
            if torchdeq:
                evaluations, converged, elapsed = torchdeq[method]()
                rows["torchdeq"] = [evaluations, converged]
                seconds["torchdeq"].append(elapsed)
        for name, (evaluations, converged) in rows.items():
            best = min(seconds[name])
            print(f"{method:9s} {name:9s} {evaluations:6d} {converged:4d}/{x.shape[0]:<3d} "
                  f"{best * 1e3:8.1f} {best * 1e3 / evaluations:8.2f}")
        if torchdeq:
            fastest = min(("graph", "xla"), key=lambda mode: min(seconds[mode]))
            ours, theirs = min(seconds[fastest]), min(seconds["torchdeq"])
            print(f"{method:9s} ratio ode_zoo ({fastest}) / TorchDEQ "
                  f"{TORCHDEQ_SOLVERS[method]}: time {ours / theirs:.2f}, per evaluation "
                  f"{ours / rows[fastest][0] / (theirs / rows['torchdeq'][0]):.2f}")


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


def solve(cell, x, method, jit_compile=False):
    from ode_zoo import fixed_point
    f = cell_fn(cell, x)
    return tf.function(lambda: fixed_point(f, tf.zeros_like(x), method=method, tol=TOL,
                                           max_iter=MAX_ITER), jit_compile=jit_compile)


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
        return cell, x, f"tanh(z Wᵀ + x Uᵀ) D={x.shape[1]} batch {x.shape[0]}"
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
    parser.add_argument("--threads", type=int, default=2,
                        help="intra-op threads of TensorFlow and torch alike")
    parser.add_argument("--dense-only", action="store_true",
                        help="only the dense comparison with TorchDEQ")
    parser.add_argument("--memory-probe", nargs=2, metavar=("CELL", "WHAT"))
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(*args.memory_probe, args.random_conv)
        return
    setup_threads(args.threads)
    keras.utils.set_random_seed(0)
    flags = ["--random-conv"] if args.random_conv else []
    compare_dense(args.repeats, args.threads)
    if args.dense_only:
        return
    cell, x, title = problem("conv", args.random_conv)
    print(f"\n== conv: {title}, rel tol {TOL}, {args.threads} threads, median of {args.repeats} ==")
    print(f"{'method':10s} {'iters':>7s} {'evals':>6s} {'conv.':>6s} {'ms':>9s} {'XLA ms':>9s} "
          f"{'mem MB':>8s}")
    for method in METHODS:
        fn = solve(cell, x, method)
        result = fn()
        seconds = timed(fn, args.repeats)
        xla_seconds = timed(solve(cell, x, method, jit_compile=True), args.repeats)
        memory = child_peak_growth(__file__, ["--memory-probe", "conv", method, *flags])
        print(f"{method:10s} {float(tf.reduce_mean(result.num_steps)):7.1f} "
              f"{int(result.num_evaluations):6d} "
              f"{float(tf.reduce_mean(tf.cast(result.converged, tf.float32))):6.2f} "
              f"{seconds * 1e3:9.1f} {xla_seconds * 1e3:9.1f} {memory['growth_mb']:8.1f}")
    for kind in ("dense", "conv"):
        cell, x, title = problem(kind, args.random_conv)
        steps = unrolling_depth(solve(cell, x, "picard")())
        implicit, unrolled = gradient_functions(cell, x, steps)
        g_implicit, g_unrolled = implicit(), unrolled()
        difference = max(float(tf.norm(a - b) / tf.norm(b)) for a, b in zip(g_implicit,
                                                                            g_unrolled))
        print(f"\n== gradient, {kind}: {title}, median of {args.repeats} ==")
        print(f"implicit {timed(implicit, args.repeats) * 1e3:8.1f} ms "
              f"{child_peak_growth(__file__, ['--memory-probe', kind, 'implicit', *flags])['growth_mb']:7.1f} MB | "
              f"unrolled ({steps} Picard steps) {timed(unrolled, args.repeats) * 1e3:8.1f} ms "
              f"{child_peak_growth(__file__, ['--memory-probe', kind, 'unrolled', *flags])['growth_mb']:7.1f} MB | "
              f"max relative difference {difference:.2e}")

if __name__ == "__main__":
    main()
