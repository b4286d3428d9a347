"""From a zoo config to the objects a run needs: the model (with solver
overrides), its compilation, and the data of each split.

Two tables decide the rest. `DATASETS` (by `dataset.name`) says where a split's
arrays come from and the shape of one example: "mnist" (raw-pixel images 0–255
and labels), "toy2d" (2-D points of `ode_zoo.datasets.toy2d`, no labels; the
config names the `toy` set and each split's `sizes` and `seeds`). `FAMILIES` (by
`family`) says what the model is compiled with and what its batches hold:
"classifier" trains on (images, labels) with cross-entropy; "flow" on inputs
only, its own `train_step` computing the loss.

Example:
    >>> from ode_zoo.zoo.configs import load_config
    >>> model = build_model(load_config("odenet_mnist"), {"method": "rk4", "num_steps": 1})
    >>> model.ode_block.method
    'rk4'
    >>> config = load_config("ffjord_toy_8gaussians")
    >>> [a.shape for a in family_arrays(config, "validation")], example_shape(config)
    ([(2000, 2)], (2,))
"""
from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from ode_zoo import models
from ode_zoo.datasets import classification_dataset, inputs_dataset, load_mnist, sample_toy

Arrays = Tuple[np.ndarray, ...]


class DatasetSource(NamedTuple):
    """Where a dataset's splits come from: `arrays(dataset_config, split, data_dir)`
    gives (inputs, labels or None); `example_shape` is the shape of one input."""
    arrays: Callable[[Dict[str, Any], str, Optional[str]], Tuple[np.ndarray, Optional[np.ndarray]]]
    example_shape: Tuple[int, ...]


def _mnist_arrays(dataset: Dict[str, Any], split: str,
                  data_dir: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
    return load_mnist(split, data_dir=data_dir)


def _toy_arrays(dataset: Dict[str, Any], split: str,
                data_dir: Optional[str]) -> Tuple[np.ndarray, None]:
    sizes, seeds = dataset.get("sizes", {}), dataset.get("seeds", {})
    if split not in sizes or split not in seeds:
        raise ValueError(f"toy2d split {split!r} needs a size and a seed in the config's "
                         f"dataset; splits with both are {sorted(set(sizes) & set(seeds))}.")
    return sample_toy(dataset["toy"], sizes[split], seed=seeds[split]), None


DATASETS: Dict[str, DatasetSource] = {
    "mnist": DatasetSource(_mnist_arrays, (28, 28, 1)),
    "toy2d": DatasetSource(_toy_arrays, (2,)),
}


class Family(NamedTuple):
    """What a model family needs: whether its batches hold labels, the batch
    pipeline `batches(*arrays, batch_size, **order)` (order: shuffle_seed, epoch,
    shift_pixels, skip_batches, drop_remainder) and the `compile` arguments
    beside the optimizer."""
    labelled: bool
    batches: Callable[..., tf.data.Dataset]
    compile_args: Callable[[], Dict[str, Any]]


FAMILIES: Dict[str, Family] = {
    "classifier": Family(
        labelled=True, batches=classification_dataset,
        compile_args=lambda: dict(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])),
    "flow": Family(labelled=False, batches=inputs_dataset, compile_args=dict),
}


def _lookup(table: Dict[str, Any], key: str, what: str, config: Dict[str, Any]) -> Any:
    if key not in table:
        raise ValueError(f"Unknown {what} {key!r} in zoo config {config['name']!r}; "
                         f"known {what}s are {sorted(table)}.")
    return table[key]


def family(config: Dict[str, Any]) -> Family:
    """The `Family` of a config (ValueError listing the known families)."""
    return _lookup(FAMILIES, config["family"], "family", config)


def example_shape(config: Dict[str, Any]) -> Tuple[int, ...]:
    """The shape of one input of the config's dataset, e.g. (28, 28, 1) or (2,)."""
    return _lookup(DATASETS, config["dataset"]["name"], "dataset", config).example_shape


def build_model(config: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None):
    """The config's model class built from its config plus `overrides`."""
    name = config["model"]["class"]
    if not hasattr(models, name):
        raise ValueError(f"Unknown model class {name!r} in zoo config {config['name']!r}; "
                         f"available classes are {sorted(models.__all__)}.")
    model = getattr(models, name)(**{**config["model"]["config"], **(overrides or {})})
    model.zoo_config = config
    return model


def compile_model(model: keras.Model, config: Dict[str, Any],
                  steps_per_epoch: Optional[int] = None) -> None:
    """Compile with the config's optimizer and its family's loss and metrics.

    The recipe's learning-rate schedule spans a whole training run, so it is used
    only when `steps_per_epoch` gives that run's length; otherwise (evaluation,
    fine-tuning) the optimizer runs at the recipe's base learning rate.
    """
    training = config["training"]
    learning_rate = training.get("learning_rate", 1e-3)
    if training.get("lr_schedule") == "cosine" and steps_per_epoch is not None:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, training["epochs"] * steps_per_epoch))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  **family(config).compile_args())


def split_arrays(config: Dict[str, Any], split: str, data_dir: Optional[str] = None
                 ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(inputs, labels) numpy arrays of a dataset split named in the config;
    labels are None for a dataset without them (toy2d)."""
    source = _lookup(DATASETS, config["dataset"]["name"], "dataset", config)
    return source.arrays(config["dataset"], split, data_dir)


def family_arrays(config: Dict[str, Any], split: str, data_dir: Optional[str] = None) -> Arrays:
    """The arrays a batch of the config's family holds: (inputs, labels) for
    classifiers, (inputs,) for flows."""
    inputs, labels = split_arrays(config, split, data_dir)
    if not family(config).labelled:
        return (inputs,)
    if labels is None:
        raise ValueError(f"Family {config['family']!r} needs labels; dataset "
                         f"{config['dataset']['name']!r} has none.")
    return inputs, labels


def training_data(config: Dict[str, Any], data_dir: Optional[str] = None
                  ) -> tuple[Callable[[int, int], tf.data.Dataset], int, tf.data.Dataset]:
    """(train_dataset(epoch, skip), steps_per_epoch, validation_dataset)."""
    training = config["training"]
    batches = family(config).batches
    arrays = family_arrays(config, config["dataset"]["train_split"], data_dir)
    batch_size = training["batch_size"]

    def train_dataset(epoch: int, skip: int) -> tf.data.Dataset:
        return batches(*arrays, batch_size, shuffle_seed=training.get("seed", 0), epoch=epoch,
                       shift_pixels=training.get("shift_pixels", 0), skip_batches=skip,
                       drop_remainder=True)

    validation = batches(*family_arrays(config, config["dataset"]["validation_split"], data_dir),
                         config["evaluation"].get("batch_size", 500))
    return train_dataset, len(arrays[0]) // batch_size, validation


def evaluation_data(config: Dict[str, Any], split: Optional[str] = None,
                    data_dir: Optional[str] = None) -> tf.data.Dataset:
    """Batches of the evaluation split (the test split unless `split` is given)."""
    split = split or config["evaluation"].get("split", config["dataset"]["test_split"])
    return family(config).batches(*family_arrays(config, split, data_dir),
                                  config["evaluation"].get("batch_size", 500))
