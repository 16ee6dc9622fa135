"""The seed's layers. Each computing layer runs on one of two paths, chosen by ``backend``:

* ``"scipy"``: the seed's own NumPy/SciPy lines, kept verbatim in :mod:`fastcnn.reference` (the
  oracle of the tests, which call the same functions); it never calls ``fastcnn.kernels``, or the
  oracle would share a kernel's bug.
* ``"numba"`` (default): the same arithmetic in the Numba kernels of ``fastcnn.kernels``.

Every layer describes itself, so the model files (:mod:`fastcnn.io`), the compiled training path
(:mod:`fastcnn._compiled`) and the tests loop over layers and ask them:

* ``get_config()`` / ``from_config(config)``: the constructor arguments, as JSON values;
* ``parameters()`` (the seed's order), ``named_parameters()``, ``parameter_shapes()``;
* ``input_shape`` / ``output_shape`` where the layer knows them;
* ``gradient(d_output)`` -> ``(d_input, grads)`` without an update, and ``apply_gradient(grads,
  rate)``; ``backward_prop(d_output, rate)`` is the two in one, as in the seed.

A new element-wise activation is a function pair in :mod:`fastcnn.functions`, its kernels in
``fastcnn.kernels`` and one line in :data:`ACTIVATIONS`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import _validation as check
from . import reference
from .functions import d_sigmoid, sigmoid
from .kernels import activation as k_activation
from .kernels import conv as k_conv
from .kernels import dense as k_dense
from .kernels import gradient as k_gradient
from .kernels import network as k_network

Shape = tuple[int, ...]
_FLOAT64, _FLOAT32 = check.DTYPES
Grads = tuple[NDArray, ...]


class ActivationKernels(NamedTuple):
    """A registered element-wise activation: the seed-style function pair (the reference path),
    its two kernels ``forward(x, out)`` / ``backward(output, d_output, out)``, and its op code in
    the compiled network loop."""

    function: Any
    derivative: Any
    forward: Any
    backward: Any
    op: int


# The activations a model file can name and the Numba backend runs as kernels; a new one is one line.
ACTIVATIONS: dict[str, ActivationKernels] = {
    "sigmoid": ActivationKernels(
        sigmoid, d_sigmoid, k_activation.sigmoid, k_activation.sigmoid_backward, k_network.SIGMOID
    ),
}


class Layer:
    """Base class: ``forward_prop`` maps an input to an output; ``backward_prop(d_output, rate)``
    takes the loss gradient of the output, updates the layer's parameters in place by SGD with step
    ``rate`` and returns the loss gradient of the input."""

    # Names of the arrays SGD updates, in the order of ``parameters()``.
    _PARAMETERS: ClassVar[tuple[str, ...]] = ()
    # An element-wise layer keeps its input's shape; a network's shape checks look through it.
    _KEEPS_SHAPE: ClassVar[bool] = False
    # The keys of get_config(), in its order (a model file's fields for this layer type).
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ()
    input_shape: Shape | None = None
    output_shape: Shape | None = None

    def __init__(self) -> None:
        self.input: Any = None

    def forward_prop(self, input: Any) -> NDArray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_prop.")

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward_prop.")

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_input, grads)``: the input gradient and the parameter gradients in the order of
        :meth:`parameters`, from the current parameters; changes nothing."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement gradient (needed to compute gradients "
            f"apart from updates, as mini-batch training does)."
        )

    def apply_gradient(self, grads: Grads, rate: float) -> None:
        """``p -= g * rate`` for each parameter ``p`` and its gradient ``g``, as the seed rounds."""
        if tuple(grads) != ():
            raise ValueError(f"layer {self!r} has no parameters, but received {len(grads)} grads.")

    def parameters(self) -> tuple[NDArray, ...]:
        """The arrays SGD updates in place; none for this layer."""
        return ()

    def named_parameters(self) -> dict[str, NDArray]:
        """``{name: array}`` of :meth:`parameters`, in the same order."""
        return dict(zip(self._PARAMETERS, self.parameters(), strict=True))

    def parameter_shapes(self) -> dict[str, Shape]:
        """``{name: shape}`` the parameters must have."""
        return {}

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as JSON values (what a model file stores)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config.")

    @classmethod
    def from_config(cls, config: dict[str, Any], **options: Any) -> Layer:
        """The layer ``get_config`` describes; ``options`` adds keyword arguments (e.g. ``rng``)."""
        return cls(**config, **options)

    def _compiled_spec(self) -> dict[str, Any] | None:
        """What the compiled network loop needs (op code and sizes, by name), or None when this
        layer cannot run there (a subclass, the scipy backend, a custom activation)."""
        return None

    def _check_forwarded(self) -> None:
        if self.input is None:
            raise RuntimeError(f"backward_prop of layer {self!r} was called before forward_prop.")


class _ComputeLayer(Layer):
    """A layer with parameters, a ``backend`` and a ``dtype``; both are checked whenever set."""

    dtype: np.dtype

    def __init__(self, backend: str, dtype: DTypeLike) -> None:
        super().__init__()
        self.backend = backend
        self.dtype = check.check_dtype(dtype)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check.check_backend(value)

    @classmethod
    def shapes_for(cls, config: dict[str, Any]) -> dict[str, Shape]:
        """``{name: shape}`` of the parameters of the layer that ``config`` describes."""
        raise NotImplementedError

    def parameter_shapes(self) -> dict[str, Shape]:
        return dict(self._shapes)

    @property
    def _shapes(self) -> dict[str, Shape]:
        # Sizes never change after __init__; computed once, as the kernels' guard runs per call.
        shapes = self.__dict__.get("_shapes_cache")
        if shapes is None:
            shapes = self.__dict__["_shapes_cache"] = self.shapes_for(self.get_config())
        return shapes

    def parameters(self) -> tuple[NDArray, ...]:
        """The arrays SGD updates in place, in the seed's order."""
        return tuple(getattr(self, name) for name in self._PARAMETERS)

    def _options(self) -> str:
        """The keyword arguments of ``repr`` that differ from their defaults."""
        parts = []
        if self.backend != "numba":
            parts.append(f"backend={self.backend!r}")
        if self.dtype != np.float64:
            parts.append(f"dtype={self.dtype.name!r}")
        return "".join(", " + p for p in parts)

    def _check_parameters(self) -> None:
        """The kernels index the parameters without bounds checks: a user who assigned, say,
        ``layer.weights = something_else`` gets an error here instead of corrupted memory."""
        dtype = self.dtype
        for name, shape in self._shapes.items():
            array = getattr(self, name)
            if (
                type(array) is np.ndarray  # the fast path of check_array, without its message
                and array.shape == shape
                and (array.dtype is dtype or array.dtype == dtype)
                and (flags := array.flags).c_contiguous
                and flags.writeable
            ):
                continue
            check.check_array(
                self,
                name,
                array,
                shape,
                dtype,
                writeable=True,
                hint=f" Assign with layer.{name}[...] = values, or "
                f"np.ascontiguousarray(values, {dtype}).",
            )

    def _check_input(self) -> None:
        """``self.input`` as ``forward_prop`` left it; a reassigned one would be read out of bounds."""
        self._check_forwarded()
        check.check_array(
            self,
            "input",
            self.input,
            tuple(self.input_shape or ()),  # every parametrised layer knows it
            self.dtype,
            hint=" It was changed after forward_prop; call forward_prop again.",
        )

    def _rate(self, rate: Any) -> Any:
        # In the layer's dtype, so a float32 kernel stays in float32 (Numba would promote to float64).
        return self.dtype.type(check.check_rate(rate))

    def apply_gradient(self, grads: Grads, rate: float) -> None:
        rate = self._rate(rate)
        grads = tuple(grads)
        shapes = self.parameter_shapes()
        if len(grads) != len(shapes):
            raise ValueError(
                f"apply_gradient of layer {self!r} expects {len(shapes)} grads "
                f"({', '.join(shapes)}), but received {len(grads)}."
            )
        self._check_parameters()
        for (name, shape), grad in zip(shapes.items(), grads, strict=True):
            grad = check.as_array(self, f"gradient of {name}", grad, shape, self.dtype)
            reference.sgd_update(getattr(self, name), grad, rate)  # p -= g * rate, as the seed

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        """SGD step on the parameters; returns the input gradient (from the parameters before it)."""
        rate = self._rate(rate)
        d_input, grads = self.gradient(d_output)
        self.apply_gradient(grads, rate)
        return d_input


