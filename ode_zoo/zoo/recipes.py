"""From a zoo config to the objects a run needs: the model (with solver
overrides), its compilation, and the data of each split.

Example:
    >>> from ode_zoo.zoo.configs import load_config
    >>> model = build_model(load_config("odenet_mnist"), {"method": "rk4", "num_steps": 1})
    >>> model.ode_block.method
    'rk4'
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from ode_zoo import models
from ode_zoo.datasets import classification_dataset, load_mnist


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
    """Compile with the config's optimizer, loss and metrics.

    The recipe's learning-rate schedule spans a whole training run, so it is used
    only when `steps_per_epoch` gives that run's length; otherwise (evaluation,
    fine-tuning) the optimizer runs at the recipe's base learning rate.
    """
    training = config["training"]
    learning_rate = training.get("learning_rate", 1e-3)
    if training.get("lr_schedule") == "cosine" and steps_per_epoch is not None:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(1, training["epochs"] * steps_per_epoch))
    if config["family"] == "classifier":
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    else:
        raise ValueError(f"No compile recipe for model family {config['family']!r}.")


def split_arrays(config: Dict[str, Any], split: str, data_dir: Optional[str] = None):
    """(inputs, targets) numpy arrays of a dataset split named in the config."""
    dataset = config["dataset"]["name"]
    if dataset == "mnist":
        return load_mnist(split, data_dir=data_dir)
    raise ValueError(f"Unknown dataset {dataset!r} in zoo config {config['name']!r}.")


def training_data(config: Dict[str, Any], data_dir: Optional[str] = None
                  ) -> tuple[Callable[[int, int], tf.data.Dataset], int, tf.data.Dataset]:
    """(train_dataset(epoch, skip), steps_per_epoch, validation_dataset)."""
    training = config["training"]
    images, labels = split_arrays(config, config["dataset"]["train_split"], data_dir)
    batch_size = training["batch_size"]

    def train_dataset(epoch: int, skip: int) -> tf.data.Dataset:
        return classification_dataset(images, labels, batch_size,
                                      shuffle_seed=training.get("seed", 0), epoch=epoch,
                                      shift_pixels=training.get("shift_pixels", 0),
                                      skip_batches=skip, drop_remainder=True)

    val_images, val_labels = split_arrays(config, config["dataset"]["validation_split"], data_dir)
    validation = classification_dataset(val_images, val_labels,
                                         config["evaluation"].get("batch_size", 500))
    return train_dataset, len(images) // batch_size, validation


def evaluation_data(config: Dict[str, Any], split: Optional[str] = None,
                    data_dir: Optional[str] = None) -> tf.data.Dataset:
    """Batches of the evaluation split (the test split unless `split` is given)."""
    split = split or config["evaluation"].get("split", config["dataset"]["test_split"])
    inputs, targets = split_arrays(config, split, data_dir)
    return classification_dataset(inputs, np.asarray(targets),
                                  config["evaluation"].get("batch_size", 500))
