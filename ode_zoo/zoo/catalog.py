"""Human-readable descriptions of the zoo (`ode-zoo list` and `ode-zoo info`),
from the configs and, where a model is published, its metadata.json.

Example:
    >>> any(line.startswith("odenet_mnist") for line in describe_all())
    True
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from ode_zoo.zoo.configs import available_configs, load_config, zoo_dirs
from ode_zoo.zoo.recipes import model_class


def published_dir(name: str) -> Optional[Path]:
    """saved_models/<name>/ when it holds published weights, else None."""
    for root in zoo_dirs("saved_models"):
        if (root / name / "model.weights.h5").is_file():
            return root / name
    return None


def published_metadata(name: str) -> Dict[str, Any]:
    """The metadata.json of a published model ({} when unpublished)."""
    directory = published_dir(name)
    if directory is None or not (directory / "metadata.json").is_file():
        return {}
    return json.loads((directory / "metadata.json").read_text())


class FlowChoice(NamedTuple):
    """The published image flow `best_image_flow` picked, its confident share of
    samples, and the shares of the others it was compared with (name → share)."""

    name: str
    confident_share: float
    others: Dict[str, float]


def best_image_flow(dataset: str = "mnist") -> FlowChoice:
    """The published image flow of `dataset` whose samples read most as real images:
    the highest `test_sample_confident_share` in its metadata (the share of 10,000
    samples that `ode_zoo.zoo.sample_quality`'s classifier reads with p ≥ 0.9).

    Example:
        >>> best_image_flow("mnist").name in list_published_names()
        True
    """
    from ode_zoo.models.flow import ImageFlowModel

    shares = {}
    for name in list_published_names():
        config = load_config(name)
        share = published_metadata(name).get("metrics", {}).get("test_sample_confident_share")
        if (config["dataset"]["name"] == dataset and share is not None
                and issubclass(model_class(config), ImageFlowModel)):
            shares[name] = float(share)
    if not shares:
        raise LookupError(f"No published {dataset} image flow has a measured sample quality "
                          "(metrics.test_sample_confident_share); publish one with "
                          "`ode-zoo train NAME --publish`.")
    name = max(shares, key=shares.get)
    return FlowChoice(name, shares.pop(name), shares)


def list_published_names() -> List[str]:
    """Zoo names with published weights."""
    return [name for name in available_configs() if published_dir(name) is not None]


def _headline(metrics: Dict[str, Any], names: tuple) -> str:
    """The model class's headline metrics (the first two numbers when it names none)."""
    numbers = [(k, metrics[k]) for k in names if isinstance(metrics.get(k), (int, float))]
    if not numbers:
        numbers = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))][:2]
    return ", ".join(f"{k} {v:.4g}" for k, v in numbers) or "-"


def describe_all() -> List[str]:
    """One line per zoo model: name, family, published or not, headline metrics."""
    lines = []
    for name in available_configs():
        cls = model_class(load_config(name))
        metadata = published_metadata(name)
        status = (_headline(metadata.get("metrics", {}), cls.headline_metrics) if metadata
                  else "not published yet")
        lines.append(f"{name:28s} {cls.family:16s} {status}")
    return lines


def describe(name: str) -> str:
    """Config, published metrics and training record of one zoo model."""
    config = load_config(name)
    metadata = published_metadata(config["name"])
    parts = [f"{config['name']} ({model_class(config).family}): "
             f"{config.get('description', '')}",
             f"model: {config['model']['class']} {json.dumps(config['model']['config'])}",
             f"data: {json.dumps(config['dataset'])}",
             f"training recipe: {json.dumps(config['training'])}",
             f"evaluation: {json.dumps(config['evaluation'])}"]
    if metadata:
        parts.append(f"published in {published_dir(config['name'])}:")
        parts.append(json.dumps(metadata, indent=1))
    else:
        parts.append(f"not published yet: train it with `ode-zoo train {config['name']} "
                     "--publish`")
    return "\n".join(parts)
