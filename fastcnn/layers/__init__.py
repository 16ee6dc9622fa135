"""The seed's layers, one module per kind, each registered once (:mod:`fastcnn.registry`).

Each computing layer runs on one of two paths, chosen by ``backend``:

* ``"scipy"``: the seed's own NumPy/SciPy lines, kept verbatim in :mod:`fastcnn.reference` (the
  oracle of the tests, which call the same functions); it never calls ``fastcnn.kernels``, or the
  oracle would share a kernel's bug.
* ``"numba"`` (default): the same arithmetic in the Numba kernels of ``fastcnn.kernels``.

A layer describes itself (see :mod:`fastcnn.layers.base`), so the model files, the compiled loops
and the tests loop over layers and ask them. A new kind is one module: its class (registered with
:func:`fastcnn.registry.register_layer`), its reference maths, its kernels and hooks, and one
:func:`fastcnn.registry.register_kind` (or, for an element-wise activation,
:func:`fastcnn.registry.register_activation`); ``tests/test_registry.py`` adds two from outside the
package.
"""

from ..registry import ACTIVATIONS, LAYERS
from .base import Compiled, ComputeLayer, Layer, _ComputeLayer

# The order of registration is the order model-file messages list the types in.
# isort: split
from .conv import Convolution

# isort: split
from .dense import Linear

# isort: split
from .activation import Activation

# isort: split
from .reshape import Reshape

# isort: split
from .pool import AvgPool, MaxPool

# isort: split
from .softmax import Softmax

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "Activation",
    "AvgPool",
    "Compiled",
    "ComputeLayer",
    "Convolution",
    "Layer",
    "Linear",
    "MaxPool",
    "Reshape",
    "Softmax",
    "_ComputeLayer",
]
