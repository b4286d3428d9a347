"""From a zoo config to the objects a run needs: the model (with overrides of
its constructor arguments), its compilation, and the data of each split.

The config's `model.class` names a model class registered with Keras (package
"ode_zoo"); the class is the model's family and says the rest — what `compile`
gets besides the optimizer (`compile_defaults()`) and whether its batches hold
labels (`labelled`). The one table left is `DATASETS` (by `dataset.name`): where
a split's arrays come from and the shape of one example: "mnist" (raw-pixel
images 0–255 and labels), "toy2d" (2-D points of `ode_zoo.datasets.toy2d`, no
labels; the config names the `toy` set and each split's `sizes` and `seeds`),
"rotating_mnist" and "mocap" (sequences [N, T, ...] of `ode_zoo.datasets`, no
labels; an optional `frames` keeps the first ones of every split), "physionet2012"
(padded irregular series as a dict {"times", "values" (raw units), "mask"} and
in-hospital death labels; the config's `round_hours` merges times onto that grid,
default 0.1).

Example:
    >>> from ode_zoo.zoo.configs import load_config
    >>> model = build_model(load_config("odenet_mnist"), {"method": "rk4", "num_steps": 1})
    >>> model.ode_block.solver.method
    'rk4'
    >>> config = load_config("ffjord_toy_8gaussians")
    >>> [a.shape for a in batch_arrays(config, "validation")], example_shape(config)
    ([(2000, 2)], (2,))
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from ode_zoo import models  # noqa: F401  (registers the zoo's model classes with Keras)
from ode_zoo.datasets import (classification_dataset, inputs_dataset, load_mnist, load_mocap,
                              load_rotating_mnist, physionet2012, sample_toy)

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


def _first_frames(dataset: Dict[str, Any], sequences: np.ndarray) -> Tuple[np.ndarray, None]:
    """Sequences cut to the config's `frames` (the first ones) when it sets them."""
    return sequences[:, :dataset.get("frames")], None


def _rotating_mnist_arrays(dataset: Dict[str, Any], split: str,
                           data_dir: Optional[str]) -> Tuple[np.ndarray, None]:
    return _first_frames(dataset, load_rotating_mnist(split, data_dir=data_dir))


def _mocap_arrays(dataset: Dict[str, Any], split: str,
                  data_dir: Optional[str]) -> Tuple[np.ndarray, None]:
    return _first_frames(dataset, load_mocap(split, data_dir=data_dir))


def _physionet_arrays(dataset: Dict[str, Any], split: str,
                      data_dir: Optional[str]) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    data = physionet2012(split, round_hours=dataset.get("round_hours", 0.1), data_dir=data_dir)
    return {"times": data.times, "values": data.values, "mask": data.mask}, data.labels


DATASETS: Dict[str, DatasetSource] = {
    "mnist": DatasetSource(_mnist_arrays, (28, 28, 1)),
    "toy2d": DatasetSource(_toy_arrays, (2,)),
    "rotating_mnist": DatasetSource(_rotating_mnist_arrays, (16, 28, 28, 1)),
    "mocap": DatasetSource(_mocap_arrays, (300, 50)),
    "physionet2012": DatasetSource(_physionet_arrays, (None, 41)),   # values of one series
}


def _lookup(table: Dict[str, Any], key: str, what: str, config: Dict[str, Any]) -> Any:
    if key not in table:
        raise ValueError(f"Unknown {what} {key!r} in zoo config {config['name']!r}; "
                         f"known {what}s are {sorted(table)}.")
    return table[key]


def model_class(config: Dict[str, Any]) -> type:
    """The model class a config names, from the Keras registry (ValueError listing
    the zoo's classes for an unknown name)."""
    name = config["model"]["class"]
    registered = keras.saving.get_registered_object(
        name if ">" in name else f"ode_zoo>{name}")
    if registered is None:
        raise ValueError(f"Unknown model class {name!r} in zoo config {config['name']!r}; "
                         f"available classes are {sorted(models.__all__)}.")
    return registered


def example_shape(config: Dict[str, Any]) -> Tuple[int, ...]:
    """The shape of one input of the config's dataset, e.g. (28, 28, 1) or (2,)."""
    return _lookup(DATASETS, config["dataset"]["name"], "dataset", config).example_shape


def build_model(config: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None):
    """The config's model class built from its config plus `overrides`: its own
    weights exist afterwards (`build_variables`), and no ODE has been solved."""
    model = model_class(config).from_config({**config["model"]["config"], **(overrides or {})})
    model.zoo_config = config
    model.build_variables()
    return model


