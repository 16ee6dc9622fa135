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
# public names; they are the reference too, re-exported so the reference is one import. So do
# issue 17's function pairs, losses and the Softmax carriers.
from .functions import (
    CrossEntropyGradient,
    SoftmaxOutput,
    binary_cross_entropy,
    cross_entropy,
    d_binary_cross_entropy,
    d_cross_entropy,
    d_leaky_relu,
    d_mse,
    d_relu,
    d_sigmoid,
    d_tanh,
    leaky_relu,
    mse,
    relu,
    sigmoid,
    tanh,
)

__all__ = [
    "CrossEntropyGradient",
    "SoftmaxOutput",
    "activation_backward",
    "avgpool_backward",
    "avgpool_forward",
    "binary_cross_entropy",
    "conv_biases_gradient",
    "conv_filters_gradient",
    "conv_forward",
    "conv_forward_padded",
    "conv_gradient",
    "conv_gradient_padded",
    "conv_input_gradient",
    "crop",
    "cross_entropy",
    "d_binary_cross_entropy",
    "d_cross_entropy",
    "d_leaky_relu",
    "d_mse",
    "d_relu",
    "d_sigmoid",
    "d_tanh",
    "dense_forward",
    "dense_gradient",
    "dense_weights_gradient",
    "leaky_relu",
    "leaky_relu_backward",
    "maxpool_backward",
    "maxpool_forward",
    "mse",
    "pad",
    "pool_output_shape",
    "relu",
    "relu_backward",
    "sgd_update",
    "sigmoid",
    "softmax_backward",
    "softmax_cross_entropy_backward",
    "softmax_forward",
    "softmax_layer_backward",
    "softmax_layer_forward",
    "tanh",
    "tanh_backward",
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


# --------------------------------------------------------------------------------------------------
# Beyond the notebook (issue 17): the activations' backward passes, Softmax, pooling and padded
# convolutions with per-filter biases. Plain NumPy/SciPy, checked against PyTorch's autograd by
# tests/test_functions17.py; the kernels of kernels/pointwise.py, softmax.py, pool.py and
# correlate5.py are checked against these.


def relu_backward(input: NDArray, d_output: NDArray) -> NDArray:
    """``d_output * d_relu(input)`` (the Activation layer's backward pass with relu)."""
    return activation_backward(d_output, d_relu, input)


def tanh_backward(input: NDArray, d_output: NDArray) -> NDArray:
    """``d_output * d_tanh(input)`` (the Activation layer's backward pass with tanh)."""
    return activation_backward(d_output, d_tanh, input)


def leaky_relu_backward(input: NDArray, d_output: NDArray) -> NDArray:
    """``d_output * d_leaky_relu(input)`` (the Activation layer's backward pass with leaky relu)."""
    return activation_backward(d_output, d_leaky_relu, input)


def softmax_forward(input: NDArray) -> tuple[NDArray, NDArray]:
    """``(s, log_s)``: ``s = exp(x - max(x)) / sum(exp(x - max(x)))`` and the stable log-softmax
    ``log_s = (x - max(x)) - log(sum(exp(x - max(x))))``, over all of ``input`` (n, 1).

    Subtracting the maximum keeps every exponent <= 0, so nothing overflows and the sum is >= 1;
    ``log_s`` is finite for any finite logits, where ``np.log(s)`` is ``-inf`` once ``s``
    underflows (logits ±1000).
    """
    shifted = input - np.max(input)
    exps = np.exp(shifted)
    total = np.sum(exps)
    return exps / total, shifted - np.log(total)


def softmax_backward(output: NDArray, d_output: NDArray) -> NDArray:
    """The Softmax Jacobian applied to ``d_output``: ``s * (g - sum(g * s))`` with ``s = output``
    (``d_input_i = sum_j s_j (delta_ij - s_i) g_j``), shapes (n, 1)."""
    return output * (d_output - np.sum(d_output * output))


def softmax_cross_entropy_backward(output: NDArray, actual: NDArray) -> NDArray:
    """``s - actual``: the gradient of ``cross_entropy(softmax(x), actual)`` with respect to the
    logits ``x`` (for targets summing to 1), ``actual`` rounded to ``output``'s dtype first, as
    the compiled kernels receive it."""
    return output - np.asarray(actual, dtype=output.dtype)


def softmax_layer_forward(input: NDArray) -> SoftmaxOutput:
    """A Softmax layer's forward pass: :func:`softmax_forward`'s probabilities as a
    :class:`~fastcnn.functions.SoftmaxOutput` that carries the log-softmax for
    :func:`~fastcnn.functions.cross_entropy`."""
    return SoftmaxOutput(*softmax_forward(input))


def softmax_layer_backward(output: NDArray, d_output: Any) -> NDArray:
    """A Softmax layer's backward pass from its forward ``output``: ``output - actual``
    (:func:`softmax_cross_entropy_backward`, exact) when ``d_output`` is the
    :class:`~fastcnn.functions.CrossEntropyGradient` that
    :func:`~fastcnn.functions.d_cross_entropy` made from these very probabilities; the general
    :func:`softmax_backward` of any other gradient."""
    if isinstance(d_output, CrossEntropyGradient):
        probabilities = np.asarray(d_output.probabilities)
        # Equal values, not identity: a network may hand the loss a copy of the output.
        if probabilities.shape == np.shape(output) and np.array_equal(probabilities, output):
            return softmax_cross_entropy_backward(np.asarray(output), d_output.actual)
    return softmax_backward(np.asarray(output), np.asarray(d_output))


def pool_output_shape(input_shape: tuple, size: int, stride: int) -> tuple[int, int, int]:
    """(depth, (h - size) // stride + 1, (w - size) // stride + 1): windows that fit wholly, the
    rest of an odd size dropped (floor), as PyTorch's pooling without padding or ceil_mode."""
    depth, height, width = input_shape
    return depth, (height - size) // stride + 1, (width - size) // stride + 1


def maxpool_forward(input: NDArray, size: int, stride: int) -> NDArray:
    """``output[c, i, j] = max(input[c, i*stride : i*stride+size, j*stride : j*stride+size])``;
    input (depth, h, w) -> :func:`pool_output_shape`."""
    output = np.empty(pool_output_shape(input.shape, size, stride), input.dtype)
    for i in range(output.shape[1]):
        for j in range(output.shape[2]):
            window = input[:, i * stride : i * stride + size, j * stride : j * stride + size]
            output[:, i, j] = np.max(window, axis=(1, 2))
    return output


def maxpool_backward(input: NDArray, d_output: NDArray, size: int, stride: int) -> NDArray:
    """``d_input``: each ``d_output[c, i, j]`` added to the input element that was its window's
    maximum, the first one in row-major order on ties (``np.argmax``; PyTorch's rule); windows
    that overlap (stride < size) add up. input (depth, h, w), d_output as the forward output."""
    depth = input.shape[0]
    d_input = np.zeros(input.shape, d_output.dtype)
    channels = np.arange(depth)
    for i in range(d_output.shape[1]):
        for j in range(d_output.shape[2]):
            window = input[:, i * stride : i * stride + size, j * stride : j * stride + size]
            first = np.argmax(window.reshape(depth, -1), axis=1)
            rows, cols = i * stride + first // size, j * stride + first % size
            d_input[channels, rows, cols] += d_output[:, i, j]
    return d_input


def avgpool_forward(input: NDArray, size: int, stride: int) -> NDArray:
    """``output[c, i, j] = sum(window) / size**2`` over the windows of :func:`maxpool_forward`
    (PyTorch's AvgPool2d: the sum, then one division)."""
    output = np.empty(pool_output_shape(input.shape, size, stride), input.dtype)
    count = input.dtype.type(size * size)
    for i in range(output.shape[1]):
        for j in range(output.shape[2]):
            window = input[:, i * stride : i * stride + size, j * stride : j * stride + size]
            output[:, i, j] = np.sum(window, axis=(1, 2)) / count
    return output


def avgpool_backward(input: NDArray, d_output: NDArray, size: int, stride: int) -> NDArray:
    """``d_input``: each ``d_output[c, i, j] / size**2`` added to every element of its window;
    overlapping windows add up. ``input`` gives the shape only (the signature of
    :func:`maxpool_backward`)."""
    d_input = np.zeros(input.shape, d_output.dtype)
    count = d_output.dtype.type(size * size)
    for i in range(d_output.shape[1]):
        for j in range(d_output.shape[2]):
            share = (d_output[:, i, j] / count)[:, None, None]
            d_input[:, i * stride : i * stride + size, j * stride : j * stride + size] += share
    return d_input


def pad(input: NDArray, padding: int) -> NDArray:
    """``input`` (depth, h, w) with ``padding`` zeros on every side of each channel:
    (depth, h + 2p, w + 2p)."""
    return np.pad(input, ((0, 0), (padding, padding), (padding, padding)))


def crop(d_padded: NDArray, padding: int) -> NDArray:
    """The inverse of :func:`pad` for a gradient: the interior (depth, H - 2p, W - 2p)."""
    height, width = d_padded.shape[1], d_padded.shape[2]
    return d_padded[:, padding : height - padding, padding : width - padding]


def conv_forward_padded(
    input: NDArray, filters: NDArray, biases: NDArray, padding: int = 0
) -> NDArray:
    """``output[i] = biases[i] + sum_j correlate2d(pad(input)[j], filters[i, j], "valid")``, in the
    notebook's loop order (:func:`conv_forward` on the padded input).

    Shapes: input (depth, h, w), filters (count, depth, k, k), biases either per output pixel
    (count, oh, ow), the notebook's, or per filter (count, 1, 1), broadcast over the pixels;
    output (count, oh, ow) with ``oh = h + 2p - k + 1``.
    """
    from scipy import signal

    x = pad(input, padding) if padding else input
    count, k = filters.shape[0], filters.shape[2]
    shape = (count, x.shape[1] - k + 1, x.shape[2] - k + 1)
    output = np.array(np.broadcast_to(biases, shape))
    for i in range(filters.shape[0]):
        for j in range(filters.shape[1]):
            output[i] += signal.correlate2d(x[j], filters[i, j], "valid")
    return output


def conv_biases_gradient(d_output: NDArray, biases_shape: tuple) -> NDArray:
    """``d_biases``: ``d_output`` itself for per-pixel biases; for per-filter biases (count, 1, 1)
    its sum over each filter's pixels (every pixel's output adds the same bias)."""
    if tuple(biases_shape) == d_output.shape:
        return d_output
    return np.sum(d_output, axis=(1, 2), keepdims=True)


def conv_gradient_padded(
    input: NDArray, filters: NDArray, biases_shape: tuple, d_output: NDArray, padding: int = 0
) -> tuple[NDArray, NDArray, NDArray]:
    """``(d_input, d_filters, d_biases)`` of :func:`conv_forward_padded`, from the filters before
    any update: :func:`conv_gradient` on the padded input, its ``d_input`` cropped back to
    ``input``'s shape (the padding's zeros are constants), and :func:`conv_biases_gradient`."""
    x = pad(input, padding) if padding else input
    d_input, d_filters = conv_gradient(x, filters, d_output)
    if padding:
        d_input = crop(d_input, padding)
    return d_input, d_filters, conv_biases_gradient(d_output, biases_shape)
