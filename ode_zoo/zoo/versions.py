"""Versions of a published zoo entry. Published artifacts are immutable: a better
model is a new version beside the old ones, never written over them.

    saved_models/<name>/1/           version 1's preset: config.json, model.weights.h5,
    saved_models/<name>/2/           metadata.json, training_history.json
    saved_models/<name>/serving/1/   the TF Serving export of each version, all under one
    saved_models/<name>/serving/2/   model base path (saved_models/<name>/serving): the
                                     server serves the newest and can pin any

Entries written before versions existed held one preset at their root; `migrate`
(or `python -m ode_zoo.zoo.versions saved_models/<name>`) turns one into version 1,
moving its files unchanged. Zoo names, `ode-zoo list` and `publish` refuse that old
layout (given as a path, its root is just a preset folder).

Example:
    >>> import tempfile
    >>> entry = Path(tempfile.mkdtemp())
    >>> for folder in ("1", "2", "serving/3"):
    ...     (entry / folder).mkdir(parents=True)
    >>> sorted(versions(entry)), next_version(entry)
    ([1, 2], 4)
    >>> version_dir(entry, 5)
    Traceback (most recent call last):
    ...
    ValueError: ... has no version 5; its versions are 1, 2 (the newest when none is given)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ode_zoo.zoo.presets import CONFIG_FILE, WEIGHTS_FILE

SERVING = "serving"          # the TF Serving model base path inside an entry
PathLike = Union[str, os.PathLike]


def _numbered(directory: Path) -> Dict[int, Path]:
    """The subfolders of `directory` named by a positive integer, in order."""
    if not directory.is_dir():
        return {}
    found = {int(p.name): p for p in directory.iterdir()
             if p.is_dir() and p.name.isdigit() and int(p.name) > 0}
    return dict(sorted(found.items()))


def is_flat(entry: PathLike) -> bool:
    """True for an entry in the layout before versions (a preset at its root)."""
    entry = Path(entry)
    return (entry / CONFIG_FILE).is_file() or (entry / WEIGHTS_FILE).is_file()


def versions(entry: PathLike) -> Dict[int, Path]:
    """The versions of a published entry, oldest first: {number: preset folder}.
    An entry in the old flat layout is an error naming the command that migrates it."""
    entry = Path(entry)
    if is_flat(entry):
        raise ValueError(f"{entry} holds a preset at its root (the layout before versions); "
                         f"make it version 1 with `python -m ode_zoo.zoo.versions {entry}`.")
    return _numbered(entry)


def version_dir(entry: PathLike, version: Optional[int] = None) -> Tuple[int, Path]:
    """(number, preset folder) of `version` of the entry, the newest when None;
    ValueError naming the versions there are when it has no such version."""
    found = versions(entry)
    if not found:
        raise ValueError(f"{entry} holds no published version (no folder 1/, 2/, ...).")
    version = max(found) if version is None else version
    if version not in found:
        raise ValueError(f"{entry} has no version {version}; its versions are "
                         f"{', '.join(map(str, found))} (the newest when none is given)")
    return version, found[version]


def next_version(entry: PathLike) -> int:
    """The number a new version of the entry gets: past every preset and every export."""
    entry = Path(entry)
    return max([0, *versions(entry), *_numbered(entry / SERVING)]) + 1


def migrate(entry: PathLike) -> Path:
    """Move the preset files at the root of an entry in the old layout into
    `<entry>/1/`, byte for byte (its export already is `serving/1`); returns that folder.

    Example:
        >>> migrate("saved_models/cfm_mnist_logit")            # doctest: +SKIP
        PosixPath('saved_models/cfm_mnist_logit/1')
    """
    entry = Path(entry)
    if not is_flat(entry):
        raise ValueError(f"{entry} has no preset at its root to migrate (versions: "
                         f"{sorted(_numbered(entry)) or 'none'}).")
    target = entry / "1"
    if target.exists():
        raise FileExistsError(f"{target} exists beside a preset at the root of {entry}; "
                              "sort them out by hand.")
    staging = entry / f".tmp-1-{os.getpid()}"
    staging.mkdir()
    for path in sorted(p for p in entry.iterdir() if p.is_file()):
        os.replace(path, staging / path.name)
    staging.rename(target)
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m ode_zoo.zoo.versions ENTRY...`: migrate entries in the old layout."""
    entries: List[str] = list(sys.argv[1:] if argv is None else argv)
    if not entries:
        print("usage: python -m ode_zoo.zoo.versions saved_models/NAME ...", file=sys.stderr)
        return 2
    for entry in entries:
        try:
            print(f"{entry}: preset moved to {migrate(entry)}")
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
