"""Benchmark: ode_zoo's FFJORD bijector against tfp.bijectors.FFJORD; RNODE's NFE.

The two flows run on one shared vector field, in the same run, with the same
weights, first at the same tolerance and then at the same accuracy; then RNODE's
effect on the evaluations of a trained toy flow.

Fields (--fields): "toy:<name>", the trained field of the published flow
ffjord_toy_<name> (ConcatSquash MLP 3x64 with time input, tanh, D = 2) on points
of its test split, and "random:<D>", an untrained `DenseVectorField` (64-64,
tanh) on x ~ N(0, I); default toy:checkerboard and random:16; base N(0, I),
batch 512. An untrained field says little: neither solver's step count depends
on the tolerance there, while a trained field needs more steps at tighter
tolerances, as real flows do.
Both flows solve with dopri5 at rtol = atol = 1e-5 (TFP: `DormandPrince`, its
other options at their defaults) with the exact trace and with Hutchinson's
estimator on the same Rademacher noise (TFP's sample_fn draws ode_zoo's). Rows:

  log_prob  TransformedDistribution(base, flow).log_prob(x) in a tf.function,
            graph and XLA (jit_compile=True);
  gradient  gradient of the mean log_prob w.r.t. the field's weights: ode_zoo
            backprop (graph only: under XLA an adaptive loop preallocates
            max_num_steps steps) and adjoint (graph, XLA), TFP's adjoint (graph,
            XLA);
  NFE       field calls of one log_prob or gradient (forward + backward solves),
            counted in a separate untimed graph pass by a tf.Variable counter
            wrapped around the field, the same way for both libraries;
  error     log_prob: max |log p - reference| over the batch (--log-prob-error
            mean: the mean, which bounds the error of a batch's NLL and is less
            sensitive to the few points the error is largest at), the reference being
            ode_zoo in float64 at rtol = atol = 1e-9 with the same noise (checked
            against TFP in float64 at 1e-9); gradient: relative L2 error against
            that reference's (adjoint) gradient.

Times are medians of --repeats calls after a compiling one, wall and process CPU
time (on cores shared with other jobs the CPU time is the robust number).
"best TFP / row" divides the fastest TFP configuration of the task (by wall,
by CPU time) by the row; the summary divides it by the fastest ode_zoo one. With
--threads 1 the CPU time is close to the wall time the run would take on a free
core. A configuration that fails (TFP's exact trace gradient under XLA) is
reported as failed.

Equal tolerance is not equal accuracy: the two solvers take different steps at
the same tolerance (on the untrained fields ode_zoo is the more accurate, on the
trained field TFP, which takes 3x the evaluations there). The issue's target
(>= 3x faster than TFP at equal accuracy) is therefore also measured at equal
accuracy, defined here as: TFP stays at the requested rtol = atol = 1e-5 and
sets the accuracy to match, the error (as above)
of its fastest configuration of the task (of its fastest by wall and by CPU time,
the smaller error); each ode_zoo configuration (variant and mode) then runs at
the loosest tolerance rtol = atol of LADDER (1e-3 down to 1e-7; tried loosest
first) whose own error, on the same batch, noise and reference, is <=
that error, and is timed and counted like the other rows. The tolerance is
chosen on the batch it is then measured on. --methods adds ode_zoo's other
adaptive methods (e.g. tsit5) to this search (not to the backprop gradient).

Per evaluation: one call of each library's augmented field [f, trace] (ode_zoo's
trace estimator, TFP's trace augmentation, same field and noise) in an XLA loop
of COST_LOOP calls. When the two cost the same, time at equal accuracy is the
ratio of evaluations.

RNODE: two `FFJORDToyFlow`s (3x64 field, exact trace) trained on 8gaussians
with the same budget (rk4 with 4 steps, adjoint, Adam 3e-3, batch 256,
--train-steps steps, the same initial weights and batches), one with kinetic =
Jacobian weight 0.01 and one with 0; for each, the evaluations of one dopri5
(1e-5) log_prob solve of held-out points and their NLL.

Run: python benchmarks/ffjord_logprob.py [--repeats 5] [--threads 2] [--fields toy:checkerboard random:16]
                                          [--methods dopri5 tsit5] [--log-prob-error max]
                                          [--train-steps 600] [--quick]
"""
from __future__ import annotations

