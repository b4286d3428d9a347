"""Where the zoo's data files are looked for: `data_dir`, then `$ODE_ZOO_DATA/<folder>`
and `$ODE_ZOO_DATA`, then the Keras cache `~/.keras/datasets/<folder>` and
`~/.keras/datasets` (`$KERAS_HOME` moves it) — the order `load_mnist` uses.

Example:
    >>> dirs = search_dirs("ode2vae", data_dir="/data")
    >>> str(dirs[0]), dirs[-2].parts[-2:]
    ('/data', ('datasets', 'ode2vae'))
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional


def search_dirs(folder: str, data_dir: Optional[str] = None) -> List[Path]:
    """The directories searched for a data set kept in `folder`, in order."""
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("ODE_ZOO_DATA"):
        root = Path(os.environ["ODE_ZOO_DATA"])
        dirs += [root / folder, root]
    keras_cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    return dirs + [keras_cache / folder, keras_cache]


def find_data_file(name: str, folder: str, data_dir: Optional[str] = None) -> Path:
    """The first `search_dirs(folder, data_dir)` entry holding the file `name`.

    Raises:
      FileNotFoundError: listing every directory it looked in and how to provide the file.

    Example:
        >>> find_data_file("nothing.mat", "ode2vae", data_dir="/nowhere")
        Traceback (most recent call last):
        ...
        FileNotFoundError: nothing.mat not found. Looked in:
          /nowhere
        ...
    """
    dirs = search_dirs(folder, data_dir)
    for directory in dirs:
        if (directory / name).is_file():
            return directory / name
    looked = "\n  ".join(str(d) for d in dirs)
    raise FileNotFoundError(
        f"{name} not found. Looked in:\n  {looked}\nProvide it by setting ODE_ZOO_DATA to a "
        f"directory holding {folder}/{name}, or pass data_dir.")
