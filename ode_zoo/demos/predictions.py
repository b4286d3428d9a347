"""`write_prediction_picture`: what `ode-zoo predict NAME` draws, chosen by the model
class's `picture`: "sequence_predictions" (ODE2VAE: test sequences predicted from
their first frames against the truth, `sequence_plots`), "series_trajectories"
(Latent ODE: test patients' observed values and the model's continuous path through
them, `series_plots`). The result's `output` is the PNG, its `summary` one line
saying what was drawn.

Example:
    >>> import ode_zoo
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4)
    >>> write_prediction_picture(model, "odenet.png")
    Traceback (most recent call last):
    ...
    ValueError: `ode-zoo predict` draws sequence models and Latent ODEs; 'odenet_mnist' is a 'classifier' model.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Union

import keras

from ode_zoo.demos.sequence_plots import write_predictions
from ode_zoo.demos.series_plots import write_trajectories

# A model class's `picture` -> the function that draws its predictions.
PREDICTION_PICTURES: Dict[str, Callable[..., Any]] = {
    "sequence_predictions": write_predictions, "series_trajectories": write_trajectories}


def write_prediction_picture(model: keras.Model, output: Union[str, os.PathLike], num: int = 4,
                             data_dir: Optional[str] = None) -> Any:
    """Draw `num` test examples of a zoo model (from `ode_zoo.load`) to the PNG `output`
    by its class's `picture`; a model without a prediction picture is a `ValueError`."""
    picture = getattr(model, "picture", None)
    if picture not in PREDICTION_PICTURES:
        name = (getattr(model, "zoo_config", None) or {}).get("name", "this model")
        raise ValueError(f"`ode-zoo predict` draws sequence models and Latent ODEs; {name!r} "
                         f"is a {getattr(model, 'family', type(model).__name__)!r} model.")
    return PREDICTION_PICTURES[picture](model, output, num=num, data_dir=data_dir)