import argparse
import functools
import os
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from common import setup_threads  # noqa: E402

from ode_zoo import Solver, load  # noqa: E402
from ode_zoo.datasets import sample_toy  # noqa: E402
from ode_zoo.flows import FFJORD  # noqa: E402
from ode_zoo.flows.trace_estimators import (  # noqa: E402
    TRACE_ESTIMATORS, rademacher_noise, stateless_seed)
from ode_zoo.layers import DenseVectorField, KerasField  # noqa: E402
from ode_zoo.models import FFJORDToyFlow  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions

HIDDEN, TOL, REFERENCE_TOL, NOISE_SEED = (64, 64), 1e-5, 1e-9, 3
COST_LOOP = 200  # evaluations per timed loop of `evaluation_cost`
# ode_zoo's tolerances at equal accuracy, loosest first. On a trained field TFP at 1e-5 takes
# about 3x the evaluations and has a 10x smaller max error than ode_zoo at 1e-5, which needs
# about 3e-7 to match it (a max instead of an RMS error norm matches at 1e-5, with as many
# evaluations; matching the mean error instead needs 1e-6, or 3e-6 with tsit5).
LADDER = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7, 1e-7)
ZOO_TRACES = {"exact": "exact", "hutchinson": "hutchinson_rademacher"}
MODES = ("graph", "xla")
LOG_PROB_ERRORS = {"max": np.max, "mean": np.mean}  # statistics of |Δ log p| over the batch

Field = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
Flow = Callable[[Field], tfb.Bijector]
Run = Callable[[tf.Tensor], Any]


class Problem(NamedTuple):
    """The shared field (float32), a float64 copy for the reference, the batch,
    and a label for the tables."""

    field: DenseVectorField
    field64: DenseVectorField
    x: tf.Tensor
    label: str


class Row(NamedTuple):
    """One measured configuration; times in seconds, None when it failed."""

    task: str
    library: str
    variant: str
    mode: str
    tol: float
    wall: Optional[float]
    cpu: Optional[float]
    nfe: int
    error: Optional[float]


Results = Dict[Tuple[str, str], List[Row]]  # rows by (problem label, trace)


