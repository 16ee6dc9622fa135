"""Element-wise activations, ``Y = f(X)``: the layer, and the registered function pairs that run
as kernels (:data:`ACTIVATIONS`). A new one is its function pair, its two kernels
(``forward(x, out)``, ``backward(x, y, d_output, out)``) and one :func:`register_activation` call;
the compiled loops' branches for it are generated (``fastcnn._codegen``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import _validation as check
from .. import reference, registry
from ..functions import (
    d_leaky_relu,
    d_relu,
    d_sigmoid,
    d_tanh,
    leaky_relu,
    relu,
    sigmoid,
    tanh,
)
from ..kernels import activation as k_activation
from ..kernels import pointwise as k_pointwise
from ..registry import ACTIVATIONS, register_activation
from .base import Compiled, Grads, Layer, options_fault

_FLOAT64, _FLOAT32 = check.DTYPES


@registry.register_layer
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
        entry = registry.activation_of(self.activation, self.d_activation)
        return None if entry is None else entry.name

    def _kernels(self) -> registry.Activation | None:
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

    @classmethod
    def config_fault(cls, config: dict[str, Any]) -> str | None:
        if config["activation"] not in ACTIVATIONS:
            names = ", ".join(f'"{n}"' for n in ACTIVATIONS)
            return (
                f"activation must be {names} (the only one{'s' if len(ACTIVATIONS) > 1 else ''} "
                f"a model file can name), found {config['activation']!r}"
            )
        return options_fault(config)

    @classmethod
    def signature(cls, config: dict[str, Any]) -> str:
        entry = ACTIVATIONS[config["activation"]]
        return f"Activation({entry.function.__name__}, {entry.derivative.__name__})"

    def _compiled(self) -> Compiled | None:
        kernels = self._kernels()
        return None if kernels is None else Compiled(kernels.name, 0, 0)

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
        kernels.backward(self.input, output, d_output, d_input)
        return d_input, ()

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        return self.gradient(d_output)[0]


register_activation(
    "sigmoid", sigmoid, d_sigmoid, k_activation.sigmoid, k_activation.sigmoid_backward
)
register_activation("relu", relu, d_relu, k_pointwise.relu, k_pointwise.relu_backward)
register_activation("tanh", tanh, d_tanh, k_pointwise.tanh, k_pointwise.tanh_backward)
register_activation(
    "leaky_relu",
    leaky_relu,
    d_leaky_relu,
    k_pointwise.leaky_relu,
    k_pointwise.leaky_relu_backward,
)
