"""Classify MNIST test digits with odenet_mnist served by TF Serving's gRPC API.

Needs `pip install tensorflow-serving-api` (not an ode_zoo dependency). Start
the server first (README.md beside this file), then:

    python examples/serving/grpc_client.py --count 16
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from client_common import load_test_digits, parse_args, report

try:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
except ImportError:  # input_tensors and predicted_digits work without it
    grpc = predict_pb2 = prediction_service_pb2_grpc = None


def input_tensors(images: np.ndarray) -> Dict[str, tensor_pb2.TensorProto]:
    """The request's inputs: `images` as a float32 [N, H, W, C] tensor of raw pixels.

    Example:
        >>> input_tensors(np.zeros((2, 28, 28, 1)))["images"].dtype == tf.float32.as_datatype_enum
        True
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}.")
    return {"images": tf.make_tensor_proto(images)}


def predict_request(images: np.ndarray, model: str = "odenet_mnist",
                    signature: str = "serving_default") -> Any:
    """A `PredictRequest` for `model`'s `signature` with the images as input."""
    if predict_pb2 is None:
        raise ImportError("the gRPC client needs `pip install tensorflow-serving-api`.")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for key, tensor in input_tensors(images).items():
        request.inputs[key].CopyFrom(tensor)
    return request


def predicted_digits(outputs: Mapping[str, tensor_pb2.TensorProto]) -> np.ndarray:
    """The most probable class of each image, from a response's `outputs`.

    Example:
        >>> predicted_digits({"probabilities": tf.make_tensor_proto([[0.2, 0.8]])})
        array([1])
    """
    return tf.make_ndarray(outputs["probabilities"]).argmax(axis=1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Send `--count` test digits and print predictions against labels."""
    args = parse_args(__doc__.splitlines()[0], 8500, argv)
    images, labels = load_test_digits(args)
    with grpc.insecure_channel(f"{args.host}:{args.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request(images, args.model), timeout=60.0)
    report(predicted_digits(response.outputs), labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
