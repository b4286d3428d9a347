"""`ode-zoo sample NAME`: a PNG of what a zoo flow has learned, drawn by the
picture of its dataset (`SAMPLE_PICTURES`): for toy2d the data, model samples
and the learned density side by side. A new dataset adds a row: a function
`(model, output, num, seed, data_dir) -> path`.

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("ffjord_toy_8gaussians", load_weights=False,
    ...                      eval_method="rk4", eval_num_steps=2)
    >>> write_samples(model, "toy.png", num=50, grid_size=10)
    'toy.png'
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Union

import keras

from ode_zoo.demos.toy_density import plot_toy_density
from ode_zoo.zoo.recipes import split_arrays

PathLike = Union[str, os.PathLike]


def _toy_picture(model: keras.Model, output: PathLike, num: int, seed: int,
                 data_dir: Optional[str], **options: Any) -> str:
    config = model.zoo_config
    data, _ = split_arrays(config, config["dataset"]["test_split"], data_dir)
    nll = model.zoo_metadata.get("metrics", {}).get("test_nll")
    title = config["name"] + ("" if nll is None else f": test NLL {nll:.3f} nats")
    return plot_toy_density(model, data[:num], output, num_samples=num, seed=seed, title=title,
                            **options)


# Dataset name -> the picture of a flow trained on it.
SAMPLE_PICTURES: Dict[str, Callable[..., str]] = {"toy2d": _toy_picture}


def write_samples(model: keras.Model, output: PathLike, num: int = 2000, seed: int = 0,
                  data_dir: Optional[str] = None, **options: Any) -> str:
    """Write the sample picture of a zoo flow (from `ode_zoo.load`) to `output`:
    `num` model samples from the base-noise seed `seed` beside `num` test points;
    `options` go to the dataset's picture (e.g. `grid_size` for toy2d). Returns
    the path."""
    config = getattr(model, "zoo_config", None) or {}
    dataset = config.get("dataset", {}).get("name")
    if config.get("family") != "flow" or dataset not in SAMPLE_PICTURES:
        raise ValueError(f"`ode-zoo sample` draws zoo flows trained on "
                         f"{sorted(SAMPLE_PICTURES)}; {config.get('name', 'this model')!r} is "
                         f"a {config.get('family')!r} model on {dataset!r}.")
    return SAMPLE_PICTURES[dataset](model, output, num, seed, data_dir, **options)
