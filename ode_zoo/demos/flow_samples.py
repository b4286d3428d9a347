"""`ode-zoo sample NAME`: a PNG of what a zoo flow has learned, drawn by the
picture its class names (`FlowModel.picture`): "density" (2-D flows) shows the
data, model samples and the learned density side by side; "image_grid" (image
flows) a grid of model samples beside a grid of test images (at most
`MAX_IMAGES` of each).

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("ffjord_toy_8gaussians", load_weights=False,
    ...                      eval_solver={"method": "rk4", "num_steps": 2})
    >>> write_samples(model, "toy.png", num=50, grid_size=10)
    'toy.png'
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from ode_zoo.demos.image_grid import plot_image_grids
from ode_zoo.demos.toy_density import plot_toy_density
from ode_zoo.models.flow import FlowModel
from ode_zoo.zoo.recipes import split_arrays

PathLike = Union[str, os.PathLike]
MAX_IMAGES = 64            # an 8×8 grid: more digits are too small to see, and slow to sample


def _toy_picture(model: keras.Model, output: PathLike, num: int, seed: int,
                 data_dir: Optional[str], **options: Any) -> str:
    config = model.zoo_config
    data, _ = split_arrays(config, config["dataset"]["test_split"], data_dir)
    nll = model.zoo_metadata.get("metrics", {}).get("test_nll")
    title = config["name"] + ("" if nll is None else f": test NLL {nll:.3f} nats")
    return plot_toy_density(model, data[:num], output, num_samples=num, seed=seed, title=title,
                            **options)


def image_samples(model: keras.Model, num: int, seed: int = 0) -> np.ndarray:
    """`num` images [num, H, W, C] (raw pixels 0–255) of an image flow, decoded from
    base noise z ~ N(0, I) drawn with the stateless seed (0, `seed`).

    Example:
        >>> import ode_zoo
        >>> model = ode_zoo.load("ffjord_mnist", load_weights=False, hidden_filters=[4],
        ...                      eval_solver={"method": "rk4", "num_steps": 1})
        >>> image_samples(model, 2, seed=1).shape
        (2, 28, 28, 1)
    """
    noise = tf.random.stateless_normal((num, int(np.prod(model.image_shape))), seed=[0, seed])
    return model.sample(noise).numpy()


def _image_picture(model: keras.Model, output: PathLike, num: int, seed: int,
                   data_dir: Optional[str]) -> str:
    config = model.zoo_config
    num = min(num, MAX_IMAGES)
    data, _ = split_arrays(config, config["dataset"]["test_split"], data_dir)
    bits = model.zoo_metadata.get("metrics", {}).get("test_bits_per_dim")
    title = config["name"] + ("" if bits is None else f": test {bits:.3f} bits/dim")
    return plot_image_grids({f"test images ({num})": data[:num],
                             f"model samples ({num}, seed {seed})":
                                 image_samples(model, num, seed)}, output, title)


# A flow class's `picture` -> the function that draws it.
SAMPLE_PICTURES: Dict[str, Callable[..., str]] = {"density": _toy_picture,
                                                  "image_grid": _image_picture}


def write_samples(model: keras.Model, output: PathLike, num: int = 2000, seed: int = 0,
                  data_dir: Optional[str] = None, **options: Any) -> str:
    """Write the sample picture of a zoo flow (from `ode_zoo.load`) to `output`:
    `num` model samples from the base-noise seed `seed` beside `num` test points
    (images: at most `MAX_IMAGES`); `options` go to the dataset's picture (e.g.
    `grid_size` for toy2d). Returns the path."""
    config = getattr(model, "zoo_config", None) or {}
    picture = getattr(model, "picture", None)
    if not isinstance(model, FlowModel) or picture not in SAMPLE_PICTURES:
        raise ValueError(f"`ode-zoo sample` draws zoo flows; {config.get('name', 'this model')!r}"
                         f" is a {getattr(model, 'family', type(model).__name__)!r} model.")
    return SAMPLE_PICTURES[picture](model, output, num, seed, data_dir, **options)
