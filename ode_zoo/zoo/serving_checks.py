"""Checks that a SavedModel version directory serves as TF Serving would serve it.

No `tensorflow_model_server` runs here, so each check mimics one thing the server does:

- `check_static`: the serving contract read from `saved_model.pb` alone: tag
  `serve`, an integer version directory, signatures with method
  `tensorflow/serving/predict` and batch-major inputs, no Python-function ops
  (`PyFunc`, `EagerPyFunc`, `PyFuncStateless`) in the graph or its function library.
- `run_saved_model_cli`: `saved_model_cli run` loads it into a TF1 session, as
  the C++ server does, and prints the outputs.
- `run_isolated`: a fresh Python process, where `ode_zoo`, TensorFlow
  Probability and `tf_keras` cannot be imported, loads it and calls it.
- `check_serving`: all of the above, and the outputs equal the Keras model's.

Example:
    >>> import tempfile, ode_zoo
    >>> model = ode_zoo.load("odenet_mnist", load_weights=False, filters=8, groups=4,
    ...                      method="rk4", num_steps=1)
    >>> path = ode_zoo.export(model, tempfile.mkdtemp())
    >>> check_serving(path, model)          # random raw-pixel images for every endpoint
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import keras
import numpy as np
from tensorflow.core.protobuf import saved_model_pb2

from ode_zoo.zoo.export import endpoint_outputs, endpoints

PREDICT_METHOD = "tensorflow/serving/predict"
PYTHON_OPS = {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
BLOCKED_MODULES = ("ode_zoo", "tensorflow_probability", "tf_keras")
Arrays = Mapping[str, np.ndarray]
PathLike = Union[str, os.PathLike]


class ServingCheckError(Exception):
    """A SavedModel that TF Serving would not serve as the Keras model computes."""


def _ops(meta_graph) -> List[str]:
    ops = [node.op for node in meta_graph.graph_def.node]
    for function in meta_graph.graph_def.library.function:
        ops += [node.op for node in function.node_def]
    return ops


def _xla_functions(meta_graph) -> List[str]:
    """Names of the library functions marked for XLA compilation (`jit_compile=True`)."""
    marks = ("_XlaMustCompile", "_XlaCompile")
    return sorted(function.signature.name for function in meta_graph.graph_def.library.function
                  if any(function.attr[mark].b for mark in marks if mark in function.attr))


def check_static(version_dir: PathLike) -> Dict[str, Dict[str, List[str]]]:
    """Check the serving contract from `saved_model.pb`; returns each signature's
    input and output names. Raises ServingCheckError listing every problem."""
    version_dir = Path(version_dir)
    pb = version_dir / "saved_model.pb"
    if not pb.is_file():
        raise ServingCheckError(f"{pb} not found: not a SavedModel directory.")
    saved_model = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    problems = [] if version_dir.name.isdigit() else [
        f"directory name {version_dir.name!r} is not an integer version (TF Serving loads "
        "<model_base_path>/<integer>/)"]
    serving = [m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags]
    if not serving:
        raise ServingCheckError(f"{pb}: no meta graph with tag 'serve'; tags are "
                                f"{[list(m.meta_info_def.tags) for m in saved_model.meta_graphs]}.")
    meta_graph, signatures = serving[0], {}
    python_ops = sorted(PYTHON_OPS & set(_ops(meta_graph)))
    if python_ops:
        problems.append(f"Python-function ops {python_ops} (TF Serving has no Python)")
    xla = _xla_functions(meta_graph)
    if xla:
        problems.append(f"XLA-compiled functions {xla[:3]} (TF Serving runs them only when "
                        "started with --xla_cpu_compilation_enabled)")
    if "serving_default" not in meta_graph.signature_def:
        problems.append(f"no 'serving_default' signature; signatures are "
                        f"{sorted(meta_graph.signature_def)}")
    for name, signature in meta_graph.signature_def.items():
        if name.startswith("__"):  # TF's internal entries such as __saved_model_init_op
            continue
        if signature.method_name != PREDICT_METHOD:
            problems.append(f"signature {name!r} has method {signature.method_name!r}, "
                            f"not {PREDICT_METHOD!r}")
        for key, info in signature.inputs.items():
            shape = info.tensor_shape
            if shape.unknown_rank or not shape.dim or shape.dim[0].size != -1:
                problems.append(f"input {key!r} of {name!r} is not batch-major (first "
                                f"dimension must be None), shape {[d.size for d in shape.dim]}")
        signatures[name] = {"inputs": sorted(signature.inputs),
                            "outputs": sorted(signature.outputs)}
    if problems:
        raise ServingCheckError(f"{version_dir} will not serve: " + "; ".join(problems) + ".")
    return signatures


def _run(command: List[str], cwd: PathLike, what: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise ServingCheckError(f"{what} failed (exit {done.returncode}):\n"
                                f"{done.stderr[-3000:]}")
    return done.stdout


def run_saved_model_cli(version_dir: PathLike, inputs: Arrays,
                        signature: str = "serving_default") -> Dict[str, np.ndarray]:
    """Outputs of `saved_model_cli run --inputs k=file.npy` (the one installed with
    TensorFlow next to this Python). Checks that it printed every output; takes
    the values from the .npy files it writes with `--outdir` (the printed ones
    are rounded, and elided beyond 1000 numbers)."""
    cli = Path(sys.executable).parent / "saved_model_cli"
    if not cli.is_file():
        raise ServingCheckError(f"{cli} not found; it is installed with tensorflow.")
    with tempfile.TemporaryDirectory() as tmp:
        for key, value in inputs.items():
            np.save(os.path.join(tmp, f"{key}.npy"), value)
        feeds = ";".join(f"{key}={os.path.join(tmp, key)}.npy" for key in inputs)
        out = os.path.join(tmp, "outputs")
        printed = _run([str(cli), "run", "--dir", str(version_dir), "--tag_set", "serve",
                        "--signature_def", signature, "--inputs", feeds, "--outdir", out],
                       tmp, "saved_model_cli run")
        keys = re.findall(r"^Result for output key (\S+):$", printed, re.MULTILINE)
        written = sorted(p[:-len(".npy")] for p in os.listdir(out)) if os.path.isdir(out) else []
        if not keys or sorted(keys) != written:
            raise ServingCheckError(f"saved_model_cli printed outputs {sorted(keys)} but wrote "
                                    f"{written}:\n{printed[-2000:]}")
        return {key: np.load(os.path.join(out, f"{key}.npy")) for key in keys}


_ISOLATED = textwrap.dedent("""
    import importlib.abc, json, sys
    BLOCKED = set(json.loads(sys.argv[1]))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: TF Serving has no Python packages")
            return None

    sys.meta_path.insert(0, Block())
    for name in BLOCKED:
        try:
            __import__(name)
        except ImportError:
            continue
        sys.exit(f"the import blocker failed: {name} was imported")
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[2], tags=["serve"])
    inputs = np.load(sys.argv[3])
    feeds = {key: tf.constant(inputs[key]) for key in inputs.files}
    outputs = loaded.signatures[sys.argv[4]](**feeds)
    np.savez(sys.argv[5], **{key: value.numpy() for key, value in outputs.items()})
    leaked = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    if leaked:
        sys.exit(f"blocked modules were loaded: {leaked}")
