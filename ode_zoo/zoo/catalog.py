"""Human-readable descriptions of the zoo (`ode-zoo list` and `ode-zoo info`),
from the configs and, where a model is published, the metadata.json of its
versions (`ode_zoo.zoo.versions`: saved_models/<name>/<version>/).

Example:
    >>> any(line.startswith("odenet_mnist") for line in describe_all())
    True
    >>> published_dir("odenet_mnist", version=1).name
    '1'
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from ode_zoo.zoo.configs import available_configs, load_config, zoo_dirs
from ode_zoo.zoo.recipes import model_class
from ode_zoo.zoo.versions import version_dir, versions


def published_entry(name: str) -> Optional[Path]:
    """saved_models/<name>/ when it holds a published version, else None."""
    for root in zoo_dirs("saved_models"):
        if versions(root / name):
            return root / name
    return None


def published_dir(name: str, version: Optional[int] = None) -> Optional[Path]:
    """The preset folder of `version` of a published model (the newest when None),
    None when it is unpublished; ValueError listing its versions for a missing one."""
    entry = published_entry(name)
    return None if entry is None else version_dir(entry, version)[1]


def _metadata(directory: Path) -> Dict[str, Any]:
    path = directory / "metadata.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def published_metadata(name: str, version: Optional[int] = None) -> Dict[str, Any]:
    """The metadata.json of `version` of a published model, the newest when None
    ({} when unpublished)."""
    directory = published_dir(name, version)
    return {} if directory is None else _metadata(directory)


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
    return [name for name in available_configs() if published_entry(name) is not None]


def _headline(metrics: Dict[str, Any], names: tuple) -> str:
    """The model class's headline metrics (the first two numbers when it names none)."""
    numbers = [(k, metrics[k]) for k in names if isinstance(metrics.get(k), (int, float))]
    if not numbers:
        numbers = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))][:2]
    return ", ".join(f"{k} {v:.4g}" for k, v in numbers) or "-"


def describe_all() -> List[str]:
    """One line per zoo model: name, family, and its newest version with that
    version's headline metrics, or "not published yet"."""
    lines = []
    for name in available_configs():
        cls = model_class(load_config(name))
        entry = published_entry(name)
        if entry is None:
            status = "-    not published yet"
        else:
            version, directory = version_dir(entry)
            metrics = _metadata(directory).get("metrics", {})
            status = f"v{version:<3d} {_headline(metrics, cls.headline_metrics)}"
        lines.append(f"{name:28s} {cls.family:16s} {status}")
    return lines


def describe(name: str, version: Optional[int] = None) -> str:
    """Config, every published version (date, headline metrics) and the metadata
    of `version` (the newest when None) of one zoo model."""
    config = load_config(name)
    cls = model_class(config)
    parts = [f"{config['name']} ({cls.family}): {config.get('description', '')}",
             f"model: {config['model']['class']} {json.dumps(config['model']['config'])}",
             f"data: {json.dumps(config['dataset'])}",
             f"training recipe: {json.dumps(config['training'])}",
             f"evaluation: {json.dumps(config['evaluation'])}"]
    entry = published_entry(config["name"])
    if entry is None:
        if version is not None:
            raise ValueError(f"{name} has no published versions, so no version {version}.")
        parts.append(f"not published yet: train it with `ode-zoo train {config['name']} "
                     "--publish`")
        return "\n".join(parts)
    chosen, directory = version_dir(entry, version)
    parts.append(f"published versions in {entry} (TF Serving: {entry / 'serving'}):")
    for number, folder in versions(entry).items():
        metadata = _metadata(folder)
        parts.append(f"  v{number:<3d} {metadata.get('date', '?'):10s} "
                     f"{_headline(metadata.get('metrics', {}), cls.headline_metrics)}")
    parts.append(f"version {chosen} ({directory}):")
    parts.append(json.dumps(_metadata(directory), indent=1))
    return "\n".join(parts)
