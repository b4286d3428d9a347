"""TF Serving exports: the SavedModel keeps the serving contract, runs under
`saved_model_cli` and in a process without ode_zoo/TFP/tf_keras, and answers
exactly like the Keras model; the same holds for every published zoo entry.
The serving examples build well-formed requests."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import ode_zoo
from ode_zoo.zoo.configs import zoo_dirs
from ode_zoo.zoo.export import endpoint_outputs
from ode_zoo.zoo.publish import serving_inputs
from ode_zoo.zoo.serving_checks import (ServingCheckError, check_serving, check_static,
                                        random_inputs, run_isolated, run_saved_model_cli)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(filters=8, groups=4, method="rk4", num_steps=1)
IMAGES = np.random.default_rng(0).uniform(0, 255, (3, 28, 28, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """(tiny untrained odenet_mnist, its export's version directory)."""
    model = ode_zoo.load("odenet_mnist", load_weights=False, **TINY)
    return model, ode_zoo.export(model, tmp_path_factory.mktemp("serving"))


def test_export_writes_a_new_integer_version(exported, tmp_path: Path) -> None:
    model, version_dir = exported
    assert version_dir.name == "1"
    assert sorted(p.name for p in version_dir.parent.iterdir()) == ["1"]  # no staging left
    with pytest.raises(FileExistsError, match=r"versions present: \[1\]\); export with version=2"):
        ode_zoo.export(model, version_dir.parent, version=1)
    for bad in (0, "2", True):
        with pytest.raises(ValueError, match="version must be a positive integer"):
            ode_zoo.export(model, tmp_path, version=bad)


def test_static_check_reads_the_signatures(exported) -> None:
    assert check_static(exported[1]) == {
        "serving_default": {"inputs": ["images"], "outputs": ["logits", "probabilities"]}}


def _copy_with(version_dir: Path, target: Path, mutate) -> Path:
    shutil.copytree(version_dir, target)
    saved_model = saved_model_pb2.SavedModel.FromString((target / "saved_model.pb").read_bytes())
    mutate(saved_model.meta_graphs[0])
    (target / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    return target


def _method(meta_graph) -> None:
    meta_graph.signature_def["serving_default"].method_name = "tensorflow/serving/classify"


def _fixed_batch(meta_graph) -> None:
    meta_graph.signature_def["serving_default"].inputs["images"].tensor_shape.dim[0].size = 3


def _python_op(meta_graph) -> None:
    meta_graph.graph_def.library.function[0].node_def.add(name="f", op="EagerPyFunc")


def _xla(meta_graph) -> None:
    meta_graph.graph_def.library.function[0].attr["_XlaMustCompile"].b = True


def _tags(meta_graph) -> None:
    meta_graph.meta_info_def.ClearField("tags")
    meta_graph.meta_info_def.tags.append("train")


@pytest.mark.parametrize("mutate, message", [
    (_method, "method 'tensorflow/serving/classify', not 'tensorflow/serving/predict'"),
    (_fixed_batch, "input 'images' of 'serving_default' is not batch-major"),
    (_python_op, r"Python-function ops \['EagerPyFunc'\]"),
    (_xla, "XLA-compiled functions .* --xla_cpu_compilation_enabled"),
    (_tags, "no meta graph with tag 'serve'"),
], ids=["method", "batch-major", "python-op", "xla", "tag"])
def test_static_check_rejects_what_tf_serving_cannot_serve(exported, tmp_path: Path,
                                                           mutate, message: str) -> None:
    with pytest.raises(ServingCheckError, match=message):
        check_static(_copy_with(exported[1], tmp_path / "7", mutate))


def test_static_check_wants_an_integer_version_directory(exported, tmp_path: Path) -> None:
    with pytest.raises(ServingCheckError, match="'v1' is not an integer version"):
        check_static(_copy_with(exported[1], tmp_path / "v1", lambda meta_graph: None))


def test_static_check_finds_real_python_functions(tmp_path: Path) -> None:
    module = tf.Module()
    module.f = tf.function(
        lambda x: tf.py_function(np.sin, [x], tf.float32) + tf.numpy_function(np.cos, [x],
                                                                               tf.float32),
        input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.f})
    with pytest.raises(ServingCheckError, match=r"\['EagerPyFunc', 'PyFunc'\]"):
        check_static(tmp_path / "1")


def test_saved_model_cli_and_isolated_load_match_keras(exported) -> None:
    model, version_dir = exported
    check_serving(version_dir, model, {"serving_default": {"images": IMAGES}})
    expected = endpoint_outputs(model, "serving_default", {"images": IMAGES})
    assert expected["probabilities"].shape == (3, 10)
    np.testing.assert_allclose(expected["probabilities"].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(expected["probabilities"],
                               tf.nn.softmax(model.predict(IMAGES, verbose=0)).numpy(), rtol=1e-6)


def test_check_serving_notices_an_export_of_other_weights(exported) -> None:
    model, version_dir = exported
    other = ode_zoo.load("odenet_mnist", load_weights=False, **TINY)
    with pytest.raises(ServingCheckError, match="saved_model_cli .* differs from the Keras model"):
        check_serving(version_dir, other, {"serving_default": {"images": IMAGES}})


def test_check_serving_wants_inputs_for_every_endpoint(exported) -> None:
    with pytest.raises(ServingCheckError, match=r"no inputs given for endpoint\(s\) "
                                                r"\['serving_default'\]"):
        check_serving(exported[1], exported[0], {})


def test_isolated_load_reports_failures(tmp_path: Path) -> None:
    with pytest.raises(ServingCheckError, match="loading without ode_zoo/TFP/tf_keras failed"):
        run_isolated(tmp_path, {"images": IMAGES})
    with pytest.raises(ServingCheckError, match="saved_model_cli run failed"):
        run_saved_model_cli(tmp_path, {"images": IMAGES})


@pytest.mark.parametrize("name", ode_zoo.list_models())
def test_every_zoo_model_has_a_serving_default_endpoint_first(name: str) -> None:
    model = ode_zoo.load(name, load_weights=False)
    assert next(iter(model.serving_endpoints())) == "serving_default"


def test_random_inputs_are_raw_pixel_batches_for_every_endpoint(exported) -> None:
    inputs = random_inputs(exported[0], batch_size=2, seed=5)
    assert list(inputs) == ["serving_default"] and list(inputs["serving_default"]) == ["images"]
    images = inputs["serving_default"]["images"]
    assert images.shape == (2, 28, 28, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.std() > 50
    np.testing.assert_array_equal(images, np.round(images))         # integer pixel values
    np.testing.assert_array_equal(images, random_inputs(exported[0], 2, seed=5)[
        "serving_default"]["images"])


def _published() -> list:
    """saved_models/<name>/serving/<version>/ of every published version."""
    entries = sorted(v for root in zoo_dirs("saved_models") for d in root.iterdir()
                     if (d / "serving").is_dir() for v in (d / "serving").iterdir()
                     if v.name.isdigit())
    if not entries:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="no zoo entry is published with saved_models/<name>/serving/<version>/ yet"))]
    return [pytest.param(e, id=f"{e.parents[1].name}-v{e.name}") for e in entries]