""")


def run_isolated(version_dir: PathLike, inputs: Arrays,
                 signature: str = "serving_default") -> Dict[str, np.ndarray]:
    """Outputs of the signature called in a new process (started in a temporary
    directory) where `BLOCKED_MODULES` cannot be imported."""
    with tempfile.TemporaryDirectory() as tmp:
        feeds, result = os.path.join(tmp, "inputs.npz"), os.path.join(tmp, "outputs.npz")
        np.savez(feeds, **inputs)
        _run([sys.executable, "-c", _ISOLATED, json.dumps(BLOCKED_MODULES),
              str(Path(version_dir).resolve()), feeds, signature, result],
             tmp, "loading without ode_zoo/TFP/tf_keras")
        with np.load(result) as outputs:
            return {key: outputs[key] for key in outputs.files}


def compare_outputs(expected: Arrays, actual: Arrays, source: str,
                    tolerance: Callable[[str], Tuple[float, float]] = lambda key: (1e-4, 1e-5)
                    ) -> None:
    """Raise ServingCheckError unless `actual` has `expected`'s keys and values, each
    output within its `tolerance(key)` = (rtol, atol)."""
    if sorted(expected) != sorted(actual):
        raise ServingCheckError(f"{source} returned outputs {sorted(actual)}, "
                                f"the Keras model {sorted(expected)}.")
    for key, value in expected.items():
        rtol, atol = tolerance(key)
        if actual[key].shape != value.shape or not np.allclose(actual[key], value, rtol, atol):
            error = (np.abs(actual[key] - value).max() if actual[key].shape == value.shape
                     else f"shape {actual[key].shape} vs {value.shape}")
            raise ServingCheckError(f"{source} output {key!r} differs from the Keras model's "
                                    f"(max abs difference {error}; rtol={rtol}, atol={atol}).")


def random_inputs(model: keras.Model, batch_size: int = 4, seed: int = 0,
                  free_length: int = 5) -> Dict[str, Dict[str, np.ndarray]]:
    """Inputs for every endpoint of `model` from random examples of what it takes
    (`model.random_examples`: raw pixels 0–255 for image and sequence models,
    standard normal points for 2-D flows; a dimension left free after the batch,
    a sequence's frames, gets `free_length`), made into each endpoint's inputs by
    `model.serving_inputs`."""
    examples = model.random_examples(batch_size, seed, free_length)
    return model.serving_inputs(examples, seed)


def check_serving(version_dir: PathLike, model: keras.Model,
                  inputs: Optional[Mapping[str, Arrays]] = None,
                  rtol: Optional[float] = None, atol: Optional[float] = None) -> None:
    """All checks on an export of `model`. `inputs` maps every endpoint of the
    model to its input arrays (default: `random_inputs(model)`); raises
    ServingCheckError on any failure. Outputs must agree to `rtol`/`atol`
    (default: the model's `output_tolerance(output)`, e.g. an iterative solver's)."""
    def tolerance(key: str) -> Tuple[float, float]:
        default_rtol, default_atol = model.output_tolerance(key)
        return (default_rtol if rtol is None else rtol, default_atol if atol is None else atol)

    inputs = random_inputs(model) if inputs is None else inputs
    signatures = check_static(version_dir)
    missing = sorted(set(endpoints(model)) - set(inputs))
    if missing:
        raise ServingCheckError(f"no inputs given for endpoint(s) {missing}; every endpoint "
                                f"is checked: {sorted(endpoints(model))}.")
    for name, feeds in inputs.items():
        if name not in signatures:
            raise ServingCheckError(f"{version_dir} has no signature {name!r}; it has "
                                    f"{sorted(signatures)}.")
        expected = endpoint_outputs(model, name, feeds)
        compare_outputs(expected, run_saved_model_cli(version_dir, feeds, name),
                        f"saved_model_cli ({name})", tolerance)
        compare_outputs(expected, run_isolated(version_dir, feeds, name),
                        f"isolated load ({name})", tolerance)
