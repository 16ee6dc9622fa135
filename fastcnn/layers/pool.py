"""Max- and average-pooling over (depth, height, width) inputs: the layers, their reference maths
(:mod:`fastcnn.reference`) and their kinds on the compiled loops, whose hooks are in
``kernels/pool.py``. No parameters; windows ``size`` x ``size`` every ``stride`` (``size`` by
default), only whole windows (an odd remainder is dropped, as PyTorch's pooling floors it); a
max-pool's ties go to the first maximum in row-major order, as PyTorch's do.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from .. import _validation as check
from .. import reference, registry
from ..kernels import pool as k_pool
from .base import Compiled, Grads, Layer, Shape, options_fault, positive_int_fault, shape_fault

_FLOAT32 = np.dtype(np.float32)


class _Pool(Layer):
    """What both pooling layers share: shapes, config, checks and the two paths."""

    CONFIG_FIELDS = ("input_shape", "size", "stride", "backend")
    _KIND: ClassVar[str]
    _FORWARD: ClassVar[tuple[Any, Any]]  # (reference, kernel)
    _BACKWARD: ClassVar[tuple[Any, Any]]
    input_shape: Shape
    output_shape: Shape

    def __init__(
        self,
        input_shape: Shape,
        size: int = 2,
        stride: int | None = None,
        *,
        backend: str = "numba",
    ) -> None:
        depth, height, width = check.check_shape("input_shape", input_shape, 3)
        size = check.check_size("size", size)
        stride = size if stride is None else check.check_size("stride", stride)
        if size > min(height, width):
            raise ValueError(
                f"{type(self).__name__}: size={size} is larger than the input image "
                f"{height}x{width} of input_shape {(depth, height, width)}; it must be at most "
                f"{min(height, width)}."
            )
        super().__init__()
        self.input_shape = (depth, height, width)
        self.size, self.stride = size, stride
        self.output_shape = reference.pool_output_shape(self.input_shape, size, stride)
        self.backend = check.check_backend(backend)

    def __repr__(self) -> str:
        options = "" if self.stride == self.size else f", stride={self.stride}"
        if self.backend != "numba":
            options += f", backend={self.backend!r}"
        return f"{type(self).__name__}({self.input_shape}, {self.size}{options})"

    def get_config(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "size": self.size,
            "stride": self.stride,
            "backend": self.backend,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], **options: Any) -> _Pool:
        return cls(**{**config, "input_shape": tuple(config["input_shape"])}, **options)

    @classmethod
    def config_fault(cls, config: dict[str, Any]) -> str | None:
        fault = (
            shape_fault(config, "input_shape", 3)
            or positive_int_fault(config, "size", "stride")
            or options_fault(config)
        )
        if fault:
            return fault
        _, height, width = config["input_shape"]
        if config["size"] > min(height, width):
            return f"size {config['size']} is larger than the input image {height}x{width}"
        return None

    @classmethod
    def signature(cls, config: dict[str, Any]) -> str:
        return f"{cls.__name__}({tuple(config['input_shape'])}, {config['size']}, stride={config['stride']})"

    def _compiled(self) -> Compiled | None:
        if self.backend != "numba":
            return None
        dims = [0] * 5
        dims[k_pool.DEPTH], dims[k_pool.HEIGHT], dims[k_pool.WIDTH] = self.input_shape
        dims[k_pool.SIZE], dims[k_pool.STRIDE] = self.size, self.stride
        sizes = (int(np.prod(self.input_shape)), int(np.prod(self.output_shape)))
        return Compiled(self._KIND, *sizes, dims=tuple(dims))

    def forward_prop(self, input: Any) -> NDArray:
        array = np.asarray(input)
        dtype = _FLOAT32 if array.dtype == _FLOAT32 else np.dtype(np.float64)
        self.input = check.as_array(self, "Input", array, self.input_shape, dtype)
        if self.backend == "scipy":
            return self._FORWARD[0](self.input, self.size, self.stride)
        out = np.empty(self.output_shape, dtype)
        self._FORWARD[1](self.input, self.size, self.stride, out)
        return out

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_input, ())``: no parameters."""
        self._check_forwarded()
        dtype = self.input.dtype
        check.check_array(
            self,
            "input",
            self.input,
            self.input_shape,
            dtype,
            hint=" It was changed after forward_prop; call forward_prop again.",
        )
        d_output = check.as_array(self, "d_output", d_output, self.output_shape, dtype)
        if self.backend == "scipy":
            return self._BACKWARD[0](self.input, d_output, self.size, self.stride), ()
        d_input = np.empty(self.input_shape, dtype)
        self._BACKWARD[1](self.input, d_output, self.size, self.stride, d_input)
        return d_input, ()

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        return self.gradient(d_output)[0]


@registry.register_layer
class MaxPool(_Pool):
    """``Y[c, i, j] = max`` of the input's window ``(i * stride, j * stride)``, ``size`` wide;
    backward routes each output's gradient to its window's first maximum.

    Parameters
    ----------
    input_shape : tuple (depth, height, width)
    size : int, default 2, at most ``min(height, width)``
    stride : int, default ``size``
    backend : {"numba", "scipy"}, keyword-only
    """

    _KIND = "maxpool"
    _FORWARD = (reference.maxpool_forward, k_pool.maxpool_forward)
    _BACKWARD = (reference.maxpool_backward, k_pool.maxpool_backward)


@registry.register_layer
class AvgPool(_Pool):
    """``Y[c, i, j] =`` the mean of the input's window; backward spreads each output's gradient
    evenly over its window. Parameters as :class:`MaxPool`."""

    _KIND = "avgpool"
    _FORWARD = (reference.avgpool_forward, k_pool.avgpool_forward)
    _BACKWARD = (reference.avgpool_backward, k_pool.avgpool_backward)


registry.register_kind(
    "maxpool",
    forward=k_pool.max_forward,
    backward=k_pool.max_backward,
    forward_batch=k_pool.max_forward_batch,
    backward_batch=k_pool.max_backward_batch,
)
registry.register_kind(
    "avgpool",
    forward=k_pool.avg_forward,
    backward=k_pool.avg_backward,
    forward_batch=k_pool.avg_forward_batch,
    backward_batch=k_pool.avg_backward_batch,
)