@pytest.mark.parametrize("version_dir", _published())
def test_published_serving_artifact_keeps_the_serving_contract(version_dir: Path) -> None:
    """The static checks of every committed artifact (signatures, no Python or XLA ops)."""
    check_static(version_dir)


@pytest.mark.slow
@pytest.mark.parametrize("version_dir", _published())
def test_published_serving_artifact_matches_its_preset(version_dir: Path,
                                                      mnist_env: Path) -> None:
    """The checks `publish` ran, again on the committed artifact: real test examples
    (an equilibrium solve may stop an iteration apart on noise images). Slow (a
    SavedModel load in a fresh process and saved_model_cli per version, about a
    minute each here); the artifacts are immutable once published (tests/test_versions.py),
    and every family's fresh export gets these checks in tests/test_model_families.py."""
    model = ode_zoo.load(version_dir.parents[1], version=int(version_dir.name))
    check_serving(version_dir, model, serving_inputs(model))


def _example(name: str):
    path = REPO_ROOT / "examples" / "serving" / f"{name}.py"
    if str(path.parent) not in sys.path:          # the clients import client_common beside them
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"serving_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rest_request_is_the_row_format_of_raw_pixels() -> None:
    rest = _example("rest_client")
    images = np.random.default_rng(2).integers(0, 256, (5, 28, 28, 1)).astype(np.uint8)
    body = json.loads(rest.predict_body(images))
    assert body["signature_name"] == "serving_default"
    instances = np.asarray(body["instances"])
    assert instances.shape == (5, 28, 28, 1) and instances.dtype == np.float64
    np.testing.assert_array_equal(instances, images)
    assert rest.predict_url() == "http://localhost:8501/v1/models/odenet_mnist:predict"
    response = {"predictions": [{"probabilities": [0.1, 0.7, 0.2], "logits": [0, 2, 1]},
                                {"probabilities": [0.6, 0.3, 0.1], "logits": [2, 1, 0]}]}
    np.testing.assert_array_equal(rest.predicted_digits(response), [1, 0])
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        rest.predict_body(images[0])


def test_grpc_inputs_are_float32_image_batches() -> None:
    grpc_client = _example("grpc_client")
    images = np.random.default_rng(3).integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
    tensor = grpc_client.input_tensors(images)["images"]
    assert tensor.dtype == tf.float32.as_datatype_enum
    assert [d.size for d in tensor.tensor_shape.dim] == [2, 28, 28, 1]
    np.testing.assert_array_equal(tf.make_ndarray(tensor), images.astype(np.float32))
    outputs = {"probabilities": tf.make_tensor_proto(np.eye(10, dtype=np.float32)[[3, 7]])}
    np.testing.assert_array_equal(grpc_client.predicted_digits(outputs), [3, 7])


def test_grpc_predict_request() -> None:
    pytest.importorskip("tensorflow_serving", reason="pip install tensorflow-serving-api")
    request = _example("grpc_client").predict_request(IMAGES, "odenet_mnist")
    assert request.model_spec.name == "odenet_mnist"
    assert request.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["images"]), IMAGES)
