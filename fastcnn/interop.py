"""fastcnn <-> PyTorch: ``to_torch(network)`` and ``from_torch(module, input_shape)``.

For the layers both have: ``Convolution``, ``Linear``, ``Reshape``, ``MaxPool`` / ``AvgPool``
(``nn.MaxPool2d`` / ``nn.AvgPool2d``: square windows, no padding, floor) and the activations
sigmoid, relu, tanh and leaky_relu (``nn.Sigmoid``, ``nn.ReLU``, ``nn.Tanh``,
``nn.LeakyReLU(0.01)``). ``from_torch`` refuses a torch option fastcnn lacks (``ceil_mode``,
``padding``, ``dilation``, ``return_indices``, ``divisor_override``, another leaky slope),
naming the module.
The notebook's convolution has one bias per output pixel, which ``torch.nn.Conv2d`` lacks; it
becomes ``Conv2d(bias=False)`` followed by :class:`PixelBias`, a small module of fastcnn's own
(``x + bias``, bias of shape (count, height, width)), and ``from_torch`` folds the pair back into
one ``Convolution``. A ``Conv2d`` with its usual per-filter bias converts too (each filter's bias
copied to all its pixels).

Layout: the torch module takes ``(N, *input_shape)`` and a notebook column vector (n, 1) travels
as a row of an (N, n) matrix, as torch's ``Linear`` wants; so the MNIST network maps
(N, 1, 28, 28) to (N, 10), as ``predict_batch`` does. A ``Reshape`` to a column becomes
``nn.Flatten()``, from a column to an image ``nn.Unflatten(1, shape)``, from an image to another
image both (which ``from_torch`` reads back as one ``Reshape``).

fastcnn -> torch -> fastcnn is bit-identical (the same layers, parameters and predictions);
parameters keep their dtype (float64 networks give float64 modules). PyTorch is optional
(``pip install 'fastcnn[torch]'``, a CPU build): this module imports without it, and its
functions say which extra to install when it is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .functions import LEAKY_RELU_SLOPE

if TYPE_CHECKING:
    from .layers import Layer
    from .network import Network

INSTALL_HINT = "pip install 'fastcnn[torch]' (a CPU build of torch, e.g. torch==2.13.0)"
Shape = tuple[int, ...]


class InteropError(ValueError):
    """A layer or module with no equivalent on the other side; the message names it."""


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(f"fastcnn.interop needs PyTorch: {INSTALL_HINT}") from None
    return torch


_CLASSES: dict[str, type] = {}  # PixelBias, defined on first use (it subclasses torch.nn.Module)


def _pixel_bias_class() -> type:
    cls = _CLASSES.get("PixelBias")
    if cls is not None:
        return cls
    torch = _torch()
    module: Any = torch.nn.Module

    class PixelBias(module):
        """``x + bias`` with one bias per output pixel: the notebook convolution's biases.

        Parameters
        ----------
        shape : tuple (count, height, width)
        dtype : torch dtype, default torch's default
        """

        def __init__(self, shape: Shape, *, dtype: Any = None) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(tuple(shape), dtype=dtype))

        def forward(self, x: Any) -> Any:
            return x + self.bias

        def extra_repr(self) -> str:
            return f"shape={tuple(self.bias.shape)}"

    PixelBias.__module__ = __name__
    _CLASSES["PixelBias"] = PixelBias
    return PixelBias


def __getattr__(name: str) -> Any:
    if name == "PixelBias":
        return _pixel_bias_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _carried(shape: Shape) -> Shape:
    """A fastcnn sample shape as torch carries it (without N): a column (n, 1) as (n,)."""
    return shape[:1] if len(shape) == 2 and shape[1] == 1 else shape


def _check_config(layer: Layer, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    config = layer.get_config()
    unknown = [key for key in config if key not in known]
    if unknown:
        options = ", ".join(f"{key}={config[key]!r}" for key in unknown)
        raise InteropError(
            f"{where}: to_torch's converter of {type(layer).__name__} does not know the "
            f"option(s) {options}; fastcnn.interop.TO_TORCH[{type(layer).__name__!r}] must "
            f"learn them"
        )
    return config


def _set(parameter: Any, array: Any) -> None:
    torch = _torch()
    with torch.no_grad():
        parameter.copy_(torch.from_numpy(array.copy()))


def _torch_dtype(array: Any) -> Any:
    torch = _torch()
    return {"float32": torch.float32, "float64": torch.float64}[array.dtype.name]


# ---------------------------------------------------------------------------------------------------
# fastcnn -> torch

ToTorch = Callable[["Layer", str, Shape], tuple[list[Any], Shape]]


def _reshaping(have: Shape, want: Shape) -> list[Any]:
    """The modules taking a torch sample of shape ``have`` to ``want`` (both as carried)."""
    nn = _torch().nn
    if len(want) == 1:
        return [nn.Flatten()]  # also for have == want: a Reshape stays a module, for the way back
    if len(have) == 1:
        return [nn.Unflatten(1, want)]
    return [nn.Flatten(), nn.Unflatten(1, want)]


def _convolution_to_torch(layer: Layer, where: str, shape: Shape) -> tuple[list[Any], Shape]:
    nn = _torch().nn
    config = _check_config(
        layer,
        where,
        ("input_shape", "filter_size", "filter_count", "padding", "bias", "dtype", "backend"),
    )
    # get_config leaves padding and bias out at their defaults (the notebook's layer).
    padding, bias = int(config.get("padding", 0)), config.get("bias", "pixel")
    if bias not in ("pixel", "filter"):
        raise InteropError(f"{where}: no torch equivalent for bias={bias!r}")
    params = layer.named_parameters()
    filters, biases = params["filters"], params["biases"]
    count, depth, size, _ = filters.shape
    input_shape = tuple(layer.input_shape or ())
    output_shape = tuple(layer.output_shape or ())
    modules = [] if shape == input_shape else _reshaping(shape, input_shape)
    conv = nn.Conv2d(
        depth, count, size, padding=padding, bias=bias == "filter", dtype=_torch_dtype(filters)
    )
    _set(conv.weight, filters)
    if bias == "filter":
        _set(conv.bias, biases.reshape(count))
        return [*modules, conv], output_shape
    pixel = _pixel_bias_class()(biases.shape, dtype=_torch_dtype(biases))
    _set(pixel.bias, biases)
    return [*modules, conv, pixel], output_shape


def _linear_to_torch(layer: Layer, where: str, shape: Shape) -> tuple[list[Any], Shape]:
    nn = _torch().nn
    _check_config(layer, where, ("input_size", "output_size", "dtype", "backend"))
    params = layer.named_parameters()
    weights, biases = params["weights"], params["biases"]
    out_size, in_size = weights.shape
    modules = [] if shape == (in_size,) else [nn.Flatten()]
    linear = nn.Linear(in_size, out_size, dtype=_torch_dtype(weights))
    _set(linear.weight, weights)
    _set(linear.bias, biases.reshape(-1))
    return [*modules, linear], (out_size,)


def _activation_to_torch(layer: Layer, where: str, shape: Shape) -> tuple[list[Any], Shape]:
    nn = _torch().nn
    try:
        config = _check_config(layer, where, ("activation", "backend"))
    except InteropError:
        raise
    except ValueError as exc:  # a user-defined function pair
        raise InteropError(f"{where}: {exc}") from None
    module = _ACTIVATION_MODULES.get(config["activation"])
    if module is None:
        raise InteropError(
            f"{where}: activation {config['activation']!r} has no torch module in to_torch "
            f"(known: {', '.join(_ACTIVATION_MODULES)})"
        )
    return [module(nn)], shape


# fastcnn's registered activation name -> the torch module computing it (given torch.nn).
_ACTIVATION_MODULES: dict[str, Callable[[Any], Any]] = {
    "sigmoid": lambda nn: nn.Sigmoid(),
    "relu": lambda nn: nn.ReLU(),
    "tanh": lambda nn: nn.Tanh(),
    "leaky_relu": lambda nn: nn.LeakyReLU(LEAKY_RELU_SLOPE),
}


def _pool_to_torch(layer: Layer, where: str, shape: Shape) -> tuple[list[Any], Shape]:
    nn = _torch().nn
    config = _check_config(layer, where, ("input_shape", "size", "stride", "backend"))
    input_shape = tuple(layer.input_shape or ())
    modules = [] if shape == input_shape else _reshaping(shape, input_shape)
    cls = {"MaxPool": nn.MaxPool2d, "AvgPool": nn.AvgPool2d}[type(layer).__name__]
    pool = cls(config["size"], stride=config["stride"])  # floor, no padding: torch's defaults
    return [*modules, pool], tuple(layer.output_shape or ())


def _reshape_to_torch(layer: Layer, where: str, shape: Shape) -> tuple[list[Any], Shape]:
    _check_config(layer, where, ("input_shape", "output_shape"))
    want = _carried(tuple(layer.output_shape or ()))
    return _reshaping(shape, want), want


def _softmax_to_torch(layer: Layer, where: str, shape: Shape) -> tuple[list[Any], Shape]:
    nn = _torch().nn
    _check_config(layer, where, ("backend",))
    # The layer takes a column (n, 1), carried as (n,): torch's (N, n), whose class axis is 1.
    return [nn.Softmax(dim=1)], shape


# Layer class name -> converter(layer, where, carried input shape) -> (modules, carried output).
TO_TORCH: dict[str, ToTorch] = {
    "Convolution": _convolution_to_torch,
    "Linear": _linear_to_torch,
    "Activation": _activation_to_torch,
    "Reshape": _reshape_to_torch,
    "MaxPool": _pool_to_torch,
    "AvgPool": _pool_to_torch,
    "Softmax": _softmax_to_torch,
}


def to_torch(network: Network) -> Any:
    """``network`` as a ``torch.nn.Sequential`` computing the same function.

    Parameters
    ----------
    network : Network
        Made of layers :data:`TO_TORCH` knows, with a known ``input_shape``.

    Returns
    -------
    torch.nn.Sequential
        Input (N, *input_shape) with a column (n, 1) as (N, n); output (N, outputs) for a
        network ending in a column (the MNIST network: (N, 1, 28, 28) -> (N, 10)). Parameters in
        the network's dtype, copied (the module and the network share no memory).

    Raises
    ------
    InteropError
        A layer without a torch equivalent (named), or an unknown input shape.
    ImportError
        PyTorch is not installed (``pip install 'fastcnn[torch]'``).
    """
    torch = _torch()
    input_shape = network.input_shape
    if input_shape is None:
        raise InteropError(
            "the network's input shape is unknown (its first layers do not state it)"
        )
    shape = _carried(tuple(input_shape))
    modules: list[Any] = []
    for i, layer in enumerate(network.layers):
        kind = type(layer).__name__
        where = f"layer {i} ({layer!r})"
        convert = TO_TORCH.get(kind)
        if convert is None:
            raise InteropError(
                f"{where}: no torch equivalent for layer type {kind!r}; "
                f"fastcnn.interop.TO_TORCH knows {', '.join(TO_TORCH)}"
            )
        converted, shape = convert(layer, where, shape)
        modules.extend(converted)
    return torch.nn.Sequential(*modules)


# ---------------------------------------------------------------------------------------------------
# torch -> fastcnn


def _modules(module: Any) -> list[Any]:
    """The leaf modules of nested Sequentials, in order."""
    torch = _torch()
    if isinstance(module, torch.nn.Sequential):
        return [leaf for child in module for leaf in _modules(child)]
    return [module]


def _numpy(tensor: Any, where: str) -> Any:
    array = tensor.detach().cpu().numpy().copy()
    if array.dtype.name not in ("float32", "float64"):
        raise InteropError(
            f"{where}: parameters of dtype {array.dtype.name}; fastcnn computes in float32 or "
            f"float64 (convert with module.float() or module.double())"
        )
    return array


class _Reader:
    """Walks the torch modules, tracking the fastcnn shape of the value between them."""

    def __init__(self, modules: list[Any], input_shape: Shape) -> None:
        self.modules = modules
        self.shape = tuple(input_shape)
        self.layers: list[Layer] = []
        self.i = 0

    def where(self, i: int | None = None) -> str:
        i = self.i if i is None else i
        return f"module {i} ({self.modules[i]!r})"

    def next_is(self, cls: type) -> bool:
        return self.i + 1 < len(self.modules) and type(self.modules[self.i + 1]) is cls

    def read(self) -> list[Layer]:
        torch = _torch()
        nn = torch.nn
        readers = {
            nn.Conv2d: self.conv2d,
            nn.Linear: self.linear,
            nn.Sigmoid: self.activation,
            nn.ReLU: self.activation,
            nn.Tanh: self.activation,
            nn.LeakyReLU: self.leaky_relu,
            nn.MaxPool2d: self.pool,
            nn.AvgPool2d: self.pool,
            nn.Softmax: self.softmax,
            nn.Flatten: self.flatten,
            nn.Unflatten: self.unflatten,
            nn.Identity: lambda m: None,
        }
        pixel_bias = _pixel_bias_class()
        while self.i < len(self.modules):
            module = self.modules[self.i]
            reader = readers.get(type(module))
            if reader is None:
                name = type(module).__name__
                if type(module) is pixel_bias:
                    raise InteropError(
                        f"{self.where()}: a PixelBias must follow a Conv2d (it holds that "
                        f"convolution's per-pixel biases)"
                    )
                raise InteropError(
                    f"{self.where()}: torch module {name} has no fastcnn equivalent; "
                    f"from_torch knows {', '.join(cls.__name__ for cls in readers)} and "
                    f"fastcnn.interop.PixelBias"
                )
            reader(module)
            self.i += 1
        return self.layers

    def conv2d(self, conv: Any) -> None:
        from .layers import Convolution

        where = self.where()
        size = conv.kernel_size
        padding = _conv_padding(conv.padding, size)
        faults = [
            f"{name}={value!r}"
            for name, value, ok in (
                ("kernel_size", size, size[0] == size[1]),
                ("stride", conv.stride, tuple(conv.stride) == (1, 1)),
                ("padding", conv.padding, padding is not None),
                ("padding_mode", conv.padding_mode, conv.padding_mode == "zeros" or not padding),
                ("dilation", conv.dilation, tuple(conv.dilation) == (1, 1)),
                ("groups", conv.groups, conv.groups == 1),
            )
            if not ok
        ]
        if faults:
            raise InteropError(
                f"{where}: fastcnn's Convolution has square filters, stride 1, the same zero "
                f"padding on every side, dilation 1 and groups 1, but this Conv2d has "
                f"{', '.join(faults)}"
            )
        if len(self.shape) != 3 or self.shape[0] != conv.in_channels:
            raise InteropError(
                f"{where}: expects {conv.in_channels} input channels, but the value before it "
                f"has shape {self.shape} (add nn.Unflatten(1, (channels, height, width)))"
            )
        filters = _numpy(conv.weight, where)
        # A PixelBias after it: the notebook's per-pixel biases (plus the Conv2d's own, if any);
        # otherwise torch's per-filter biases (zeros for bias=False).
        pixel = self.next_is(_pixel_bias_class())
        # xavier with a fixed seed: the values are overwritten, and the global NumPy state untouched
        try:
            layer = Convolution(
                self.shape,
                size[0],
                conv.out_channels,
                padding=padding or 0,
                bias="pixel" if pixel else "filter",
                dtype=filters.dtype,
                rng=0,
                init="xavier",
            )
        except ValueError as exc:
            raise InteropError(f"{where}: {exc}") from None
        biases = layer.biases * 0
        if conv.bias is not None:
            biases = biases + _numpy(conv.bias, where).reshape(-1, 1, 1)
        if pixel:
            self.i += 1
            extra = _numpy(self.modules[self.i].bias, self.where())
            if extra.shape != layer.output_shape:
                raise InteropError(
                    f"{self.where()}: biases of shape {extra.shape}, but the Conv2d before it "
                    f"outputs {layer.output_shape}"
                )
            biases = extra if conv.bias is None else biases + extra
        layer.filters[...] = filters
        layer.biases[...] = biases
        self.add(layer)

    def linear(self, linear: Any) -> None:
        from .layers import Linear

        where = self.where()
        if _carried(self.shape) != (linear.in_features,):
            raise InteropError(
                f"{where}: expects {linear.in_features} inputs in a row, but the value before "
                f"it has shape {self.shape} (add nn.Flatten())"
            )
        weights = _numpy(linear.weight, where)
        layer = Linear(
            linear.in_features, linear.out_features, dtype=weights.dtype, rng=0, init="xavier"
        )
        layer.weights[...] = weights
        layer.biases[...] = 0 if linear.bias is None else _numpy(linear.bias, where)[:, None]
        self.add(layer)

    def activation(self, module: Any) -> None:
        from . import functions
        from .layers import Activation

        name = {"Sigmoid": "sigmoid", "ReLU": "relu", "Tanh": "tanh", "LeakyReLU": "leaky_relu"}
        function = name[type(module).__name__]
        self.layers.append(
            Activation(getattr(functions, function), getattr(functions, f"d_{function}"))
        )

    def leaky_relu(self, module: Any) -> None:
        if module.negative_slope != LEAKY_RELU_SLOPE:
            raise InteropError(
                f"{self.where()}: fastcnn's leaky_relu has slope {LEAKY_RELU_SLOPE} (PyTorch's "
                f"default), but this LeakyReLU has negative_slope={module.negative_slope!r}"
            )
        self.activation(module)

    def softmax(self, module: Any) -> None:
        from .layers import Softmax

        if len(_carried(self.shape)) != 1:
            raise InteropError(
                f"{self.where()}: fastcnn's Softmax takes a column vector, but the value before "
                f"it has shape {self.shape} (add nn.Flatten())"
            )
        if module.dim not in (1, -1):
            raise InteropError(
                f"{self.where()}: fastcnn's Softmax is over the features of each sample "
                f"(dim=1 of (N, n)), but this Softmax has dim={module.dim!r}"
            )
        self.layers.append(Softmax())

    def pool(self, pool: Any) -> None:
        from .layers import AvgPool, MaxPool

        where = self.where()
        torch_name = type(pool).__name__
        size, stride = _pair(pool.kernel_size), _pair(pool.stride)
        checks = [
            ("kernel_size", pool.kernel_size, size[0] == size[1]),
            ("stride", pool.stride, stride[0] == stride[1]),
            ("padding", pool.padding, _pair(pool.padding) == (0, 0)),
            ("ceil_mode", pool.ceil_mode, not pool.ceil_mode),
        ]
        if torch_name == "MaxPool2d":
            cls: type = MaxPool
            checks += [
                ("dilation", pool.dilation, _pair(pool.dilation) == (1, 1)),
                ("return_indices", pool.return_indices, not pool.return_indices),
            ]
            lacks = "square windows and strides, no padding, floor sizes (ceil_mode=False), "
            lacks += "dilation 1 and no indices"
        else:
            # count_include_pad only matters with padding, which is refused.
            cls = AvgPool
            checks.append(
                ("divisor_override", pool.divisor_override, pool.divisor_override is None)
            )
            lacks = "square windows and strides, no padding, floor sizes (ceil_mode=False) "
            lacks += "and the window's size as divisor (divisor_override=None)"
        faults = [f"{name}={value!r}" for name, value, ok in checks if not ok]
        if faults:
            raise InteropError(
                f"{where}: fastcnn's {cls.__name__} has {lacks}, but this {torch_name} has "
                f"{', '.join(faults)}"
            )
        if len(self.shape) != 3:
            raise InteropError(
                f"{where}: pools images (channels, height, width), but the value before it "
                f"has shape {self.shape} (add nn.Unflatten(1, (channels, height, width)))"
            )
        try:
            layer = cls(self.shape, size[0], stride[0])
        except ValueError as exc:
            raise InteropError(f"{where}: {exc}") from None
        self.add(layer)

    def flatten(self, flatten: Any) -> None:
        if (flatten.start_dim, flatten.end_dim) != (1, -1):
            raise InteropError(
                f"{self.where()}: only nn.Flatten() (start_dim=1, end_dim=-1) has a fastcnn "
                f"equivalent"
            )
        target: Shape = (math.prod(self.shape), 1)
        if self.next_is(_torch().nn.Unflatten):
            self.i += 1
            target = self.unflatten_shape(self.modules[self.i])
        self.reshape(target)

    def unflatten(self, unflatten: Any) -> None:
        if len(_carried(self.shape)) != 1:
            raise InteropError(
                f"{self.where()}: fastcnn reshapes whole samples; put nn.Flatten() before "
                f"nn.Unflatten"
            )
        self.reshape(self.unflatten_shape(unflatten))

    def unflatten_shape(self, unflatten: Any) -> Shape:
        if unflatten.dim != 1:
            raise InteropError(f"{self.where()}: only nn.Unflatten(1, shape) has an equivalent")
        return tuple(int(n) for n in unflatten.unflattened_size)

    def reshape(self, target: Shape) -> None:
        from .layers import Reshape

        try:
            self.layers.append(Reshape(self.shape, target))
        except ValueError as exc:
            raise InteropError(f"{self.where()}: {exc}") from None
        self.shape = target

    def add(self, layer: Layer) -> None:
        self.layers.append(layer)
        self.shape = tuple(layer.output_shape or ())


def _conv_padding(padding: Any, kernel_size: tuple[int, ...]) -> int | None:
    """A Conv2d's padding as fastcnn's one int, or None when fastcnn has no equivalent
    (different padding on the two axes, or "same" for an even kernel, which torch pads unevenly)."""
    if padding == "valid":
        return 0
    if padding == "same":
        return (kernel_size[0] - 1) // 2 if kernel_size[0] % 2 == 1 else None
    rows, columns = padding
    return int(rows) if rows == columns else None


def _pair(value: Any) -> tuple[int, int]:
    """A torch size argument (an int or a pair) as a pair."""
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) in (1, 2) else (0, -1)
    return int(value), int(value)


def from_torch(module: Any, input_shape: Shape) -> Network:
    """A fastcnn :class:`~fastcnn.Network` computing what ``module`` computes.

    Parameters
    ----------
    module : torch.nn.Sequential (possibly nested) or one module
        Of ``Conv2d`` (square, stride 1, no padding; optionally followed by
        :class:`PixelBias`), ``Linear``, ``Sigmoid``, ``ReLU``, ``Tanh``, ``LeakyReLU(0.01)``,
        ``MaxPool2d`` / ``AvgPool2d`` (square, no padding, floor), ``Flatten()``,
        ``Unflatten(1, shape)``, ``Identity``.
    input_shape : tuple
        One sample's shape in fastcnn's terms, e.g. (1, 28, 28), or (n, 1) for a dense network.

    Returns
    -------
    Network
        Parameters copied in the module's dtype (float32 or float64).

    Raises
    ------
    InteropError
        A module with no fastcnn equivalent (named), an option fastcnn lacks (stride, padding,
        ...), or shapes that do not chain.
    ImportError
        PyTorch is not installed (``pip install 'fastcnn[torch]'``).
    """
    from .network import Network

    layers = _Reader(_modules(module), tuple(input_shape)).read()
    dtypes = {str(layer.dtype) for layer in layers if hasattr(layer, "dtype")}
    if len(dtypes) > 1:
        raise InteropError(
            f"the module mixes parameter dtypes {', '.join(sorted(dtypes))}; fastcnn needs one "
            f"(convert with module.float() or module.double())"
        )
    return Network(layers)
