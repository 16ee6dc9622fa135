"""The seed's layers. Each computing layer runs on one of two paths, chosen by ``backend``:

* ``"scipy"``: the seed's own NumPy/SciPy lines, kept verbatim as the reference path (the oracle of
  the tests); it never calls ``fastcnn.kernels``, or the oracle would share a kernel's bug.
* ``"numba"`` (default): the same arithmetic in the Numba kernels of ``fastcnn.kernels``.
"""

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from . import _validation as check
from .functions import d_sigmoid, sigmoid
from .kernels import activation as k_activation
from .kernels import conv as k_conv
from .kernels import dense as k_dense


class Layer:
    """Base class: ``forward_prop`` maps an input to an output; ``backward_prop(d_output, rate)``
    takes the loss gradient of the output, updates the layer's parameters in place by SGD with step
    ``rate`` and returns the loss gradient of the input."""

    def __init__(self):
        self.input = None

    def forward_prop(self, input):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_prop.")

    def backward_prop(self, d_output, rate):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward_prop.")

    def _check_forwarded(self):
        if self.input is None:
            raise RuntimeError(f"backward_prop of layer {self!r} was called before forward_prop.")


class _ComputeLayer(Layer):
    """A layer with a ``backend`` and a ``dtype``; both are checked whenever they are set."""

    def __init__(self, backend, dtype):
        super().__init__()
        self.backend = backend
        self.dtype = check.check_dtype(dtype)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value):
        self._backend = check.check_backend(value)

    def _options(self):
        """The keyword arguments of ``repr`` that differ from their defaults."""
        parts = []
        if self.backend != "numba":
            parts.append(f"backend={self.backend!r}")
        if self.dtype != np.float64:
            parts.append(f"dtype={self.dtype.name!r}")
        return "".join(", " + p for p in parts)

    def _check_parameters(self):
        """The kernels index the parameters without bounds checks: a user who assigned, say,
        ``layer.weights = something_else`` gets an error here instead of corrupted memory."""
        for name, array, shape in zip(
            self._PARAMETERS, self.parameters(), self._shapes(), strict=True
        ):
            if (
                not isinstance(array, np.ndarray)
                or array.shape != shape
                or array.dtype != self.dtype
                or not array.flags.c_contiguous
                or not array.flags.writeable
            ):
                got = (
                    f"{array.dtype} array of shape {array.shape}"
                    if isinstance(array, np.ndarray)
                    else type(array).__name__
                )
                raise ValueError(
                    f"{name} of layer {self!r} must be a writeable C-contiguous {self.dtype} array "
                    f"of shape {shape}, but it is a {got}. Assign with "
                    f"layer.{name}[...] = values, or np.ascontiguousarray(values, {self.dtype})."
                )

    def _rate(self, rate):
        # In the layer's dtype, so a float32 kernel stays in float32 (Numba would promote to float64).
        return self.dtype.type(check.check_rate(rate))


class Linear(_ComputeLayer):
    """Fully connected layer ``Y = W X + B``.

    Parameters
    ----------
    input_size, output_size : int
    backend : {"numba", "scipy"}, keyword-only
    dtype : float64 or float32, keyword-only
    rng : None, int, np.random.RandomState or np.random.Generator, keyword-only
        Source of the initial weights; None draws from NumPy's global state as the seed does.
    init : {"seed", "xavier"}, keyword-only
        ``"seed"``: ``weights = randn(out, in)`` then ``biases = randn(out, 1)``. ``"xavier"``:
        Glorot-normal weights, standard deviation ``sqrt(2 / (in + out))``, and zero biases.

    Attributes
    ----------
    weights : ndarray of shape (output_size, input_size)
    biases : ndarray of shape (output_size, 1)
    input : ndarray of shape (input_size, 1), the last input seen by ``forward_prop``
    """

    def __init__(
        self, input_size, output_size, *, backend="numba", dtype=np.float64, rng=None, init="seed"
    ):
        self.input_size = check.check_size("input_size", input_size)
        self.output_size = check.check_size("output_size", output_size)
        super().__init__(backend, dtype)
        randn = check.random_normal(rng)
        if check.check_init(init) == "seed":
            weights = randn(output_size, input_size)
            biases = randn(output_size, 1)
        else:
            weights = randn(output_size, input_size) * np.sqrt(2 / (input_size + output_size))
            biases = np.zeros((output_size, 1))
        self.weights: NDArray = weights.astype(self.dtype)
        self.biases: NDArray = biases.astype(self.dtype)

    _PARAMETERS = ("weights", "biases")

    def parameters(self):
        """The arrays SGD updates in place: ``(weights, biases)``."""
        return self.weights, self.biases

    def _shapes(self):
        return (self.output_size, self.input_size), (self.output_size, 1)

    def __repr__(self):
        return f"Linear({self.input_size}, {self.output_size}{self._options()})"

    def forward_prop(self, input):
        """``weights @ input + biases``; input of shape (input_size, 1) -> (output_size, 1)."""
        self.input = check.as_array(self, "Input", input, (self.input_size, 1), self.dtype)
        if self.backend == "scipy":
            return np.dot(self.weights, self.input) + self.biases
        self._check_parameters()
        out = np.empty((self.output_size, 1), self.dtype)
        k_dense.dense_forward(self.weights, self.input, self.biases, out)
        return out

    def backward_prop(self, d_output, rate):
        """SGD step on weights and biases; returns ``weights.T @ d_output`` (weights before it)."""
        self._check_forwarded()
        d_output = check.as_array(self, "d_output", d_output, (self.output_size, 1), self.dtype)
        rate = self._rate(rate)
        if self.backend == "scipy":
            d_weights = np.dot(d_output, self.input.T)
            d_biases = d_output
            d_input = np.dot(self.weights.T, d_output)
            self.weights -= d_weights * rate
            self.biases -= d_biases * rate
            return d_input
        self._check_parameters()
        d_input = np.empty((self.input_size, 1), self.dtype)
        k_dense.dense_backward_sgd(self.weights, self.biases, self.input, d_output, rate, d_input)
        return d_input


