"""Reshape: the same values in another shape; nothing to do on the compiled loops' flat buffers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import _validation as check
from .. import registry
from .base import Compiled, Grads, Layer, Shape, shape_fault


@registry.register_layer
class Reshape(Layer):
    """Reshapes ``input_shape`` to ``output_shape`` forward, and back on the way backward."""

    CONFIG_FIELDS = ("input_shape", "output_shape")
    _INPUT_BY_SIZE = True
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

    @classmethod
    def config_fault(cls, config: dict[str, Any]) -> str | None:
        fault = shape_fault(config, "input_shape") or shape_fault(config, "output_shape")
        if fault:
            return fault
        sizes = [math.prod(config[name]) for name in ("input_shape", "output_shape")]
        if sizes[0] != sizes[1]:
            return (
                f"input_shape {config['input_shape']} and output_shape {config['output_shape']} "
                f"hold different numbers of values"
            )
        return None

    def _compiled(self) -> Compiled | None:
        size = math.prod(self.input_shape)
        return Compiled(None, size, size)  # flat buffers: nothing to do

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
