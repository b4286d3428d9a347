"""Every docstring example in the package runs and prints what it shows."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ode_zoo

MODULES = sorted(info.name for info in pkgutil.walk_packages(ode_zoo.__path__, "ode_zoo."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
