"""The convolution layer, ``Y_i = B_i + sum_j correlate2d(X_j, F_ij, "valid")``: its class, its
reference maths (the seed's ``signal.correlate2d``/``convolve2d`` loops, in
:mod:`fastcnn.reference`), and its two kinds on the compiled loops: the notebook's ``"conv"``
(hooks in ``kernels/conv.py``) and ``"conv_padded"`` for zero padding, per-filter biases and 5 x 5
filters (hooks in ``kernels/conv_padded.py``; ``"conv_padded5"`` for 5 x 5 filters padded by at
most 4), so the notebook's network compiles exactly what it did before either existed.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .. import _validation as check
from .. import reference, registry
from ..kernels import conv as k_conv
from ..kernels import conv_gemm as k_gemm
from ..kernels import conv_padded as k_padded
from ..kernels import correlate5 as k_correlate5
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


BIASES = ("pixel", "filter")


def resolve_padding(padding: Any, filter_size: int) -> int | None:
    """The int a ``padding`` argument stands for (``"same"``: ``(k - 1) // 2`` for an odd filter
    size ``k``), or None when it stands for none (negative, not an integer, ``"same"`` on an even
    size)."""
    if isinstance(padding, str) and padding == "same":
        return (filter_size - 1) // 2 if filter_size % 2 == 1 else None
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        return None
    return int(padding)


def _options_fault(
    shape: Shape, size: int, padding: Any, bias: Any, file: bool = False
) -> str | None:
    """What is wrong with ``padding`` and ``bias`` for a ``size`` filter over ``shape``, as a phrase
    (a model file's wording with ``file``), or None."""
    resolved = resolve_padding(padding, size)
    if resolved is None:
        if isinstance(padding, str) and padding == "same":
            return (
                f"padding='same' needs an odd filter_size, got filter_size={size} for input_shape "
                f"{tuple(shape)}; give the padding as an int instead"
            )
        return f"padding must be a non-negative integer or 'same', got {padding!r}"
    if not isinstance(bias, str) or bias not in BIASES:
        return f"bias must be one of {BIASES}, got {bias!r}"
    _, height, width = shape
    limit = min(height, width) + 2 * resolved
    if size <= limit:
        return None
    image = f"{height}x{width}"
    if resolved:
        image += f" padded by {resolved} ({height + 2 * resolved}x{width + 2 * resolved})"
    if file:
        return f"filter_size {size} is larger than the input image {image}"
    return f"filter_size={size} is larger than the input image {image}; it must be at most {limit}"


@registry.register_layer
class Convolution(ComputeLayer):
    """Convolution layer ``Y_i = B_i + sum_j correlate2d(pad(X)_j, F_ij, "valid")``.

    Parameters
    ----------
    input_shape : tuple (depth, height, width)
    filter_size : int, at most ``min(height, width) + 2 * padding``
    filter_count : int
    padding : int >= 0 or ``"same"``, keyword-only, default 0
        Zeros on every side of every input channel (PyTorch's ``conv2d(padding=p)``); ``"same"``
        is ``(filter_size - 1) // 2`` for an odd filter size (the output keeps the input's height
        and width). Stored as the int in ``layer.padding``.
    bias : {"pixel", "filter"}, keyword-only, default "pixel"
        ``"pixel"``, the notebook's: one bias per output pixel (biases of ``output_shape``);
        ``"filter"``: one per filter, shape (filter_count, 1, 1), as PyTorch's and Keras's.
    backend, dtype, rng, init : keyword-only, as for :class:`Linear`. ``init="notebook"`` draws
        ``randn(*filters_shape) - 0.5`` then ``randn(*biases.shape) - 0.5``; ``"xavier"`` draws
        Glorot-normal filters (fan in ``depth * size**2``, fan out ``count * size**2``) and zero
        biases; ``"he"`` Kaiming-normal filters (standard deviation ``sqrt(2 / fan_in)``, for
        ReLU) and zero biases.

    Attributes
    ----------
    filters : ndarray of shape (filter_count, depth, filter_size, filter_size)
    biases : ndarray of shape output_shape = (filter_count, height + 2p - size + 1, width + 2p -
        size + 1), or (filter_count, 1, 1) with ``bias="filter"``
    """

    _PARAMETERS = ("filters", "biases")
    CONFIG_FIELDS = (
        "input_shape",
        "filter_size",
        "filter_count",
        "padding",
        "bias",
        "dtype",
        "backend",
    )
    # A model file written before padding and per-filter biases existed has neither field.
    CONFIG_DEFAULTS: ClassVar[dict[str, Any]] = {"padding": 0, "bias": "pixel"}
    input_shape: Shape
    output_shape: Shape

    def __init__(
        self,
        input_shape: Shape,
        filter_size: int,
        filter_count: int,
        *,
        padding: int | str = 0,
        bias: str = "pixel",
        backend: str = "numba",
        dtype: DTypeLike = np.float64,
        rng: Any = None,
        init: str = "notebook",
    ) -> None:
        input_depth, input_height, input_width = check.check_shape("input_shape", input_shape, 3)
        filter_size = check.check_size("filter_size", filter_size)
        filter_count = check.check_size("filter_count", filter_count)
        shape = (input_depth, input_height, input_width)
        fault = _options_fault(shape, filter_size, padding, bias)
        if fault:
            options = "" if isinstance(padding, int) and padding == 0 else f", padding={padding!r}"
            options += "" if isinstance(bias, str) and bias == "pixel" else f", bias={bias!r}"
            raise ValueError(
                f"Convolution({shape}, {filter_size}, {filter_count}{options}): {fault}."
            )
        padding = resolve_padding(padding, filter_size) or 0  # not None: _options_fault said so
        super().__init__(backend, dtype)
        self.input_shape = shape
        self.input_depth = input_depth
        self.padding: int = padding
        self.bias: str = str(bias)
        self.output_shape = (
            filter_count,
            input_height + 2 * padding - filter_size + 1,
            input_width + 2 * padding - filter_size + 1,
        )
        self.filter_size = filter_size
        self.filter_count = filter_count
        self.filters_shape = (filter_count, input_depth, filter_size, filter_size)
        biases_shape = self.output_shape if bias == "pixel" else (filter_count, 1, 1)
        randn = check.random_normal(rng)
        init = check.check_init(init)
        if init == "notebook":
            filters = randn(*self.filters_shape) - 0.5
            biases = randn(*biases_shape) - 0.5
        else:
            fan_in, fan_out = (n * filter_size**2 for n in (input_depth, filter_count))
            fans = fan_in + fan_out if init == "xavier" else fan_in
            filters = randn(*self.filters_shape) * np.sqrt(2 / fans)
            biases = np.zeros(biases_shape)
        self.filters: NDArray = filters.astype(self.dtype)
        self.biases: NDArray = biases.astype(self.dtype)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments; ``padding`` and ``bias`` only where they are not 0 and
        "pixel" (see :attr:`Layer.CONFIG_DEFAULTS`), so the notebook's layer reads as before."""
        return self._without_defaults(
            {
                "input_shape": list(self.input_shape),
                "filter_size": self.filter_size,
                "filter_count": self.filter_count,
                "padding": self.padding,
                "bias": self.bias,
                "dtype": self.dtype.name,
                "backend": self.backend,
            }
        )

    @classmethod
    def from_config(cls, config: dict[str, Any], **options: Any) -> Convolution:
        return cls(**{**config, "input_shape": tuple(config["input_shape"])}, **options)

    @classmethod
    def shapes_for(cls, config: dict[str, Any]) -> dict[str, Shape]:
        depth, height, width = config["input_shape"]
        size, count = config["filter_size"], config["filter_count"]
        padding = resolve_padding(config.get("padding", 0), size) or 0
        output = (count, height + 2 * padding - size + 1, width + 2 * padding - size + 1)
        per_filter = config.get("bias", "pixel") == "filter"
        return {
            "filters": (count, depth, size, size),
            "biases": (count, 1, 1) if per_filter else output,
        }

    @staticmethod
    def _new_options(padding: int, bias: str) -> str:
        """The keyword arguments padding and bias, where they differ from their defaults."""
        parts = [f", padding={padding}"] if padding else []
        return "".join(parts + ([f", bias={bias!r}"] if bias != "pixel" else []))

    def __repr__(self) -> str:
        return (
            f"Convolution({self.input_shape}, {self.filter_size}, {self.filter_count}"
            f"{self._new_options(self.padding, self.bias)}{self._options()})"
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
        return _options_fault(
            tuple(config["input_shape"]),
            config["filter_size"],
            config.get("padding", 0),
            config.get("bias", "pixel"),
            file=True,
        )

    @classmethod
    def signature(cls, config: dict[str, Any]) -> str:
        shape = tuple(config["input_shape"])
        size = config["filter_size"]
        padding = resolve_padding(config.get("padding", 0), size) or 0
        options = cls._new_options(padding, config.get("bias", "pixel"))
        return f"Convolution({shape}, {size}, {config['filter_count']}{options})"

    @property
    def _plain(self) -> bool:
        """The notebook's convolution: no padding, per-pixel biases (its own kind and kernels)."""
        return self.padding == 0 and self.bias == "pixel"

    @property
    def padded_shape(self) -> Shape:
        """The input's shape after padding, (depth, height + 2p, width + 2p)."""
        depth, height, width = self.input_shape
        return depth, height + 2 * self.padding, width + 2 * self.padding

    def _compiled(self) -> Compiled | None:
        if self.backend != "numba":
            return None
        depth, height, width = self.input_shape
        size = self.filter_size
        if not self._plain or size == 5:
            return self._compiled_padded()
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

    def _scratch_sizes(self) -> tuple[int, int, int, int, int]:
        """``kernels.conv_padded.scratch_sizes`` of this layer (its plain Python, not compiled)."""
        sizes = getattr(k_padded.scratch_sizes, "py_func", k_padded.scratch_sizes)
        return sizes(*self.input_shape, self.filter_size, self.filter_count, self.padding)

    def _compiled_padded(self) -> Compiled:
        """The "conv_padded" (or "conv_padded5") record: the scratch regions of ``scratch_sizes``
        and the per-sample loop's padded input (written in the forward pass, read by the filter
        gradient)."""
        depth, height, width = self.input_shape
        dims = [0] * 7
        dims[k_padded.DEPTH], dims[k_padded.HEIGHT], dims[k_padded.WIDTH] = depth, height, width
        dims[k_padded.SIZE], dims[k_padded.COUNT] = self.filter_size, self.filter_count
        dims[k_padded.PADDING] = self.padding
        dims[k_padded.PER_FILTER] = int(self.bias == "filter")
        *fixed, per_sample = self._scratch_sizes()
        fast5 = getattr(k_padded._fast5, "py_func", k_padded._fast5)
        return Compiled(
            # 5 x 5 filters have hooks of their own, so that a network of only those (LeNet)
            # compiles no other size's branches (seconds of a cold start).
            "conv_padded5" if fast5(self.filter_size, self.padding) else "conv_padded",
            depth * height * width,
            int(np.prod(self.output_shape)),
            dims=tuple(dims),
            params=self._PARAMETERS,
            # The batch hooks (kernels/conv_gemm.py) use the same scratch from its start (a batch
            # program runs only them): see _gemm_scratch. Only the per-sample loop reads the
            # padded input after the fixed regions, for its one sample.
            scratch=max(sum(fixed) + per_sample, self._gemm_scratch()),
        )

    def _gemm_scratch(self) -> int:
        """Values of ``kernels.conv_gemm._buffers``: the padded input and its gradient, the wide
        columns and theirs, the widened output gradient, a filter gradient transposed."""
        depth, hp, wp = self.padded_shape
        count, oh, ow = self.output_shape
        length = (oh - 1) * wp + ow
        k = depth * self.filter_size**2
        return 2 * depth * hp * wp + (2 * k + count) * length + k * count

    def _padded_input(self) -> NDArray:
        """``self.input`` padded by ``self.padding`` (the input itself without padding)."""
        if not self.padding:
            return self.input
        xp = np.empty(self.padded_shape, self.dtype)
        k_correlate5.pad2d(self.input, self.padding, xp)
        return xp

    def forward_prop(self, input: Any) -> NDArray:
        self.input = check.as_array(self, "Input", input, self.input_shape, self.dtype)
        if self.backend == "scipy":
            if self._plain:
                return reference.conv_forward(self.input, self.filters, self.biases)
            return reference.conv_forward_padded(
                self.input, self.filters, self.biases, self.padding
            )
        self._check_parameters()
        out = np.empty(self.output_shape, self.dtype)
        if self._plain and self.filter_size != 5:
            k_conv.conv_forward(self.input, self.filters, self.biases, out)
        else:
            wide5 = np.empty(self._scratch_sizes()[3], self.dtype)
            xp = self._padded_input()
            k_padded.conv_padded_forward(xp, self.filters, self.biases, wide5, out)
        return out

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_input, (d_filters, d_biases))`` with ``d_filters[i, j] = correlate2d(pad(input)[j],
        d_output[i], "valid")``, ``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j],
        "full")`` cropped by the padding, and ``d_biases`` ``d_output`` itself (per pixel) or its
        sum over each filter's pixels (per filter); changes nothing."""
        self._check_input()
        d_output = check.as_array(self, "d_output", d_output, self.output_shape, self.dtype)
        if self.backend == "scipy":
            if self._plain:
                d_input, d_filters = reference.conv_gradient(self.input, self.filters, d_output)
                return d_input, (d_filters, d_output.copy())
            d_input, d_filters, d_biases = reference.conv_gradient_padded(
                self.input, self.filters, self.biases.shape, d_output, self.padding
            )
            return np.ascontiguousarray(d_input), (d_filters, np.array(d_biases))
        self._check_parameters()
        if not self._plain or self.filter_size == 5:
            return self._gradient_padded(d_output)
        d_input = np.empty(self.input_shape, self.dtype)
        k_conv.conv_input_gradient(d_output, self.filters, d_input)
        d_filters = np.zeros(self.filters_shape, self.dtype)
        d_biases = np.zeros(self.output_shape, self.dtype)
        wide = np.zeros(
            wide_size(self.input_shape[1], self.input_shape[2], self.filter_size), self.dtype
        )
        k_conv.conv_gradient_add(self.input, d_output, d_filters, d_biases, wide)
        return d_input, (d_filters, d_biases)

    def _gradient_padded(self, d_output: NDArray) -> tuple[NDArray, Grads]:
        wide_g, d_xp_size, gp_size, wide5_size, _ = self._scratch_sizes()
        d_input = np.empty(self.input_shape, self.dtype)
        d_xp = np.empty(self.padded_shape, self.dtype) if d_xp_size else d_input
        _, oh, ow = self.output_shape
        q = 4 - self.padding
        gp_shape = (self.filter_count, oh + 2 * q, ow + 2 * q) if gp_size else (0, 0, 0)
        gp, wide5 = np.empty(gp_shape, self.dtype), np.empty(wide5_size, self.dtype)
        k_padded.conv_padded_input_gradient(
            d_output, self.filters, self.padding, d_xp, gp, wide5, d_input
        )
        d_filters = np.zeros(self.filters_shape, self.dtype)
        d_biases = np.zeros(self.biases.shape, self.dtype)
        wide = np.zeros(wide_g, self.dtype)
        k_padded.conv_padded_gradient_add(self._padded_input(), d_output, d_filters, d_biases, wide)
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
# Both padded kinds run mini-batches as matrix products on wide columns (kernels/conv_gemm.py).
_GEMM_BATCH = dict(
    forward_batch=k_gemm.forward_batch,
    backward_batch=k_gemm.backward_batch,
    backward_first_batch=k_gemm.backward_first_batch,
)
registry.register_kind(
    "conv_padded",
    forward=k_padded.forward,
    backward=k_padded.backward,
    backward_first=k_padded.backward_first,
    **_GEMM_BATCH,
)
registry.register_kind(
    "conv_padded5",
    forward=k_padded.forward5,
    backward=k_padded.backward5,
    backward_first=k_padded.backward_first,
    **_GEMM_BATCH,
)
