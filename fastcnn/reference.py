"""The seed notebook's own NumPy/SciPy arithmetic, as plain functions on arrays: the reference path.

The layers' ``backend="scipy"`` branches call these functions, and so does the reference side of
the tests' implementation pairs (``tests/pairs.py``), so the oracle is written once. Each function
is the notebook's expression, in its operations and their order, so the scipy backend's numbers
are the notebook's bit for bit.

This module never imports ``fastcnn.kernels`` (``tests/test_layout.py`` checks it): an oracle that
called the kernels would share their bugs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

# The notebook's activation and loss functions (cells 326 and 327) live in fastcnn.functions, the
# public names; they are the reference too, re-exported so the reference is one import.
from .functions import d_mse, d_sigmoid, mse, sigmoid

__all__ = [
    "activation_backward",
    "conv_filters_gradient",
    "conv_forward",
    "conv_gradient",
    "conv_input_gradient",
    "d_mse",
    "d_sigmoid",
    "dense_forward",
    "dense_gradient",
    "dense_weights_gradient",
    "mse",
    "sgd_update",
    "sigmoid",
]


def dense_forward(weights: NDArray, input: NDArray, biases: NDArray) -> NDArray:
    """``np.dot(weights, input) + biases`` (the notebook's ``Linear.forward_prop``).

    Shapes: weights (out, in), input (in, 1), biases (out, 1) -> (out, 1).
    """
    return np.dot(weights, input) + biases


def dense_weights_gradient(input: NDArray, d_output: NDArray) -> NDArray:
    """``d_weights = np.dot(d_output, input.T)``: input (in, 1), d_output (out, 1) -> (out, in)."""
    return np.dot(d_output, input.T)


def dense_gradient(weights: NDArray, input: NDArray, d_output: NDArray) -> tuple[NDArray, NDArray]:
    """``(d_input, d_weights)`` of the notebook's ``Linear.backward_prop``, in its order:
    ``d_weights = np.dot(d_output, input.T)`` then ``d_input = np.dot(weights.T, d_output)``, both
    from the weights before any update. (``d_biases`` is ``d_output`` itself.)"""
    d_weights = dense_weights_gradient(input, d_output)
    d_input = np.dot(weights.T, d_output)
    return d_input, d_weights


def conv_forward(input: NDArray, filters: NDArray, biases: NDArray) -> NDArray:
    """``output[i] = biases[i] + sum_j correlate2d(input[j], filters[i, j], "valid")``, summed in
    the notebook's loop order (``Convolution.forward_prop``).

    Shapes: input (depth, h, w), filters (count, depth, k, k), biases (count, h-k+1, w-k+1).
    """
    from scipy import signal  # imported here: 0.6 s that the numba path never needs

    output = biases.copy()
    for i in range(filters.shape[0]):
        for j in range(filters.shape[1]):
            output[i] += signal.correlate2d(input[j], filters[i, j], "valid")
    return output


def conv_filters_gradient(input: NDArray, d_output: NDArray, filters_shape: tuple) -> NDArray:
    """``d_filters[i, j] = correlate2d(input[j], d_output[i], "valid")``, shape ``filters_shape``,
    in ``input``'s dtype (the notebook's ``np.zeros(self.filters_shape)`` then its loop)."""
    from scipy import signal

    d_filters = np.zeros(filters_shape, input.dtype)
    for i in range(filters_shape[0]):
        for j in range(filters_shape[1]):
            d_filters[i, j] = signal.correlate2d(input[j], d_output[i], "valid")
    return d_filters


def conv_input_gradient(filters: NDArray, d_output: NDArray, input_shape: tuple) -> NDArray:
    """``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j], "full")``, summed over ``i`` in
    the notebook's order, shape ``input_shape``, in ``d_output``'s dtype."""
    from scipy import signal

    d_input = np.zeros(input_shape, d_output.dtype)
    for i in range(filters.shape[0]):
        for j in range(filters.shape[1]):
            d_input[j] += signal.convolve2d(d_output[i], filters[i, j], "full")
    return d_input


def conv_gradient(input: NDArray, filters: NDArray, d_output: NDArray) -> tuple[NDArray, NDArray]:
    """``(d_input, d_filters)`` of the notebook's ``Convolution.backward_prop``, from the filters
    before any update. The notebook fills both in one loop; two loops in the same ``i, j`` order
    give every element the same operations in the same order, so the same bits, and let the first
    layer of a network (no input gradient) skip ``d_input``."""
    d_filters = conv_filters_gradient(input, d_output, filters.shape)
    d_input = conv_input_gradient(filters, d_output, input.shape)
    return d_input, d_filters


def activation_backward(d_output: Any, d_activation: Callable[[Any], Any], input: Any) -> NDArray:
    """``np.multiply(d_output, d_activation(input))`` (the notebook's
    ``Activation.backward_prop``)."""
    return np.multiply(d_output, d_activation(input))


def sgd_update(parameter: NDArray, gradient: NDArray, rate: Any) -> None:
    """``parameter -= gradient * rate``, in place, rounded as the notebook's update is."""
    parameter -= gradient * rate
