"""Softmax over a column vector, ``Y = exp(X - max X) / sum(exp(X - max X))``: the layer, its
reference maths (:mod:`fastcnn.reference`) and its kind on the compiled loops, whose hooks are in
``kernels/softmax.py``.

Followed by :func:`~fastcnn.cross_entropy`, the pair is the log-sum-exp loss of the logits, whose
gradient is ``softmax - actual``: the compiled loops run the two as one fused kernel (the cross-
entropy loss is registered with a fused kernel for this kind), and the per-layer path gets the same
numbers from the facts its output and the loss's gradient carry (see ``softmax_layer_forward`` and
``softmax_layer_backward`` in :mod:`fastcnn.reference`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import _validation as check
from .. import reference, registry
from ..functions import CrossEntropyGradient, SoftmaxOutput
from ..kernels import softmax as k_softmax
from .base import Compiled, Grads, Layer, options_fault

_FLOAT64, _FLOAT32 = check.DTYPES


@registry.register_layer
class Softmax(Layer):
    """Softmax of a column vector (n, 1) (say, the logits of ten classes).

    Numerically safe: the maximum is subtracted before ``exp``, so no exponent is positive and
    logits of ±1000 give exact 0s and 1s, never NaN. The output is a
    :class:`~fastcnn.functions.SoftmaxOutput`: the probabilities, carrying their log-softmax
    computed from the logits, which :func:`~fastcnn.cross_entropy` uses instead of
    ``np.log(probabilities)`` (``-inf`` once a probability underflows). Its backward pass turns the
    :class:`~fastcnn.functions.CrossEntropyGradient` of :func:`~fastcnn.d_cross_entropy` into
    ``probabilities - actual`` exactly (no ``0 * inf``); any other gradient goes through the
    Jacobian, ``y * (d_output - sum(d_output * y))``.

    Parameters
    ----------
    backend : {"numba", "scipy"}, keyword-only
    """

    _KEEPS_SHAPE = True
    CONFIG_FIELDS = ("backend",)

    def __init__(self, *, backend: str = "numba") -> None:
        super().__init__()
        self.backend = check.check_backend(backend)

    def __repr__(self) -> str:
        return "Softmax()" if self.backend == "numba" else f"Softmax(backend={self.backend!r})"

    def get_config(self) -> dict[str, Any]:
        return {"backend": self.backend}

    @classmethod
    def config_fault(cls, config: dict[str, Any]) -> str | None:
        return options_fault(config)

    def input_fault(self, shape: tuple[int, ...]) -> str | None:
        if len(shape) != 2 or shape[1] != 1:
            return f"{self!r} takes a column vector (n, 1)"
        return None

    def _compiled(self) -> Compiled | None:
        return None if self.backend != "numba" else Compiled("softmax", 0, 0)

    def forward_prop(self, input: Any) -> NDArray:
        array = np.asarray(input)
        fault = self.input_fault(array.shape)
        if fault:
            raise ValueError(
                f"Input of layer {self!r} is incompatible with the layer: it takes a column "
                f"vector (n, 1), but received input with shape {array.shape}."
            )
        # The kernel keeps float32 as float32; any other numeric input computes in float64.
        dtype = array.dtype if array.dtype is _FLOAT32 or array.dtype == _FLOAT32 else _FLOAT64
        self.input = check.as_array(self, "Input", array, array.shape, dtype)
        if self.backend == "scipy":
            output = reference.softmax_layer_forward(self.input)
        else:
            probabilities = np.empty_like(self.input)
            logs = np.empty_like(self.input)
            k_softmax.log_softmax(
                self.input.reshape(-1), probabilities.reshape(-1), logs.reshape(-1)
            )
            output = SoftmaxOutput(probabilities, logs)
        # A copy for the backward pass: the caller may modify what it gets.
        self._output = np.array(output)
        return output

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_input, ())``: ``output - actual`` for the cross-entropy gradient of this layer's own
        output, the Jacobian product of any other; no parameters."""
        self._check_forwarded()
        output = self._output
        check.check_array(
            self,
            "input",
            self.input,
            output.shape,
            output.dtype,
            hint=" It was changed after forward_prop; call forward_prop again.",
        )
        if self.backend == "scipy":
            return reference.softmax_layer_backward(output, d_output), ()
        if isinstance(d_output, CrossEntropyGradient):
            probabilities = np.asarray(d_output.probabilities)
            if probabilities.shape == output.shape and np.array_equal(probabilities, output):
                actual = np.asarray(d_output.actual, dtype=output.dtype)
                return output - actual, ()
        d_output = check.as_array(self, "d_output", d_output, output.shape, output.dtype)
        d_input = np.empty_like(output)
        k_softmax.softmax_backward(output.reshape(-1), d_output.reshape(-1), d_input.reshape(-1))
        return d_input, ()

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        return self.gradient(d_output)[0]


registry.register_kind(
    "softmax",
    forward=k_softmax.forward,
    backward=k_softmax.backward,
    forward_batch=k_softmax.forward_batch,
    backward_batch=k_softmax.backward_batch,
)
