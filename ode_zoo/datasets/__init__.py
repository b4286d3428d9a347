"""Datasets as numpy arrays and tf.data pipelines."""
from ode_zoo.datasets.mnist import SPLITS as MNIST_SPLITS
from ode_zoo.datasets.mnist import load_mnist
from ode_zoo.datasets.pipelines import classification_dataset

__all__ = ["load_mnist", "MNIST_SPLITS", "classification_dataset"]
