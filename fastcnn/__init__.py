"""fastcnn: the from-scratch CNN notebook's API (Layer, Linear, Activation, Convolution, Reshape,
Network, sigmoid, mse) with the same numbers, on Numba kernels; ``backend="scipy"`` runs the
notebook's own NumPy/SciPy code instead."""

from .functions import d_mse, d_sigmoid, mse, sigmoid
from .io import load
from .layers import Activation, Convolution, Layer, Linear, Reshape
from .network import History, Network

__all__ = [
    "Activation",
    "Convolution",
    "History",
    "Layer",
    "Linear",
    "Network",
    "Reshape",
    "d_mse",
    "d_sigmoid",
    "load",
    "mse",
    "sigmoid",
]
__version__ = "0.1.0"
