"""The seed's activation and loss functions, unchanged: they are also the reference path."""

import numpy as np


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``, elementwise."""
    return 1 / (1 + np.exp(-x))


def d_sigmoid(x):
    """Derivative of :func:`sigmoid`, ``s * (1 - s)`` with ``s = sigmoid(x)``."""
    s = sigmoid(x)
    return s * (1 - s)


def mse(predicted, actual):
    """Mean squared error ``mean((actual - predicted) ** 2)``."""
    return np.mean(np.power(actual - predicted, 2))


def d_mse(predicted, actual):
    """Gradient of :func:`mse` with respect to ``predicted``: ``2 (predicted - actual) / size``."""
    return 2 * (predicted - actual) / np.size(actual)
