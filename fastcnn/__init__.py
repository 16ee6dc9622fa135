"""fastcnn: the from-scratch CNN notebook's API (Layer, Linear, Activation, Convolution, Reshape,
Network, sigmoid, mse) with the same numbers, on Numba kernels; ``backend="scipy"`` runs the
notebook's own NumPy/SciPy code instead.

The names below are imported on first use (PEP 562), so ``import fastcnn.cli`` is quick: the
``fastcnn`` command catches Ctrl-C from its very start, before NumPy, SciPy and Numba load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .export import export_onnx
    from .functions import (
        binary_cross_entropy,
        cross_entropy,
        d_binary_cross_entropy,
        d_cross_entropy,
        d_leaky_relu,
        d_mse,
        d_relu,
        d_sigmoid,
        d_tanh,
        leaky_relu,
        mse,
        relu,
        sigmoid,
        tanh,
    )
    from .io import load
    from .layers import (
        Activation,
        AvgPool,
        Convolution,
        Layer,
        Linear,
        MaxPool,
        Reshape,
        Softmax,
    )
    from .network import History, Network

_WHERE = {
    "d_mse": "functions",
    "d_sigmoid": "functions",
    "mse": "functions",
    "sigmoid": "functions",
    "export_onnx": "export",
    "load": "io",
    "Activation": "layers",
    "AvgPool": "layers",
    "MaxPool": "layers",
    "Convolution": "layers",
    "Layer": "layers",
    "Linear": "layers",
    "Reshape": "layers",
    "Softmax": "layers",
    "History": "network",
    "Network": "network",
    "relu": "functions",
    "d_relu": "functions",
    "tanh": "functions",
    "d_tanh": "functions",
    "leaky_relu": "functions",
    "d_leaky_relu": "functions",
    "cross_entropy": "functions",
    "d_cross_entropy": "functions",
    "binary_cross_entropy": "functions",
    "d_binary_cross_entropy": "functions",
}

__all__ = [
    "Activation",
    "AvgPool",
    "Convolution",
    "History",
    "Layer",
    "Linear",
    "MaxPool",
    "Network",
    "Reshape",
    "Softmax",
    "binary_cross_entropy",
    "cross_entropy",
    "d_binary_cross_entropy",
    "d_cross_entropy",
    "d_leaky_relu",
    "d_mse",
    "d_relu",
    "d_sigmoid",
    "d_tanh",
    "export_onnx",
    "leaky_relu",
    "load",
    "mse",
    "relu",
    "sigmoid",
    "tanh",
]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fastcnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