class Linear(_ComputeLayer):
    """Fully connected layer ``Y = W X + B``.

    Parameters
    ----------
    input_size, output_size : int
    backend : {"numba", "scipy"}, keyword-only
    dtype : float64 or float32, keyword-only
    rng : None, int, np.random.RandomState or np.random.Generator, keyword-only
        Source of the initial weights; None draws from NumPy's global state as the seed does.
    init : {"notebook", "xavier"}, keyword-only
        ``"notebook"``: ``weights = randn(out, in)`` then ``biases = randn(out, 1)``, as the
        notebook does. ``"xavier"``: Glorot-normal weights, standard deviation
        ``sqrt(2 / (in + out))``, and zero biases. ``"seed"`` is a deprecated name of
        ``"notebook"``.

    Attributes
    ----------
    weights : ndarray of shape (output_size, input_size)
    biases : ndarray of shape (output_size, 1)
    input : ndarray of shape (input_size, 1), the last input seen by ``forward_prop``
    """

    _PARAMETERS = ("weights", "biases")
    CONFIG_FIELDS = ("input_size", "output_size", "dtype", "backend")

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        backend: str = "numba",
        dtype: DTypeLike = np.float64,
        rng: Any = None,
        init: str = "notebook",
    ) -> None:
        self.input_size = check.check_size("input_size", input_size)
        self.output_size = check.check_size("output_size", output_size)
        super().__init__(backend, dtype)
        randn = check.random_normal(rng)
        if check.check_init(init) == "notebook":
            weights = randn(output_size, input_size)
            biases = randn(output_size, 1)
        else:
            weights = randn(output_size, input_size) * np.sqrt(2 / (input_size + output_size))
            biases = np.zeros((output_size, 1))
        self.weights: NDArray = weights.astype(self.dtype)
        self.biases: NDArray = biases.astype(self.dtype)

    @property
    def input_shape(self) -> Shape:  # type: ignore[override]
        return (self.input_size, 1)

    @property
    def output_shape(self) -> Shape:  # type: ignore[override]
        return (self.output_size, 1)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "output_size": self.output_size,
            "dtype": self.dtype.name,
            "backend": self.backend,
        }

    @classmethod
    def shapes_for(cls, config: dict[str, Any]) -> dict[str, Shape]:
        n, m = config["input_size"], config["output_size"]
        return {"weights": (m, n), "biases": (m, 1)}

    def __repr__(self) -> str:
        return f"Linear({self.input_size}, {self.output_size}{self._options()})"

    def _compiled_spec(self) -> dict[str, Any] | None:
        if type(self) is not Linear or self.backend != "numba":
            return None  # a subclass may change what a method does
        return {"op": k_network.LINEAR, "in_size": self.input_size, "out_size": self.output_size}

    def forward_prop(self, input: Any) -> NDArray:
        """``weights @ input + biases``; input of shape (input_size, 1) -> (output_size, 1)."""
        self.input = check.as_array(self, "Input", input, (self.input_size, 1), self.dtype)
        if self.backend == "scipy":
            return reference.dense_forward(self.weights, self.input, self.biases)
        self._check_parameters()
        out = np.empty((self.output_size, 1), self.dtype)
        k_dense.dense_forward(self.weights, self.input, self.biases, out)
        return out

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(weights.T @ d_output, (d_output @ input.T, d_output))``; changes nothing."""
        self._check_input()
        d_output = check.as_array(self, "d_output", d_output, (self.output_size, 1), self.dtype)
        if self.backend == "scipy":
            d_input, d_weights = reference.dense_gradient(self.weights, self.input, d_output)
            return d_input, (d_weights, d_output.copy())
        self._check_parameters()
        d_weights = np.empty((self.output_size, self.input_size), self.dtype)
        d_input = np.empty((self.input_size, 1), self.dtype)
        k_gradient.dense_backward(self.weights, self.input, d_output, d_weights, d_input)
        return d_input, (d_weights, d_output.copy())

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        """SGD step on weights and biases; returns ``weights.T @ d_output`` (weights before it)."""
        if self.backend == "scipy":
            return super().backward_prop(d_output, rate)
        self._check_input()
        d_output = check.as_array(self, "d_output", d_output, (self.output_size, 1), self.dtype)
        rate = self._rate(rate)
        self._check_parameters()
        d_input = np.empty((self.input_size, 1), self.dtype)
        k_dense.dense_backward_sgd(self.weights, self.biases, self.input, d_output, rate, d_input)
        return d_input


class Activation(Layer):
    """Elementwise activation ``Y = activation(X)``; backward ``d_output * d_activation(X)``.

    Any pair of NumPy functions works. A pair registered in :data:`ACTIVATIONS` (the seed's
    :func:`~fastcnn.sigmoid` / :func:`~fastcnn.d_sigmoid`) runs as a Numba kernel unless
    ``backend="scipy"``, and a model file can store it.
    """

    _KEEPS_SHAPE = True
    CONFIG_FIELDS = ("activation", "backend")

    def __init__(self, activation: Any, d_activation: Any, *, backend: str = "numba") -> None:
        if not callable(activation) or not callable(d_activation):
            raise TypeError(
                f"activation and d_activation must be callables, got {activation!r} and "
                f"{d_activation!r}."
            )
        self.activation = activation
        self.d_activation = d_activation
        self.backend = check.check_backend(backend)
        super().__init__()

    def __repr__(self) -> str:
        names = f"{self.activation.__name__}, {self.d_activation.__name__}"
        return f"Activation({names}{'' if self.backend == 'numba' else ', backend=' + repr(self.backend)})"

    def _registered(self) -> str | None:
        """The name of this layer's function pair in :data:`ACTIVATIONS`, or None."""
        for name, entry in ACTIVATIONS.items():
            if self.activation is entry.function and self.d_activation is entry.derivative:
                return name
        return None

    def _kernels(self) -> ActivationKernels | None:
        # Asked on every forward and backward call: remember the answer for the functions and
        # backend it was found for (all three are public attributes a user may reassign).
        cached = getattr(self, "_kernels_for", None)
        if (
            cached is not None
            and cached[0] is self.activation
            and cached[1] is self.d_activation
            and cached[2] is self.backend
        ):
            return cached[3]
        name = self._registered() if self.backend == "numba" else None
        kernels = None if name is None else ACTIVATIONS[name]
        self._kernels_for = (self.activation, self.d_activation, self.backend, kernels)
        return kernels

    def get_config(self) -> dict[str, Any]:
        name = self._registered()
        if name is None:
            pairs = ", ".join(
                f"Activation({e.function.__name__}, {e.derivative.__name__})"
                for e in ACTIVATIONS.values()
            )
            raise ValueError(
                f"a model file can hold only {pairs}. Model files hold no code, so a "
                f"user-defined activation cannot be stored"
            )
        return {"activation": name, "backend": self.backend}

    @classmethod
    def from_config(cls, config: dict[str, Any], **options: Any) -> Activation:
        entry = ACTIVATIONS[config["activation"]]
        return cls(entry.function, entry.derivative, backend=config["backend"])

    def _compiled_spec(self) -> dict[str, Any] | None:
        kernels = self._kernels() if type(self) is Activation else None
        return None if kernels is None else {"op": kernels.op}

    def forward_prop(self, input: Any) -> NDArray:
        kernels = self._kernels()
        if kernels is None:
            self.input = input
            return self.activation(self.input)
        input = np.asarray(input)
        # The kernel keeps float32 as float32; any other numeric input computes in float64.
        dtype = input.dtype
        if dtype is not _FLOAT64 and dtype is not _FLOAT32:  # identity first: == costs more
            dtype = dtype if dtype in check.DTYPES else _FLOAT64
        self.input = check.as_array(self, "Input", input, input.shape, dtype)
        self._output = np.empty_like(self.input)
        kernels.forward(self.input, self._output)
        return self._output.copy()  # the caller may modify what it gets

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_output * d_activation(input), ())``: no parameters."""
        self._check_forwarded()
        kernels = self._kernels()
        if kernels is None:
            shape = np.shape(self.input)
            if np.shape(d_output) != shape:  # np.multiply would broadcast it into nonsense
                raise ValueError(
                    f"d_output of layer {self!r} is incompatible with the layer: expected shape "
                    f"{shape}, but received d_output with shape {np.shape(d_output)}."
                )
            return reference.activation_backward(d_output, self.d_activation, self.input), ()
        # The kernel reads the forward output; a reassigned input or output must still fit it.
        output = getattr(self, "_output", None)
        if not isinstance(self.input, np.ndarray) or self.input.dtype not in check.DTYPES:
            raise ValueError(
                f"input of layer {self!r} must be the float array forward_prop left, but it is "
                f"{type(self.input).__name__}; call forward_prop again."
            )
        check.check_array(self, "input", self.input, self.input.shape, self.input.dtype)
        check.check_array(self, "_output", output, self.input.shape, self.input.dtype)
        d_output = check.as_array(self, "d_output", d_output, self.input.shape, self.input.dtype)
        d_input = np.empty_like(self.input)
        kernels.backward(output, d_output, d_input)
        return d_input, ()

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        return self.gradient(d_output)[0]


class Convolution(_ComputeLayer):
    """Convolution layer ``Y_i = B_i + sum_j correlate2d(X_j, F_ij, "valid")``.

    Parameters
    ----------
    input_shape : tuple (depth, height, width)
    filter_size : int, at most ``min(height, width)``
    filter_count : int
    backend, dtype, rng, init : keyword-only, as for :class:`Linear`. ``init="notebook"`` draws
        ``randn(*filters_shape) - 0.5`` then ``randn(*output_shape) - 0.5``; ``"xavier"`` draws
        Glorot-normal filters (fan in ``depth * size**2``, fan out ``count * size**2``) and zero
        biases.

    Attributes
    ----------
    filters : ndarray of shape (filter_count, depth, filter_size, filter_size)
    biases : ndarray of shape output_shape = (filter_count, height - size + 1, width - size + 1)
    """

    _PARAMETERS = ("filters", "biases")
    CONFIG_FIELDS = ("input_shape", "filter_size", "filter_count", "dtype", "backend")
    input_shape: Shape
    output_shape: Shape

    def __init__(
        self,
        input_shape: Shape,
        filter_size: int,
        filter_count: int,
        *,
        backend: str = "numba",
        dtype: DTypeLike = np.float64,
        rng: Any = None,
        init: str = "notebook",
    ) -> None:
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
        if check.check_init(init) == "notebook":
            filters = randn(*self.filters_shape) - 0.5
            biases = randn(*self.output_shape) - 0.5
        else:
            fan_in, fan_out = (n * filter_size**2 for n in (input_depth, filter_count))
            filters = randn(*self.filters_shape) * np.sqrt(2 / (fan_in + fan_out))
            biases = np.zeros(self.output_shape)
        self.filters: NDArray = filters.astype(self.dtype)
        self.biases: NDArray = biases.astype(self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "filter_size": self.filter_size,
            "filter_count": self.filter_count,
            "dtype": self.dtype.name,
            "backend": self.backend,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], **options: Any) -> Convolution:
        return cls(**{**config, "input_shape": tuple(config["input_shape"])}, **options)

    @classmethod
    def shapes_for(cls, config: dict[str, Any]) -> dict[str, Shape]:
        depth, height, width = config["input_shape"]
        size, count = config["filter_size"], config["filter_count"]
        return {
            "filters": (count, depth, size, size),
            "biases": (count, height - size + 1, width - size + 1),
        }

    def __repr__(self) -> str:
        return (
            f"Convolution({self.input_shape}, {self.filter_size}, {self.filter_count}"
            f"{self._options()})"
        )

    def _compiled_spec(self) -> dict[str, Any] | None:
        if type(self) is not Convolution or self.backend != "numba":
            return None
        depth, height, width = self.input_shape
        return {
            "op": k_network.CONV,
            "in_size": depth * height * width,
            "out_size": int(np.prod(self.output_shape)),
            "depth": depth,
            "height": height,
            "width": width,
            "filter_size": self.filter_size,
            "filter_count": self.filter_count,
        }

    def forward_prop(self, input: Any) -> NDArray:
        self.input = check.as_array(self, "Input", input, self.input_shape, self.dtype)
        if self.backend == "scipy":
            return reference.conv_forward(self.input, self.filters, self.biases)
        self._check_parameters()
        out = np.empty(self.output_shape, self.dtype)
        k_conv.conv_forward(self.input, self.filters, self.biases, out)
        return out

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_input, (d_filters, d_output))`` with ``d_filters[i, j] = correlate2d(input[j],
        d_output[i], "valid")`` and ``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j],
        "full")``; changes nothing."""
        self._check_input()
        d_output = check.as_array(self, "d_output", d_output, self.output_shape, self.dtype)
        if self.backend == "scipy":
            d_input, d_filters = reference.conv_gradient(self.input, self.filters, d_output)
            return d_input, (d_filters, d_output.copy())
        self._check_parameters()
        d_filters = np.empty(self.filters_shape, self.dtype)
        d_input = np.empty(self.input_shape, self.dtype)
        k_gradient.conv_backward(self.input, self.filters, d_output, d_filters, d_input)
        return d_input, (d_filters, d_output.copy())

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        if self.backend == "scipy":
            return super().backward_prop(d_output, rate)
        self._check_input()
        d_output = check.as_array(self, "d_output", d_output, self.output_shape, self.dtype)
        rate = self._rate(rate)
        self._check_parameters()
        d_input = np.empty(self.input_shape, self.dtype)
        k_conv.conv_backward_sgd(self.input, self.filters, self.biases, d_output, rate, d_input)
        return d_input