class CountingField:
    """f(t, z) that adds 1 to `count` per call: a plain callable, so both
    libraries read the layer's variables through it the same way."""

    def __init__(self, field: Field):
        self.field = field
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False)

    def __call__(self, t: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
        with tf.control_dependencies([self.count.assign_add(1)]):
            return self.field(t, z)


def float64_copy(field: DenseVectorField, dim: int) -> DenseVectorField:
    """The same field in float64 with the same weights (for the reference solves)."""
    copy = DenseVectorField.from_config({**field.get_config(), "dtype": "float64",
                                         "name": f"{field.name}_float64"})
    copy.build((), (None, dim))
    copy.set_weights(field.get_weights())
    return copy


def random_problem(dim: int, batch: int) -> Problem:
    """An untrained field (HIDDEN, tanh) on D = dim, x ~ N(0, I)."""
    keras.utils.set_random_seed(dim)
    field = DenseVectorField(HIDDEN, name=f"field_{dim}")
    field.build((), (None, dim))
    x = tf.random.stateless_normal((batch, dim), [dim, 1])
    return Problem(field, float64_copy(field, dim), x, f"D={dim} untrained")


def trained_problem(toy: str, batch: int) -> Problem:
    """The field of the published `ffjord_toy_<toy>` flow (3x64, D = 2), on points
    of its test split (seed 3)."""
    field = load(f"ffjord_toy_{toy}").field
    x = tf.constant(sample_toy(toy, batch, seed=3), tf.float32)
    return Problem(field, float64_copy(field, 2), x, f"{toy} trained")


def make_problem(spec: str, batch: int) -> Problem:
    """"random:<D>" or "toy:<name of a published ffjord_toy flow>"."""
    kind, _, value = spec.partition(":")
    if kind == "random":
        return random_problem(int(value), batch)
    if kind == "toy":
        return trained_problem(value, batch)
    raise ValueError(f"Unknown field {spec!r}: use random:<D> or toy:<name>.")


def tfp_rademacher(shape: tf.Tensor, dtype: tf.DType, seed: Any = None) -> tf.Tensor:
    """ode_zoo's Rademacher noise of seed NOISE_SEED with TFP's leading sample axis."""
    del seed
    return rademacher_noise(shape[1:], dtype, stateless_seed(NOISE_SEED))[tf.newaxis]


TFP_TRACES = {
    "exact": tfb.ffjord.trace_jacobian_exact,
    "hutchinson": functools.partial(tfb.ffjord.trace_jacobian_hutchinson,
                                    sample_fn=tfp_rademacher),
}


def zoo_flow(trace: str, tol: float = TOL, adjoint: bool = False,
             method: str = "dopri5") -> Flow:
    """ode_zoo's FFJORD of a Keras field, its weights explicit (as the zoo's models do)."""
    def flow(field: keras.layers.Layer) -> FFJORD:
        adapter = KerasField(field)
        return FFJORD(adapter, params=adapter.parameters, trace=ZOO_TRACES[trace],
                      seed=NOISE_SEED, solver=Solver(method, rtol=tol, atol=tol, adjoint=adjoint))
    return flow


def tfp_flow(trace: str, tol: float = TOL, dtype: tf.DType = tf.float32) -> Flow:
    solver = tfp.math.ode.DormandPrince(rtol=tol, atol=tol)
    return lambda field: tfb.FFJORD(field, ode_solve_fn=solver.solve,
                                    trace_augmentation_fn=TFP_TRACES[trace], dtype=dtype)


def log_prob_run(flow: tfb.Bijector, dim: int, dtype: tf.DType = tf.float32) -> Run:
    base = tfd.MultivariateNormalDiag(loc=tf.zeros(dim, dtype))
    return tfd.TransformedDistribution(base, flow).log_prob


def gradient_run(flow: tfb.Bijector, dim: int, variables: list,
                 dtype: tf.DType = tf.float32) -> Run:
    log_prob = log_prob_run(flow, dim, dtype)

    def gradient(x: tf.Tensor) -> List[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(log_prob(x))
        return tape.gradient(loss, variables)
    return gradient


class Config(NamedTuple):
    """A configuration to measure; `flow` maps a tolerance to its flow factory."""

    trace: str
    task: str
    library: str
    variant: str
    flow: Callable[[float], Flow]
    modes: Tuple[str, ...]


def configurations(trace: str, method: str = "dopri5") -> List[Config]:
    """The configurations of one trace estimator; ode_zoo solves with `method` (named
    in its variants unless dopri5), TFP with its DormandPrince."""
    zoo = functools.partial(zoo_flow, trace, method=method)
    zoo_adjoint = functools.partial(zoo_flow, trace, adjoint=True, method=method)
    tfp_ = functools.partial(tfp_flow, trace)
    prefix = "" if method == "dopri5" else f"{method} "
    return [
        Config(trace, "log_prob", "ode_zoo", prefix.strip(), zoo, MODES),
        Config(trace, "log_prob", "tfp", "", tfp_, MODES),
        Config(trace, "gradient", "ode_zoo", f"{prefix}backprop", zoo, ("graph",)),
        Config(trace, "gradient", "ode_zoo", f"{prefix}adjoint", zoo_adjoint, MODES),
        Config(trace, "gradient", "tfp", "adjoint", tfp_, MODES),
    ]


def make_run(task: str, flow: tfb.Bijector, problem: Problem) -> Run:
    dim = problem.x.shape[-1]
    if task == "log_prob":
        return log_prob_run(flow, dim)
    return gradient_run(flow, dim, problem.field.trainable_variables)


def measure(fn: Run, x: tf.Tensor, repeats: int) -> Tuple[float, float, Any]:
    """Median wall and CPU seconds of fn(x) after one compiling call, and its output."""
    fn(x)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = tf.nest.map_structure(lambda v: v.numpy(), fn(x))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), out


def count_evaluations(task: str, flow: Flow, problem: Problem) -> int:
    """Field calls of one run, through a counting wrapper (an untimed graph pass)."""
    counted = CountingField(problem.field)
    tf.function(make_run(task, flow(counted), problem))(problem.x)
    return int(counted.count.numpy())


def error(task: str, out: Any, reference: Dict[str, Any], statistic: str) -> float:
    """`statistic` (max or mean) of |Δ log p| for log_prob, relative L2 error of the
    gradient."""
    if task == "log_prob":
        return float(LOG_PROB_ERRORS[statistic](np.abs(out - reference["log_prob"])))
    difference = [a - b for a, b in zip(out, reference["gradient"])]
    return float(np.sqrt(sum(np.sum(d ** 2) for d in difference)
                         / sum(np.sum(g ** 2) for g in reference["gradient"])))


def reference(problem: Problem, trace: str) -> Dict[str, Any]:
    """ode_zoo in float64 at 1e-9: log_prob and gradient, and TFP's float64 log_prob."""
    field, dim = problem.field64, problem.x.shape[-1]
    x = tf.cast(problem.x, tf.float64)
    log_prob = tf.function(log_prob_run(zoo_flow(trace, REFERENCE_TOL)(field), dim, tf.float64))
    gradient = tf.function(gradient_run(zoo_flow(trace, REFERENCE_TOL, adjoint=True)(field),
                                        dim, field.trainable_variables, tf.float64))
    tfp_log_prob = tf.function(log_prob_run(tfp_flow(trace, REFERENCE_TOL, tf.float64)(field),
                                            dim, tf.float64))
    return {"log_prob": log_prob(x).numpy(), "gradient": [g.numpy() for g in gradient(x)],
            "tfp_log_prob": tfp_log_prob(x).numpy()}


def measure_configuration(config: Config, tol: float, problem: Problem,
                          ref: Dict[str, Any], repeats: int, statistic: str) -> List[Row]:
    """One row per mode of `config` at rtol = atol = tol, log_prob's error by `statistic`."""
    flow = config.flow(tol)
    nfe = count_evaluations(config.task, flow, problem)
    rows = []
    for mode in config.modes:
        row = Row(config.task, config.library, config.variant, mode, tol, None, None, nfe, None)
        run = make_run(config.task, flow(problem.field), problem)
        try:
            wall, cpu, out = measure(tf.function(run, jit_compile=mode == "xla"),
                                     problem.x, repeats)
            rows.append(row._replace(wall=wall, cpu=cpu, error=error(config.task, out, ref,
                                                                       statistic)))
        except tf.errors.OpError as failure:
            print(f"  {config.trace} {config.task} {label(row)} failed: "
                  f"{failure.message.splitlines()[0]}", flush=True)
            rows.append(row)
    return rows


def target(rows: Sequence[Row], task: str) -> Row:
    """TFP's row whose error ode_zoo has to match: of its fastest by wall and by CPU
    time, the one with the smaller error."""
    task_rows = [r for r in rows if r.task == task]
    return min((best(task_rows, "tfp", key) for key in ("wall", "cpu")), key=lambda r: r.error)


def loosest_match(config: Config, goal: Row, problem: Problem, ref: Dict[str, Any],
                  repeats: int, statistic: str) -> Optional[Row]:
    """The single-mode `config`'s row at the loosest LADDER tolerance whose error is
    <= goal's, None when no tolerance of the ladder gets there."""
    tried, match = [], None
    for tol in LADDER:
        (row,) = measure_configuration(config, tol, problem, ref, repeats, statistic)
        tried.append(row)
        if row.error is not None and row.error <= goal.error:
            match = row
            break
    errors = ", ".join(f"{r.tol:.0e}: {'failed' if r.error is None else f'{r.error:.1e}'} "
                       f"({r.nfe} NFE)" for r in tried)
    choice = "none" if match is None else f"rtol=atol={match.tol:.0e}"
    ceiling = " (the ladder's loosest)" if match is not None and match.tol == LADDER[0] else ""
    print(f"  {config.trace} {config.task} {label(tried[0])}: TFP error {goal.error:.1e} "
          f"({label(goal)}); error at {errors} -> {choice}{ceiling}", flush=True)
    return match


def match_accuracy(problem: Problem, trace: str, ref: Dict[str, Any], rows: Sequence[Row],
                   repeats: int, methods: Sequence[str], statistic: str) -> List[Row]:
    """ode_zoo's configurations (the backprop gradient with dopri5 only), with each of
    `methods`, each mode at its loosest tolerance matching TFP's error."""
    matched = []
    for method in methods:
        for config in configurations(trace, method):
            if config.library != "ode_zoo" or (method != "dopri5"
                                               and config.variant.endswith("backprop")):
                continue
            goal = target(rows, config.task)
            for mode in config.modes:
                row = loosest_match(config._replace(modes=(mode,)), goal, problem, ref, repeats,
                                    statistic)
                if row is not None:
                    matched.append(row)
    return matched


def measure_trace(problem: Problem, trace: str, repeats: int, methods: Sequence[str],
                  statistic: str) -> Tuple[List[Row], List[Row]]:
    """Rows at equal tolerance (both libraries) and ode_zoo's rows at equal accuracy."""
    ref = reference(problem, trace)
    print(f"  {trace}: reference check max |ode_zoo - tfp| (float64, 1e-9) = "
          f"{np.max(np.abs(ref['log_prob'] - ref['tfp_log_prob'])):.1e}", flush=True)
    zoo_ms, tfp_ms = evaluation_cost(problem, trace, repeats)
    print(f"  {trace}: one evaluation of the augmented field, in an XLA loop of "
          f"{COST_LOOP}: ode_zoo {zoo_ms:.3f} ms, TFP {tfp_ms:.3f} ms", flush=True)
    rows = [row for config in configurations(trace)
            for row in measure_configuration(config, TOL, problem, ref, repeats, statistic)]
    return rows, match_accuracy(problem, trace, ref, rows, repeats, methods, statistic)


def evaluation_cost(problem: Problem, trace: str, repeats: int) -> Tuple[float, float]:
    """Milliseconds per evaluation of each library's augmented field [f, trace] (the
    state moved a little each time, so nothing is hoisted out of the loop): ode_zoo's
    trace estimator and TFP's trace augmentation on the same field and noise."""
    x = problem.x
    estimator = TRACE_ESTIMATORS[ZOO_TRACES[trace]]
    noise = estimator.sample_noise(tf.shape(x), x.dtype, stateless_seed(NOISE_SEED))
    tfp_augmented = TFP_TRACES[trace](problem.field, tf.shape(x), x.dtype)

    def zoo(t: tf.Tensor, z: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        return estimator.estimate(problem.field, t, z, noise)[:2]

    def tfp_(t: tf.Tensor, z: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        derivative, trace_value = tfp_augmented(t, (z, tf.zeros(tf.shape(z)[:1], z.dtype)))
        return derivative, tf.reduce_sum(tf.reshape(trace_value, [tf.shape(z)[0], -1]), -1)

    def per_evaluation(augmented: Callable) -> float:
        @tf.function(jit_compile=True)
        def loop(z: tf.Tensor) -> tf.Tensor:
            def body(i, z):
                derivative, trace_value = augmented(tf.cast(i, z.dtype) / COST_LOOP, z)
                return i + 1, z + 1e-6 * (derivative + trace_value[:, tf.newaxis])
            return tf.while_loop(lambda i, _: i < COST_LOOP, body, (0, z))[1]
        wall, _, _ = measure(loop, x, repeats)
        return wall / COST_LOOP * 1e3

    return per_evaluation(zoo), per_evaluation(tfp_)


def label(row: Row, mode: bool = True) -> str:
    """"library variant mode", e.g. "ode_zoo adjoint xla"."""
    parts = (row.library, row.variant, row.mode if mode else "")
    return " ".join(part for part in parts if part)


def best(rows: Sequence[Row], library: str, key: str) -> Optional[Row]:
    timed = [r for r in rows if r.library == library and getattr(r, key) is not None]
    return min(timed, key=lambda r: getattr(r, key), default=None)


def print_rows(trace: str, rows: List[Row]) -> None:
    for task in ("log_prob", "gradient"):
        task_rows = [r for r in rows if r.task == task]
        tfp_wall, tfp_cpu = best(task_rows, "tfp", "wall"), best(task_rows, "tfp", "cpu")
        for r in task_rows:
            name = f"{task:9s} {trace:11s} {label(r, mode=False):21s} {r.mode:5s} {r.tol:6.0e}"
            if r.wall is None:
                print(f"{name} {'failed':>9s}")
                continue
            print(f"{name} {r.wall * 1e3:9.1f} {r.cpu * 1e3:9.1f} {r.nfe:6d} {r.error:10.1e} "
                  f"{tfp_wall.wall / r.wall:7.2f}x {tfp_cpu.cpu / r.cpu:7.2f}x")


def print_table(title: str, traces: Dict[str, List[Row]]) -> None:
    print(title)
    print(f"{'task':9s} {'trace':11s} {'library':21s} {'mode':5s} {'tol':>6s} {'wall ms':>9s} "
          f"{'cpu ms':>9s} {'NFE':>6s} {'error':>10s} {'best TFP / row':>17s}")
    print(f"{'':76s} {'wall':>8s} {'cpu':>8s}")
    for trace, rows in traces.items():
        print_rows(trace, rows)


def summary(problem: str, trace: str, rows: List[Row]) -> None:
    """Fastest TFP over fastest ode_zoo configuration, chosen by wall and by CPU time."""
    for task in ("log_prob", "gradient"):
        task_rows = [r for r in rows if r.task == task]
        for key in ("wall", "cpu"):
            tfp_best, zoo_best = best(task_rows, "tfp", key), best(task_rows, "ode_zoo", key)
            tfp_ms = getattr(tfp_best, key) * 1e3
            start = (f"{problem:16s} {task:9s} {trace:11s} {key:4s} {label(tfp_best):17s} "
                     f"{tfp_ms:7.1f} {tfp_best.nfe:4d} {tfp_best.error:8.1e}")
            if zoo_best is None:
                print(f"{start}  no ode_zoo configuration")
                continue
            zoo_ms = getattr(zoo_best, key) * 1e3
            print(f"{start}  {label(zoo_best):25s} {zoo_best.tol:6.0e} {zoo_ms:7.1f} "
                  f"{zoo_best.nfe:4d} {zoo_best.error:8.1e} {tfp_ms / zoo_ms:6.2f}x "
                  f"{'yes' if tfp_ms >= 3 * zoo_ms else 'NO':>4s}")


def print_summary(title: str, results: Results) -> None:
    print(title)
    print(f"{'field':16s} {'task':9s} {'trace':11s} {'by':4s} {'TFP':17s} {'ms':>7s} {'NFE':>4s} "
          f"{'error':>8s}  {'ode_zoo':25s} {'tol':>6s} {'ms':>7s} {'NFE':>4s} {'error':>8s} "
          f"{'ratio':>7s} {'>=3x':>4s}")
    for (problem, trace), rows in results.items():
        summary(problem, trace, rows)


def run_flow_comparison(fields: Sequence[str], batch: int, repeats: int, threads: int,
                        methods: Sequence[str] = ("dopri5",),
                        statistic: str = "max") -> Tuple[Results, Results]:
    """Rows at equal tolerance and at equal accuracy (TFP's rows with ode_zoo's matched
    ones) by (problem, trace); log_prob's error is `statistic` of |Δ log p|."""
    equal_tol, equal_acc = {}, {}
    for spec in fields:
        problem = make_problem(spec, batch)
        key = problem.label
        print(f"\n== {key}: DenseVectorField {problem.field.hidden_units} "
              f"{keras.activations.serialize(problem.field.activation)}, batch {batch}, dopri5 rtol=atol={TOL}, "
              f"{threads} thread(s), median of {repeats}, log_prob error: {statistic} "
              f"|Δ log p| ==", flush=True)
        for trace in ZOO_TRACES:
            rows, matched = measure_trace(problem, trace, repeats, methods, statistic)
            equal_tol[(key, trace)] = rows
            equal_acc[(key, trace)] = [r for r in rows if r.library == "tfp"] + matched
        print_table(f"equal tolerance: both at rtol=atol={TOL:.0e}",
                    {trace: equal_tol[(key, trace)] for trace in ZOO_TRACES})
        print_table(f"equal accuracy: TFP at rtol=atol={TOL:.0e} (its rows repeated); each "
                    f"ode_zoo row at the loosest rtol=atol of\n"
                    f"{', '.join(f'{t:.0e}' for t in LADDER)} whose error is <= the error of "
                    f"TFP's fastest configuration of the task; ode_zoo's methods: "
                    f"{', '.join(methods)}",
                    {trace: equal_acc[(key, trace)] for trace in ZOO_TRACES})
    return equal_tol, equal_acc


def train_toy(weight: float, steps: int, batch: int) -> Tuple[FFJORDToyFlow, float, float]:
    """A toy flow trained on `steps` batches: (model, mean training NLL, seconds)."""
    keras.utils.set_random_seed(0)
    model = FFJORDToyFlow(kinetic_weight=weight, jacobian_weight=weight, num_steps=4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    data = sample_toy("8gaussians", steps * batch, seed=1)
    start = time.perf_counter()
    history = model.fit(data, batch_size=batch, epochs=1, shuffle=False, verbose=0)
    return model, history.history["nll"][-1], time.perf_counter() - start


def evaluate_toy(model: FFJORDToyFlow, x: np.ndarray) -> Tuple[float, float]:
    """(NLL, evaluations) of one dopri5 log_prob solve of x."""
    model.nfe_metric.reset_state()
    log_prob = tf.function(model.log_prob)(x)
    return float(-tf.reduce_mean(log_prob)), float(model.nfe_metric.result())


def run_rnode(steps: int, batch: int, test_size: int) -> None:
    x_test = sample_toy("8gaussians", test_size, seed=3)
    print(f"\n== RNODE: FFJORDToyFlow 3x64 on 8gaussians, rk4 4 steps, {steps} steps of "
          f"{batch}, Adam 3e-3; dopri5 rtol=atol=1e-5 on {test_size} held-out points ==")
    print(f"{'model':14s} {'λ_K=λ_J':>8s} {'train s':>8s} {'mean train nll':>15s} "
          f"{'test nll':>9s} {'NFE':>6s}")
    nfes = {}
    for name, weight in (("RNODE", 0.01), ("unregularized", 0.0)):
        model, train_nll, seconds = train_toy(weight, steps, batch)
        nll, nfes[name] = evaluate_toy(model, x_test)
        print(f"{name:14s} {weight:8.2f} {seconds:8.1f} {train_nll:15.3f} {nll:9.3f} "
              f"{nfes[name]:6.0f}", flush=True)
    print(f"NFE unregularized / RNODE: {nfes['unregularized'] / nfes['RNODE']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fields", nargs="+", default=["toy:checkerboard", "random:16"],
                        help="random:<D> (untrained) or toy:<published ffjord_toy flow>")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--methods", nargs="+", default=["dopri5"],
                        help="ode_zoo's adaptive methods tried at equal accuracy, e.g. "
                             "dopri5 tsit5")
    parser.add_argument("--log-prob-error", choices=sorted(LOG_PROB_ERRORS), default="max",
                        help="statistic of |Δ log p| over the batch that sets log_prob's "
                             "accuracy")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--quick", action="store_true",
                        help="random:2 only, 2 repeats, batch 128, 50 training steps")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.fields, args.batch, args.train_steps = 2, ["random:2"], 128, 50
    setup_threads(args.threads)
    start = time.perf_counter()
    equal_tol, equal_acc = run_flow_comparison(args.fields, args.batch, args.repeats,
                                               args.threads, args.methods,
                                               args.log_prob_error)
    print_summary(f"\nequal tolerance (rtol=atol={TOL:.0e}): best TFP / best ode_zoo, each "
                  "library's fastest configuration by wall and by CPU time:", equal_tol)
    print_summary(f"\nequal accuracy (the issue's target: >= 3x): best TFP at rtol=atol={TOL:.0e}"
                  " / best ode_zoo, each at the loosest\ntolerance whose error is <= TFP's, "
                  "each library's fastest configuration by wall and by CPU time:", equal_acc)
    run_rnode(args.train_steps, 256, 500 if args.quick else 5000)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