class Activation(Layer):
    """Elementwise activation ``Y = activation(X)``; backward ``d_output * d_activation(X)``.

    Any pair of NumPy functions works. The seed's :func:`~fastcnn.sigmoid` /
    :func:`~fastcnn.d_sigmoid` pair runs as a Numba kernel unless ``backend="scipy"``.
    """

    def __init__(self, activation, d_activation, *, backend="numba"):
        if not callable(activation) or not callable(d_activation):
            raise TypeError(
                f"activation and d_activation must be callables, got {activation!r} and "
                f"{d_activation!r}."
            )
        self.activation = activation
        self.d_activation = d_activation
        self.backend = check.check_backend(backend)
        super().__init__()

    def __repr__(self):
        names = f"{self.activation.__name__}, {self.d_activation.__name__}"
        return f"Activation({names}{'' if self.backend == 'numba' else ', backend=' + repr(self.backend)})"

    def _kernel(self):
        return (
            self.backend == "numba"
            and self.activation is sigmoid
            and self.d_activation is d_sigmoid
        )

    def forward_prop(self, input):
        if not self._kernel():
            self.input = input
            return self.activation(self.input)
        input = np.asarray(input)
        # The kernel keeps float32 as float32; any other numeric input computes in float64.
        dtype = input.dtype if input.dtype in check.DTYPES else np.float64
        self.input = check.as_array(self, "Input", input, input.shape, dtype)
        self._output = np.empty_like(self.input)
        k_activation.sigmoid(self.input, self._output)
        return self._output.copy()  # the caller may modify what it gets

    def backward_prop(self, d_output, rate):
        self._check_forwarded()
        if not self._kernel():
            shape = np.shape(self.input)
            if np.shape(d_output) != shape:  # np.multiply would broadcast it into nonsense
                raise ValueError(
                    f"d_output of layer {self!r} is incompatible with the layer: expected shape "
                    f"{shape}, but received d_output with shape {np.shape(d_output)}."
                )
            return np.multiply(d_output, self.d_activation(self.input))
        d_output = check.as_array(self, "d_output", d_output, self.input.shape, self.input.dtype)
        d_input = np.empty_like(self.input)
        k_activation.sigmoid_backward(self._output, d_output, d_input)
        return d_input


