"""Distribution strategies for the trainer: one built by name, global batches
split evenly over its replicas, and a Keras step run on every replica.

One code path serves every strategy: the trainer runs `model.train_step` with
`strategy.run` over a distributed dataset. Keras' optimizer all-reduces the
gradients and its losses divide by the number of replicas, so R replicas that
each see 1/R of a global batch take the step one device takes on the whole
batch. Logs are the model's metrics read in cross-replica context, which sums
their state over all replicas (and workers).

Names: "default" (or None: one device), "mirrored" (`MirroredStrategy` over
this machine's GPUs, or its logical CPU devices when there is no GPU) and
"multiworker" (`MultiWorkerMirroredStrategy` over the workers in TF_CONFIG;
Keras 3.15's `fit` fails under it, keras-team/keras#20585, this loop does not).

Example:
    >>> import keras
    >>> strategy = make_strategy("mirrored")
    >>> with strategy.scope():      # build and compile inside the scope
    ...     model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    ...     model.compile(optimizer="sgd", loss="mse")
    >>> model.distribute_strategy is strategy
    True
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any, Callable, Dict, Iterator, Optional

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:port", "host1:port"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def tf_config_problem(text: Optional[str]) -> Optional[str]:
    """What is wrong with a TF_CONFIG value for multi-worker training, or None.

    Example:
        >>> tf_config_problem(None)
        'TF_CONFIG is not set'
        >>> tf_config_problem('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief"}}')
        "'task' must name this process's job, one of ['worker']"
    """
    if not text:
        return "TF_CONFIG is not set"
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        return f"TF_CONFIG is not valid JSON ({e})"
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not (isinstance(cluster, dict) and cluster
            and all(isinstance(hosts, list) and hosts for hosts in cluster.values())):
        return "'cluster' must map job names to non-empty lists of host:port"
    task = config.get("task")
    if not (isinstance(task, dict) and task.get("type") in cluster):
        return f"'task' must name this process's job, one of {sorted(cluster)}"
    index, hosts = task.get("index"), cluster[task["type"]]
    if not (isinstance(index, int) and 0 <= index < len(hosts)):
        return f"task index {index!r} is not in cluster[{task['type']!r}] ({len(hosts)} entries)"
    return None


def make_strategy(name: Optional[str]) -> tf.distribute.Strategy:
    """The strategy called `name` (see the module docstring).

    "multiworker" reads TF_CONFIG and must be made at program start, before any
    other TensorFlow op. Raises ValueError for an unknown name or a bad TF_CONFIG.

    Example:
        >>> make_strategy(None).num_replicas_in_sync
        1
    """
    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        problem = tf_config_problem(os.environ.get("TF_CONFIG"))
        if problem:
            raise ValueError(
                f"Strategy 'multiworker' needs the environment variable TF_CONFIG: JSON with "
                f"the same 'cluster' (every worker's host:port) on all workers and this "
                f"worker's 'task' (index 0 is the chief), e.g. {TF_CONFIG_EXAMPLE}. "
                f"Here {problem}.")
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            raise RuntimeError(
                f"{e}: make the 'multiworker' strategy first thing in the program, before "
                "any other TensorFlow op (data pipelines, models, tensors).") from e
    raise ValueError(f"Unknown strategy {name!r}; available strategies are {list(STRATEGIES)}.")


def check_even_split(dataset: tf.data.Dataset, num_replicas: int) -> None:
    """Raise ValueError unless every batch of `dataset` splits into `num_replicas`
    equal shares (needed for R replicas to take the step one device would).

    Example:
        >>> check_even_split(tf.data.Dataset.range(8).batch(4, drop_remainder=True), 2)
    """
    if num_replicas == 1:
        return
    batch = tf.nest.flatten(dataset.element_spec)[0].shape[0]
    if batch is None or batch % num_replicas:
        raise ValueError(
            f"The global batch size ({batch}) must be a known multiple of the number of "
            f"replicas ({num_replicas}), so that each replica gets an equal share: batch "
            "the training data with drop_remainder=True and a batch size divisible by it.")


def split_batches(strategy: tf.distribute.Strategy,
                  dataset: tf.data.Dataset) -> tf.distribute.DistributedDataset:
    """`dataset` (of global batches) distributed over the replicas of `strategy`:
    each global batch is cut in replica order, so worker 0 takes its first rows.

    Every worker runs the whole pipeline and keeps its share (DATA sharding),
    so all workers together see exactly the batches of one process.

    Example:
        >>> [int(x.shape[0]) for x in split_batches(tf.distribute.get_strategy(),
        ...                                            tf.data.Dataset.range(6).batch(3))]
        [3, 3]
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def build_state(model: keras.Model, batch_spec: Any) -> None:
    """Create every variable a step touches (layers, compiled metrics, optimizer)
    under the model's strategy, from the batch's `element_spec` alone.

    A `tf.function` that creates variables on its first call fails with several
    local replicas ("You must feed a value for placeholder tensor"), so this
    runs before the step is traced. It is the symbolic build Keras 3.15's own
    `fit` does first (a private method: keras is pinned below 3.16).

    Example:
        >>> build_state(model, dataset.element_spec)       # doctest: +SKIP
        >>> model.optimizer.built                           # doctest: +SKIP
        True
    """
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=batch_spec)


def replicated(model: keras.Model,
               step: Callable[[Any], Any]) -> Callable[[Any], Dict[str, tf.Tensor]]:
    """A `tf.function` running `step` (e.g. `model.train_step`) on every replica
    of the model's strategy, returning the model's metrics over all replicas.

    Example:
        >>> train = replicated(model, model.train_step)              # doctest: +SKIP
        >>> logs = train(next(iter(split_batches(strategy, data))))  # doctest: +SKIP
    """
    strategy = model.distribute_strategy

    @tf.function
    def run(batch: Any) -> Dict[str, tf.Tensor]:
        strategy.run(step, args=(batch,))
        return model.get_metrics_result()

    return run


@contextlib.contextmanager
def output_dir(strategy: tf.distribute.Strategy, run_dir: str) -> Iterator[str]:
    """Where this worker writes its outputs: `run_dir` on the chief, else a
    temporary directory removed on exit (TensorFlow's multi-worker convention:
    every worker saves, as saving may read variables through collectives, but
    only the chief's files are kept).

    Example:
        >>> with output_dir(tf.distribute.get_strategy(), "runs/x") as out:  # doctest: +SKIP
        ...     out
        'runs/x'
    """
    if strategy.extended.should_checkpoint:
        os.makedirs(run_dir, exist_ok=True)
        yield run_dir
    else:
        with tempfile.TemporaryDirectory(prefix="ode_zoo_worker_") as directory:
            yield directory