def compile_model(model: keras.Model, config: Dict[str, Any],
                  steps_per_epoch: Optional[int] = None) -> None:
    """Compile with the config's optimizer and the model's `compile_defaults()`.

    The recipe's learning-rate schedule spans a whole training run, so it is used
    only when `steps_per_epoch` gives that run's length; otherwise (evaluation,
    fine-tuning) the optimizer runs at the recipe's base learning rate.
    """
    training = config["training"]
    learning_rate = training.get("learning_rate", 1e-3)
    if training.get("lr_schedule") == "cosine" and steps_per_epoch is not None:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, training["epochs"] * steps_per_epoch))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), **model.compile_defaults())


def split_arrays(config: Dict[str, Any], split: str, data_dir: Optional[str] = None
                 ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(inputs, labels) numpy arrays of a dataset split named in the config;
    labels are None for a dataset without them (toy2d); inputs are a dict of
    arrays for irregular series (physionet2012)."""
    source = _lookup(DATASETS, config["dataset"]["name"], "dataset", config)
    return source.arrays(config["dataset"], split, data_dir)


def batch_arrays(config: Dict[str, Any], split: str, data_dir: Optional[str] = None) -> Arrays:
    """The arrays a batch of the config's model holds: (inputs, labels) for a
    `labelled` model class (classifiers), (inputs,) for the others."""
    inputs, labels = split_arrays(config, split, data_dir)
    cls = model_class(config)
    if not cls.labelled:
        return (inputs,)
    if labels is None:
        raise ValueError(f"{cls.__name__} trains on labelled examples; dataset "
                         f"{config['dataset']['name']!r} has none.")
    return inputs, labels


def batches(config: Dict[str, Any]) -> Callable[..., tf.data.Dataset]:
    """The batch pipeline of the config's model: labelled examples (with the recipe's
    pixel shifts) or inputs only."""
    return classification_dataset if model_class(config).labelled else inputs_dataset


def training_frames(training: Dict[str, Any], epoch: int) -> Optional[int]:
    """The frames of each training sequence in `epoch` (0-based) under the recipe's
    `frames_schedule` {"start", "increment", "every_epochs"} — sequences cut to
    their first start + increment·⌊epoch / every_epochs⌋ frames, so a sequence
    model learns short horizons first — or None (whole sequences) without one.

    Example:
        >>> schedule = {"frames_schedule": {"start": 60, "increment": 20, "every_epochs": 4}}
        >>> [training_frames(schedule, e) for e in (0, 3, 4, 9)]
        [60, 60, 80, 100]
    """
    schedule = training.get("frames_schedule")
    if schedule is None:
        return None
    return int(schedule["start"] + schedule["increment"] * (epoch // schedule["every_epochs"]))


def training_data(config: Dict[str, Any], data_dir: Optional[str] = None
                  ) -> tuple[Callable[[int, int], tf.data.Dataset], int, tf.data.Dataset]:
    """(train_dataset(epoch, skip), steps_per_epoch, validation_dataset).

    An epoch is `passes_per_epoch` (default 1) passes over the training split,
    each in its own fixed order (for tiny datasets such as mocap's 16 sequences);
    with a `frames_schedule` its sequences are cut as `training_frames` says.
    """
    training = config["training"]
    pipeline = batches(config)
    arrays = batch_arrays(config, config["dataset"]["train_split"], data_dir)
    batch_size, passes = training["batch_size"], training.get("passes_per_epoch", 1)
    examples = len(tf.nest.flatten(arrays[0])[0])
    per_pass = examples // batch_size
    if per_pass < 1 or passes < 1:
        raise ValueError(f"Zoo config {config['name']!r}: batch_size {batch_size} and "
                         f"passes_per_epoch {passes} leave no training step for "
                         f"{examples} training examples.")
    if "frames_schedule" in training and model_class(config).labelled:
        raise ValueError(f"Zoo config {config['name']!r}: frames_schedule cuts sequences; "
                         f"{config['model']['class']} trains on labelled examples.")

    def train_dataset(epoch: int, skip: int) -> tf.data.Dataset:
        parts = [pipeline(*arrays, batch_size, shuffle_seed=training.get("seed", 0),
                         epoch=epoch * passes + p, shift_pixels=training.get("shift_pixels", 0),
                         skip_batches=max(0, skip - p * per_pass), drop_remainder=True)
                 for p in range(skip // per_pass, passes)]
        ds = functools.reduce(tf.data.Dataset.concatenate, parts)
        frames = training_frames(training, epoch)
        return ds if frames is None else ds.map(lambda x: x[:, :frames])

    validation = pipeline(*batch_arrays(config, config["dataset"]["validation_split"], data_dir),
                          config["evaluation"].get("batch_size", 500))
    return train_dataset, passes * per_pass, validation


def evaluation_data(config: Dict[str, Any], split: Optional[str] = None,
                    data_dir: Optional[str] = None) -> tf.data.Dataset:
    """Batches of the evaluation split (the test split unless `split` is given)."""
    split = split or config["evaluation"].get("split", config["dataset"]["test_split"])
    return batches(config)(*batch_arrays(config, split, data_dir),
                           config["evaluation"].get("batch_size", 500))
