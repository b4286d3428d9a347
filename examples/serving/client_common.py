"""What the REST and gRPC example clients share: their command line, the MNIST
test digits they send, and the report of predictions against labels.

Example:
    >>> args = parse_args("demo client", 8501, ["--count", "4"])
    >>> args.port, args.count
    (8501, 4)
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence, Tuple

import numpy as np


def parse_args(description: str, port: int,
               argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """--host, --port (default `port`), --model, --count, --data-dir."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--model", default="odenet_mnist")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--data-dir", help="directory holding the MNIST files")
    return parser.parse_args(argv)


def load_test_digits(args: argparse.Namespace) -> Tuple[np.ndarray, np.ndarray]:
    """The first `args.count` MNIST test images (uint8 [N, 28, 28, 1]) and labels."""
    from ode_zoo.datasets import load_mnist
    images, labels = load_mnist("test", data_dir=args.data_dir)
    return images[:args.count], labels[:args.count]


def report(digits: np.ndarray, labels: np.ndarray) -> None:
    """Print predictions, labels and the share correct."""
    print("predicted:", " ".join(map(str, digits)))
    print("labels:   ", " ".join(map(str, labels)))
    print(f"{np.mean(digits == labels):.0%} of {len(labels)} correct")
