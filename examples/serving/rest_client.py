"""Classify MNIST test digits with odenet_mnist served by TF Serving's REST API.

Start the server first (README.md beside this file), then:

    python examples/serving/rest_client.py --count 16

Only the standard library talks to the server; the test digits come from
ode_zoo's MNIST loader (set ODE_ZOO_DATA or pass --data-dir).
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any, Dict, Optional, Sequence

import numpy as np

from client_common import load_test_digits, parse_args, report


def predict_url(host: str = "localhost", port: int = 8501, model: str = "odenet_mnist") -> str:
    """The REST predict endpoint of `model`.

    Example:
        >>> predict_url()
        'http://localhost:8501/v1/models/odenet_mnist:predict'
    """
    return f"http://{host}:{port}/v1/models/{model}:predict"


def predict_body(images: np.ndarray, signature: str = "serving_default") -> bytes:
    """The JSON request in the row format: one instance per image, raw pixels 0–255.

    Example:
        >>> body = predict_body(np.zeros((2, 28, 28, 1)))
        >>> len(json.loads(body)["instances"])
        2
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}.")
    return json.dumps({"signature_name": signature, "instances": images.tolist()}).encode()


def predicted_digits(response: Dict[str, Any]) -> np.ndarray:
    """The most probable class of each instance of a row-format response.

    Example:
        >>> predicted_digits({"predictions": [{"probabilities": [0.1, 0.9], "logits": [0, 2]}]})
        array([1])
    """
    return np.array([int(np.argmax(p["probabilities"])) for p in response["predictions"]])


def predict(images: np.ndarray, url: str, timeout: float = 60.0) -> Dict[str, Any]:
    """POST the images to `url` and return the decoded JSON response."""
    request = urllib.request.Request(url, data=predict_body(images),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Send `--count` test digits and print predictions against labels."""
    args = parse_args(__doc__.splitlines()[0], 8501, argv)
    images, labels = load_test_digits(args)
    report(predicted_digits(predict(images, predict_url(args.host, args.port, args.model))),
           labels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
