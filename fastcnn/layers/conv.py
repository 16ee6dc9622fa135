"""The convolution layer, ``Y_i = B_i + sum_j correlate2d(X_j, F_ij, "valid")``: its class, its
reference maths (the seed's ``signal.correlate2d``/``convolve2d`` loops, in
:mod:`fastcnn.reference`), and its kind on the compiled loops, whose hooks are in
``kernels/conv.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .. import _validation as check
from .. import reference, registry
from ..kernels import conv as k_conv
from .base import (
    Compiled,
    ComputeLayer,
    Grads,
    Shape,
    options_fault,
    positive_int_fault,
    shape_fault,
)


def wide_size(height: int, width: int, filter_size: int) -> int:
    """Values of the scratch a filter gradient widens its output gradient into (see
    ``kernels.conv._widen``), for an input (height, width): the output gradient's rows, each as
    wide as an input row, the last one as wide as an output row."""
    oh, ow = height - filter_size + 1, width - filter_size + 1
    return (oh - 1) * width + ow


@registry.register_layer
class Convolution(ComputeLayer):
    """Convolution layer ``Y_i = B_i + sum_j correlate2d(X_j, F_ij, "valid")``.

    Parameters
    ----------
    input_shape : tuple (depth, height, width)
    filter_size : int, at most ``min(height, width)``
    filter_count : int
    backend, dtype, rng, init : keyword-only, as for :class:`Linear`. ``init="notebook"`` draws
        ``randn(*filters_shape) - 0.5`` then ``randn(*output_shape) - 0.5``; ``"xavier"`` draws
        Glorot-normal filters (fan in ``depth * size**2``, fan out ``count * size**2``) and zero
        biases; ``"he"`` Kaiming-normal filters (standard deviation ``sqrt(2 / fan_in)``, for
        ReLU) and zero biases.

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
        init = check.check_init(init)
        if init == "notebook":
            filters = randn(*self.filters_shape) - 0.5
            biases = randn(*self.output_shape) - 0.5
        else:
            fan_in, fan_out = (n * filter_size**2 for n in (input_depth, filter_count))
            fans = fan_in + fan_out if init == "xavier" else fan_in
            filters = randn(*self.filters_shape) * np.sqrt(2 / fans)
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

    @classmethod
    def config_fault(cls, config: dict[str, Any]) -> str | None:
        fault = (
            shape_fault(config, "input_shape", 3)
            or positive_int_fault(config, "filter_size", "filter_count")
            or options_fault(config)
        )
        if fault:
            return fault
        _, height, width = config["input_shape"]
        if config["filter_size"] > min(height, width):
            return f"filter_size {config['filter_size']} is larger than the input image {height}x{width}"
        return None

    @classmethod
    def signature(cls, config: dict[str, Any]) -> str:
        shape = tuple(config["input_shape"])
        return f"Convolution({shape}, {config['filter_size']}, {config['filter_count']})"

    def _compiled(self) -> Compiled | None:
        if self.backend != "numba":
            return None
        depth, height, width = self.input_shape
        size = self.filter_size
        dims = [0] * 5
        dims[k_conv.DEPTH], dims[k_conv.HEIGHT], dims[k_conv.WIDTH] = depth, height, width
        dims[k_conv.SIZE], dims[k_conv.COUNT] = size, self.filter_count
        return Compiled(
            "conv",
            depth * height * width,
            int(np.prod(self.output_shape)),
            dims=tuple(dims),
            params=self._PARAMETERS,
            scratch=wide_size(height, width, size),
        )

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
        d_input = np.empty(self.input_shape, self.dtype)
        k_conv.conv_input_gradient(d_output, self.filters, d_input)
        d_filters = np.zeros(self.filters_shape, self.dtype)
        d_biases = np.zeros(self.output_shape, self.dtype)
        wide = np.zeros(
            wide_size(self.input_shape[1], self.input_shape[2], self.filter_size), self.dtype
        )
        k_conv.conv_gradient_add(self.input, d_output, d_filters, d_biases, wide)
        return d_input, (d_filters, d_biases)

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        """SGD step on filters and biases; returns the input gradient (from the filters before it)."""
        if self.backend == "scipy":
            return super().backward_prop(d_output, rate)
        rate = self._rate(rate)
        d_input, grads = self.gradient(d_output)
        self._step(grads, rate)
        return d_input


registry.register_kind(
    "conv",
    forward=k_conv.forward,
    backward=k_conv.backward,
    backward_first=k_conv.backward_first,
    forward_batch=k_conv.forward_batch,
    backward_batch=k_conv.backward_batch,
    backward_first_batch=k_conv.backward_first_batch,
)
