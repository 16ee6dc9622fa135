"""Export a :class:`~fastcnn.Network` to ONNX, for ONNX Runtime and other ONNX consumers.

``fastcnn.export_onnx(network, path)`` (and ``fastcnn export MODEL.npz MODEL.onnx``) writes a
graph that maps ``input`` of shape ``(N, *network.input_shape)`` to ``output`` of shape
``(N, outputs)``, the layout of :meth:`Network.predict_batch`, with ``N`` left dynamic.

Each layer type has one converter in :data:`CONVERTERS`, keyed by the layer class's name and built
only from the public layer API (``get_config()``, ``named_parameters()``, ``input_shape`` /
``output_shape``); a new layer kind joins with one entry, a new element-wise activation with one
entry in :data:`ACTIVATION_OPS`. A converter refuses config fields it does not know, so an option
added to a layer later (say ``padding=``) is an error until its converter handles it, never a
silently wrong graph.

Layout: a sample of shape (n, 1), the notebook's column vector, travels as a row of the
``(N, n)`` matrix, so a Linear layer is one ``Gemm`` (``transB=1``); other shapes travel as
``(N, *shape)``.

Opset 17, IR version 8 (ONNX Runtime 1.13 and later load it). ONNX Runtime's CPU provider has no
float64 ``Conv`` kernel, so a float64 convolution is written as an ``im2col``: one ``Slice`` of
the input per filter tap, concatenated, then a ``MatMul`` by the filters; float32 uses ``Conv``.
The notebook's convolution has one bias per output pixel, added by an ``Add`` of a constant of the
biases' own shape (which broadcasts over the batch). A convolution with ``bias="filter"`` gives
``Conv`` its ``B`` input (float32) or adds biases of shape (count, 1, 1), which broadcast over the
pixels too (float64); ``padding=p`` is ``Conv``'s ``pads=[p, p, p, p]`` (float32) or a ``Pad`` of
zeros before the im2col (float64).

``MaxPool`` / ``AvgPool`` become ``MaxPool`` / ``AveragePool`` (``kernel_shape``, ``strides``;
no padding, floor), except a float64 average pool, which ONNX Runtime's CPU provider lacks: its
taps as strided ``Slice`` nodes, added row by row and divided once, as fastcnn computes it. The
activations are ``Sigmoid``, ``Relu``, ``Tanh`` and ``LeakyRelu(alpha=0.01)``; a float64 leaky
ReLU is ``Where(x > 0, x, x * 0.01)`` instead, because an ONNX float attribute is a float32 and
``alpha=0.01`` on doubles is 2e-9 relative away from fastcnn's slope. ``Softmax`` (of a column)
is ONNX ``Softmax`` with ``axis=1`` on the row layout.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import argparse

    from .layers import Layer
    from .network import Network

# Only the standard library at import time: the command line builds its parser from this module.

OPSET = 17
IR_VERSION = 8
INPUT, OUTPUT = "input", "output"
INSTALL_HINT = "pip install 'fastcnn[onnx]'"


class ExportError(ValueError):
    """A network that cannot be written as ONNX; the message names the layer."""


class _Tensor(NamedTuple):
    """A value in the graph: its name and its shape without the batch axis."""

    name: str
    shape: tuple[int, ...]


class _Graph:
    """The nodes and constants of the graph under construction, with unique names."""

    def __init__(self, dtype: Any) -> None:
        import numpy as np

        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint: str, array: Any, dtype: Any = None) -> str:
        """A named initializer holding ``array`` (in the graph's dtype unless ``dtype``)."""
        import numpy as np
        from onnx import numpy_helper

        name = self._name(hint)
        value = np.ascontiguousarray(array, dtype=self.dtype if dtype is None else dtype)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        """Append ``op(inputs)`` and return the name of its one output."""
        from onnx import helper

        output = self._name(hint)
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def reshape(self, x: _Tensor, shape: tuple[int, ...], hint: str) -> _Tensor:
        """``x`` as ``(N, *shape)``; no node when it already is."""
        import numpy as np

        if x.shape == shape:
            return x
        if len(shape) == 1:
            return _Tensor(self.node("Flatten", [x.name], f"{hint}_flatten", axis=1), shape)
        # 0 copies the batch size from the input (allowzero is off by default).
        target = self.constant(f"{hint}_shape", [0, *shape], np.int64)
        return _Tensor(self.node("Reshape", [x.name, target], f"{hint}_reshape"), shape)


Converter = Callable[["Layer", str, _Graph, _Tensor], _Tensor]


def _check_config(layer: Layer, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    config = layer.get_config()
    unknown = [key for key in config if key not in known]
    if unknown:
        options = ", ".join(f"{key}={config[key]!r}" for key in unknown)
        raise ExportError(
            f"{where}: the ONNX converter of {type(layer).__name__} does not know the option(s) "
            f"{options}; fastcnn.export.CONVERTERS[{type(layer).__name__!r}] must learn them"
        )
    return config


def _convolution(layer: Layer, where: str, graph: _Graph, x: _Tensor) -> _Tensor:
    import numpy as np

    config = _check_config(
        layer,
        where,
        ("input_shape", "filter_size", "filter_count", "padding", "bias", "dtype", "backend"),
    )
    # get_config leaves padding and bias out at their defaults (the notebook's layer).
    padding, bias = int(config.get("padding", 0)), config.get("bias", "pixel")
    if bias not in ("pixel", "filter"):
        raise ExportError(f"{where}: no ONNX converter for bias={bias!r}")
    params = layer.named_parameters()
    filters, biases = params["filters"], params["biases"]
    count, depth, size, _ = filters.shape
    input_shape = tuple(layer.input_shape or ())
    output_shape = tuple(layer.output_shape or ())
    x = graph.reshape(x, input_shape, "conv")
    if graph.dtype == np.float32:
        inputs = [x.name, graph.constant("conv_filters", filters)]
        if bias == "filter":  # Conv's own B input: one bias per output channel
            inputs.append(graph.constant("conv_biases", biases.reshape(count)))
        pads = {"pads": [padding] * 4} if padding else {}
        y = graph.node("Conv", inputs, "conv", kernel_shape=[size, size], **pads)
        if bias == "filter":
            return _Tensor(y, output_shape)
    else:
        if padding:  # zeros on both sides of the two image axes, as Conv's pads
            widths = graph.constant("conv_pads", [0, 0, padding, padding] * 2, np.int64)
            padded = (depth, x.shape[1] + 2 * padding, x.shape[2] + 2 * padding)
            x = _Tensor(graph.node("Pad", [x.name, widths], "conv_pad"), padded)
        # im2col from slices: one Slice per filter tap (u, v), concatenated along the channels,
        # holds at [n, (u * size + v) * depth + c, i, j] the (padded) input x[n, c, i + u, j + v];
        # the filters reordered alike make the convolution one MatMul. (A Gather by index was 4x
        # slower: ORT copies gathered doubles one at a time.)
        _, out_h, out_w = output_shape
        taps = []
        for u in range(size):
            for v in range(size):
                starts = graph.constant("conv_starts", [u, v], np.int64)
                ends = graph.constant("conv_ends", [u + out_h, v + out_w], np.int64)
                axes = graph.constant("conv_axes", [2, 3], np.int64)
                taps.append(graph.node("Slice", [x.name, starts, ends, axes], "conv_tap"))
        columns = graph.node("Concat", taps, "conv_im2col", axis=1)
        columns = graph.reshape(
            _Tensor(columns, (size * size * depth, out_h, out_w)),
            (size * size * depth, out_h * out_w),
            "conv_columns",
        ).name
        weights = graph.constant(
            "conv_filters", filters.transpose(0, 2, 3, 1).reshape(count, size * size * depth)
        )
        product = graph.node("MatMul", [weights, columns], "conv_matmul")  # (N, count, P)
        y = graph.reshape(_Tensor(product, (count, out_h * out_w)), output_shape, "conv").name
    # Biases of shape (count, h, w) (the notebook's, one per pixel) or (count, 1, 1) (per filter,
    # in float64) broadcast over the batch and, for the latter, over the pixels.
    bias_name = graph.constant("conv_biases", biases)
    return _Tensor(graph.node("Add", [y, bias_name], "conv_add_biases"), output_shape)


def _linear(layer: Layer, where: str, graph: _Graph, x: _Tensor) -> _Tensor:
    _check_config(layer, where, ("input_size", "output_size", "dtype", "backend"))
    params = layer.named_parameters()
    weights, biases = params["weights"], params["biases"]
    x = graph.reshape(x, (weights.shape[1],), "linear_input")
    w = graph.constant("linear_weights", weights)
    b = graph.constant("linear_biases", biases.reshape(-1))
    return _Tensor(graph.node("Gemm", [x.name, w, b], "linear", transB=1), (weights.shape[0],))


def _leaky_relu(graph: _Graph, x: str) -> str:
    import numpy as np

    from .functions import LEAKY_RELU_SLOPE

    if graph.dtype == np.float32:
        return graph.node("LeakyRelu", [x], "leaky_relu", alpha=LEAKY_RELU_SLOPE)
    # An ONNX float attribute is a float32: LeakyRelu(alpha=0.01) on doubles multiplies by
    # 0.00999999977648, 2e-9 relative away from fastcnn's slope. fastcnn's own formula instead,
    # x > 0 ? x : x * 0.01, with the slope a float64 constant.
    zero = graph.constant("leaky_relu_zero", 0.0)
    slope = graph.constant("leaky_relu_slope", LEAKY_RELU_SLOPE)
    positive = graph.node("Greater", [x, zero], "leaky_relu_positive")
    scaled = graph.node("Mul", [x, slope], "leaky_relu_scaled")
    return graph.node("Where", [positive, x, scaled], "leaky_relu")


# fastcnn's registered activation name -> the ONNX operator computing it element-wise, or a
# function(graph, input name) -> output name writing the nodes that compute it.
ACTIVATION_OPS: dict[str, str | Callable[[_Graph, str], str]] = {
    "sigmoid": "Sigmoid",
    "relu": "Relu",
    "tanh": "Tanh",
    "leaky_relu": _leaky_relu,
}


def _activation(layer: Layer, where: str, graph: _Graph, x: _Tensor) -> _Tensor:
    try:
        config = _check_config(layer, where, ("activation", "backend"))
    except ExportError:
        raise
    except ValueError as exc:  # an unregistered (user-defined) function pair
        raise ExportError(f"{where}: {exc}") from None
    op = ACTIVATION_OPS.get(config["activation"])
    if op is None:
        raise ExportError(
            f"{where}: activation {config['activation']!r} has no ONNX operator in "
            f"fastcnn.export.ACTIVATION_OPS (known: {', '.join(ACTIVATION_OPS)})"
        )
    if isinstance(op, str):
        return _Tensor(graph.node(op, [x.name], op.lower()), x.shape)
    return _Tensor(op(graph, x.name), x.shape)


def _pool(layer: Layer, where: str, graph: _Graph, x: _Tensor, op: str) -> _Tensor:
    import numpy as np

    config = _check_config(layer, where, ("input_shape", "size", "stride", "backend"))
    size, stride = config["size"], config["stride"]
    x = graph.reshape(x, tuple(layer.input_shape or ()), "pool")
    output_shape = tuple(layer.output_shape or ())
    if op == "AveragePool" and graph.dtype == np.float64:
        # ONNX Runtime's CPU provider has no float64 AveragePool: the window's taps as strided
        # Slices, summed in fastcnn's order (row by row), then one division, as fastcnn does.
        _, out_h, out_w = output_shape
        taps = []
        for u in range(size):
            for v in range(size):
                starts = graph.constant("pool_starts", [u, v], np.int64)
                ends = [u + (out_h - 1) * stride + 1, v + (out_w - 1) * stride + 1]
                axes = graph.constant("pool_axes", [2, 3], np.int64)
                steps = graph.constant("pool_steps", [stride, stride], np.int64)
                ends_name = graph.constant("pool_ends", ends, np.int64)
                taps.append(
                    graph.node("Slice", [x.name, starts, ends_name, axes, steps], "pool_tap")
                )
        total = taps[0]
        for tap in taps[1:]:
            total = graph.node("Add", [total, tap], "pool_sum")
        count = graph.constant("pool_count", size * size)
        return _Tensor(graph.node("Div", [total, count], "avgpool"), output_shape)
    # Floor (ceil_mode 0), no padding, and no dilation are the operators' defaults.
    y = graph.node(op, [x.name], op.lower(), kernel_shape=[size, size], strides=[stride, stride])
    return _Tensor(y, output_shape)


def _softmax(layer: Layer, where: str, graph: _Graph, x: _Tensor) -> _Tensor:
    _check_config(layer, where, ("backend",))
    # The layer takes a column (n, 1), which travels as a row of the (N, n) matrix: axis 1 is
    # the class axis (opset 13 and later: softmax along that one axis, not a flattened 2-D view).
    x = graph.reshape(x, (math.prod(x.shape),), "softmax_input")
    return _Tensor(graph.node("Softmax", [x.name], "softmax", axis=1), x.shape)


def _maxpool(layer: Layer, where: str, graph: _Graph, x: _Tensor) -> _Tensor:
    return _pool(layer, where, graph, x, "MaxPool")


def _avgpool(layer: Layer, where: str, graph: _Graph, x: _Tensor) -> _Tensor:
    return _pool(layer, where, graph, x, "AveragePool")


def _reshape(layer: Layer, where: str, graph: _Graph, x: _Tensor) -> _Tensor:
    _check_config(layer, where, ("input_shape", "output_shape"))
    shape = tuple(layer.output_shape or ())
    if len(shape) == 2 and shape[1] == 1:
        shape = shape[:1]  # a column vector travels as a row of the batch matrix
    return graph.reshape(x, shape, "reshape")


# Layer class name -> converter(layer, where, graph, x) -> the layer's output in the graph.
CONVERTERS: dict[str, Converter] = {
    "Convolution": _convolution,
    "Linear": _linear,
    "Activation": _activation,
    "Reshape": _reshape,
    "MaxPool": _maxpool,
    "AvgPool": _avgpool,
    "Softmax": _softmax,
}


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    return onnx


def network_dtype(network: Network) -> Any:
    """The one dtype of the network's parameters (float64 when it has none)."""
    import numpy as np

    dtypes = {
        array.dtype.name: i
        for i, layer in enumerate(network.layers)
        for array in layer.named_parameters().values()
    }
    if len(dtypes) > 1:
        found = ", ".join(f"{name} (layer {i})" for name, i in dtypes.items())
        raise ExportError(f"the network mixes parameter dtypes {found}; export needs one dtype")
    return np.dtype(next(iter(dtypes), "float64"))


def to_onnx(network: Network) -> Any:
    """The ONNX model (an ``onnx.ModelProto``) computing ``network.predict_batch``.

    Parameters
    ----------
    network : Network
        Made of layers that :data:`CONVERTERS` knows, with a known ``input_shape``.

    Returns
    -------
    onnx.ModelProto
        Input ``input`` of shape (N, *network.input_shape), output ``output`` of shape
        (N, outputs), both in the network's dtype (float32 or float64); checked by
        ``onnx.checker.check_model``.

    Raises
    ------
    ExportError
        A layer without a converter (named, with the known ones), an option a converter does
        not know, an unregistered activation, mixed dtypes, or an unknown input shape.
    ImportError
        onnx is not installed (``pip install 'fastcnn[onnx]'``).
    """
    import numpy as np

    onnx = _require_onnx()
    from onnx import helper

    input_shape = network.input_shape
    if input_shape is None:
        raise ExportError(
            "the network's input shape is unknown (its first layers do not state it); "
            "export needs a network whose first layer (after any activations) states it, as "
            "Convolution, Linear, Reshape, MaxPool and AvgPool do"
        )
    for i, layer in enumerate(network.layers):
        kind = type(layer).__name__
        if kind not in CONVERTERS:
            raise ExportError(
                f"layer {i} ({layer!r}): no ONNX converter for layer type {kind!r}; "
                f"fastcnn.export.CONVERTERS knows {', '.join(CONVERTERS)}"
            )
    dtype = network_dtype(network)
    element = helper.np_dtype_to_tensor_dtype(dtype)
    graph = _Graph(dtype)
    x = _Tensor(INPUT, tuple(input_shape))
    for i, layer in enumerate(network.layers):
        x = CONVERTERS[type(layer).__name__](layer, f"layer {i} ({layer!r})", graph, x)
    outputs = int(np.prod(x.shape))
    x = graph.reshape(x, (outputs,), "output")
    graph.nodes.append(helper.make_node("Identity", [x.name], [OUTPUT], name=OUTPUT))
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "fastcnn",
            [helper.make_tensor_value_info(INPUT, element, ["N", *input_shape])],
            [helper.make_tensor_value_info(OUTPUT, element, ["N", outputs])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fastcnn",
        doc_string=repr(network),
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(network: Network, path: str | os.PathLike[str]) -> None:
    """Write ``network`` as an ONNX file (see :func:`to_onnx`): to a temporary name in the same
    directory, then renamed, so ``path`` is never left half-written. An existing file keeps its
    permissions; a new one gets those a plain ``open(path, "wb")`` would give it."""
    data = to_onnx(network).SerializeToString()
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot write {path}: directory {directory} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not an ONNX file", path)
    fd, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it the file
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _file_mode(path: str) -> int:
    """mkstemp creates 0600; give the file the mode a plain ``open(path, "wb")`` would have."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o777  # keep the mode of the file being replaced
    umask = os.umask(0o022)  # the umask can only be read by setting it; restored at once
    os.umask(umask)
    return 0o666 & ~umask


# ---------------------------------------------------------------------------------------------------
# the command: fastcnn export MODEL.npz MODEL.onnx


def add_parser(commands: Any) -> None:
    """Add ``export`` to the command line's subparsers."""
    from .cli import _model_options

    export = commands.add_parser(
        "export",
        help="write a model as ONNX, for ONNX Runtime",
        description="Write a model file as an ONNX graph: input (N, *input shape), e.g. (N, 1, "
        "28, 28), output (N, outputs), in the model's dtype; ONNX Runtime's outputs equal "
        "fastcnn's predict_batch to 1e-5 (float32) / 1e-12 (float64). Needs fastcnn[onnx].",
    )
    export.add_argument("model", metavar="MODEL", help="model file written by fastcnn train")
    export.add_argument("out", metavar="OUT", help="the ONNX file to write, e.g. model.onnx")
    _model_options(export)
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .cli import CommandError
    from .io import load

    _require_onnx()  # before loading a large model
    limits = {} if args.max_parameters is None else {"max_parameters": args.max_parameters}
    network = load(args.model, **limits)
    try:
        export_onnx(network, args.out)
    except ExportError as exc:
        raise CommandError(f"{args.model}: {exc}") from None
    shape = ", ".join(str(n) for n in network.input_shape or ())
    print(f"wrote {args.out} (ONNX opset {OPSET}, input (N, {shape}), output {OUTPUT!r})")
    return 0