class Convolution(_ComputeLayer):
    """Convolution layer ``Y_i = B_i + sum_j correlate2d(X_j, F_ij, "valid")``.

    Parameters
    ----------
    input_shape : tuple (depth, height, width)
    filter_size : int, at most ``min(height, width)``
    filter_count : int
    backend, dtype, rng, init : keyword-only, as for :class:`Linear`. ``init="seed"`` draws
        ``randn(*filters_shape) - 0.5`` then ``randn(*output_shape) - 0.5``; ``"xavier"`` draws
        Glorot-normal filters (fan in ``depth * size**2``, fan out ``count * size**2``) and zero
        biases.

    Attributes
    ----------
    filters : ndarray of shape (filter_count, depth, filter_size, filter_size)
    biases : ndarray of shape output_shape = (filter_count, height - size + 1, width - size + 1)
    """

    def __init__(
        self,
        input_shape,
        filter_size,
        filter_count,
        *,
        backend="numba",
        dtype=np.float64,
        rng=None,
        init="seed",
    ):
        input_depth, input_height, input_width = check.check_shape("input_shape", input_shape, 3)
        filter_size = check.check_size("filter_size", filter_size)
        filter_count = check.check_size("filter_count", filter_count)
        if filter_size > min(input_height, input_width):
            raise ValueError(
                f"filter_size={filter_size} is larger than the input image "
                f"{input_height}x{input_width}; it must be at most {min(input_height, input_width)}."
            )
        super().__init__(backend, dtype)
        self.input_shape = (input_depth, input_height, input_width)
        self.input_depth = input_depth
        self.output_shape = (
            filter_count,
            input_height - filter_size + 1,
            input_width - filter_size + 1,
        )
        self.filter_size = filter_size
        self.filter_count = filter_count
        self.filters_shape = (filter_count, input_depth, filter_size, filter_size)
        randn = check.random_normal(rng)
        if check.check_init(init) == "seed":
            filters = randn(*self.filters_shape) - 0.5
            biases = randn(*self.output_shape) - 0.5
        else:
            fan_in, fan_out = (n * filter_size**2 for n in (input_depth, filter_count))
            filters = randn(*self.filters_shape) * np.sqrt(2 / (fan_in + fan_out))
            biases = np.zeros(self.output_shape)
        self.filters: NDArray = filters.astype(self.dtype)
        self.biases: NDArray = biases.astype(self.dtype)
        self._row = np.empty(self.output_shape[2], self.dtype)

    _PARAMETERS = ("filters", "biases")

    def parameters(self):
        """The arrays SGD updates in place: ``(filters, biases)``."""
        return self.filters, self.biases

    def _shapes(self):
        return self.filters_shape, self.output_shape

    def __repr__(self):
        return (
            f"Convolution({self.input_shape}, {self.filter_size}, {self.filter_count}"
            f"{self._options()})"
        )

    def forward_prop(self, input):
        self.input = check.as_array(self, "Input", input, self.input_shape, self.dtype)
        if self.backend == "scipy":
            output = self.biases.copy()
            for i in range(self.filter_count):
                for j in range(self.input_depth):
                    output[i] += signal.correlate2d(self.input[j], self.filters[i, j], "valid")
            return output
        self._check_parameters()
        out = np.empty(self.output_shape, self.dtype)
        k_conv.conv_forward(self.input, self.filters, self.biases, out)
        return out

    def backward_prop(self, d_output, rate):
        self._check_forwarded()
        d_output = check.as_array(self, "d_output", d_output, self.output_shape, self.dtype)
        rate = self._rate(rate)
        if self.backend == "scipy":
            d_filters = np.zeros(self.filters_shape, self.dtype)
            d_biases = d_output
            d_input = np.zeros(self.input_shape, self.dtype)
            for i in range(self.filter_count):
                for j in range(self.input_depth):
                    d_filters[i, j] = signal.correlate2d(self.input[j], d_output[i], "valid")
                    d_input[j] += signal.convolve2d(d_output[i], self.filters[i, j], "full")
            self.filters -= d_filters * rate
            self.biases -= d_biases * rate
            return d_input
        self._check_parameters()
        d_input = np.empty(self.input_shape, self.dtype)
        k_conv.conv_backward_sgd(
            self.input, self.filters, self.biases, d_output, rate, d_input, self._row
        )
        return d_input


class Reshape(Layer):
    """Reshapes ``input_shape`` to ``output_shape`` forward, and back on the way backward."""

    def __init__(self, input_shape, output_shape):
        self.input_shape = check.check_shape("input_shape", input_shape)
        self.output_shape = check.check_shape("output_shape", output_shape)
        sizes = [int(np.prod(s)) for s in (self.input_shape, self.output_shape)]
        if sizes[0] != sizes[1]:
            raise ValueError(
                f"Reshape cannot map input_shape {self.input_shape} ({sizes[0]} values) to "
                f"output_shape {self.output_shape} ({sizes[1]} values)."
            )
        super().__init__()

    def __repr__(self):
        return f"Reshape({self.input_shape}, {self.output_shape})"

    def _reshape(self, what, value, from_shape, to_shape):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"{what} of layer {self!r} must be numeric, but received an array of dtype "
                f"{array.dtype}. Convert it with .astype(np.float64)."
            )
        if array.size != int(np.prod(from_shape)):
            raise ValueError(
                f"{what} of layer {self!r} is incompatible with the layer: expected shape "
                f"{from_shape}, but received {what.lower()} with shape {array.shape}."
            )
        return np.reshape(array, to_shape)

    def forward_prop(self, input):
        return self._reshape("Input", input, self.input_shape, self.output_shape)

    def backward_prop(self, d_output, rate):
        return self._reshape("d_output", d_output, self.output_shape, self.input_shape)