class Reshape(Layer):
    """Reshapes ``input_shape`` to ``output_shape`` forward, and back on the way backward."""

    CONFIG_FIELDS = ("input_shape", "output_shape")
    input_shape: Shape
    output_shape: Shape

    def __init__(self, input_shape: Shape, output_shape: Shape) -> None:
        self.input_shape = check.check_shape("input_shape", input_shape)
        self.output_shape = check.check_shape("output_shape", output_shape)
        sizes = [int(np.prod(s)) for s in (self.input_shape, self.output_shape)]
        if sizes[0] != sizes[1]:
            raise ValueError(
                f"Reshape cannot map input_shape {self.input_shape} ({sizes[0]} values) to "
                f"output_shape {self.output_shape} ({sizes[1]} values)."
            )
        super().__init__()

    def __repr__(self) -> str:
        return f"Reshape({self.input_shape}, {self.output_shape})"

    def get_config(self) -> dict[str, Any]:
        return {"input_shape": list(self.input_shape), "output_shape": list(self.output_shape)}

    def _compiled_spec(self) -> dict[str, Any] | None:
        if type(self) is not Reshape:
            return None
        size = int(np.prod(self.input_shape))
        return {"op": None, "in_size": size, "out_size": size}  # flat buffers: nothing to do

    def _reshape(self, what: str, value: Any, from_shape: Shape, to_shape: Shape) -> NDArray:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"{what} of layer {self!r} must be numeric, but received an array of dtype "
                f"{array.dtype}. Convert it with .astype(np.float64)."
            )
        if array.size != math.prod(from_shape):  # np.prod costs microseconds on a tuple
            raise ValueError(
                f"{what} of layer {self!r} is incompatible with the layer: expected shape "
                f"{from_shape}, but received {what.lower()} with shape {array.shape}."
            )
        return array.reshape(to_shape)

    def forward_prop(self, input: Any) -> NDArray:
        return self._reshape("Input", input, self.input_shape, self.output_shape)

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_output reshaped to input_shape, ())``."""
        return self._reshape("d_output", d_output, self.output_shape, self.input_shape), ()

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        return self.gradient(d_output)[0]


# The layer types a model file may name; io.py builds and describes layers through this table.
LAYERS: dict[str, type[Layer]] = {
    "Convolution": Convolution,
    "Linear": Linear,
    "Activation": Activation,
    "Reshape": Reshape,
}
