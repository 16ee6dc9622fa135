"""Networks with every layer kind, for the interop tests (test_onnx.py, test_interop.py)."""

import numpy as np

from fastcnn import Activation, Convolution, Linear, Network, Reshape, d_sigmoid, sigmoid
from fastcnn.models import mnist_cnn


def every_kind(dtype, rng=0):
    """Every layer kind in every position a converter has to handle: a Reshape first (to a
    3-D shape), a convolution of depth 2 on a non-square image (catches swapped axes), a Linear
    fed by a Reshape to a column, a Reshape from a column back to 3-D, and a convolution last
    (its output flattened)."""
    rng = np.random.RandomState(rng)
    options = dict(dtype=dtype, rng=rng, init="xavier")
    layers = [
        Reshape((2, 7, 9), (2, 7, 9)),
        Convolution((2, 7, 9), 3, 4, **options),
        Activation(sigmoid, d_sigmoid),
        Reshape((4, 5, 7), (140, 1)),
        Linear(140, 48, **options),
        Activation(sigmoid, d_sigmoid),
        Reshape((48, 1), (3, 4, 4)),
        Convolution((3, 4, 4), 2, 2, **options),
    ]
    for layer in layers:  # nonzero biases, so a dropped or misplaced bias shows
        for name, array in layer.named_parameters().items():
            if name == "biases":
                array[...] = rng.randn(*array.shape)
    return Network(layers)


def dense_only(dtype):
    """A dense network: its input (N, 2, 1) is the notebook's column vector."""
    rng = np.random.RandomState(1)
    return Network(
        [
            Linear(2, 3, dtype=dtype, rng=rng),
            Activation(sigmoid, d_sigmoid),
            Linear(3, 1, dtype=dtype, rng=rng),
            Activation(sigmoid, d_sigmoid),
        ]
    )


NETWORKS = {
    "mnist_cnn notebook init": lambda dtype: mnist_cnn(dtype=dtype, rng=0),
    "mnist_cnn xavier init": lambda dtype: mnist_cnn(dtype=dtype, rng=3, init="xavier"),
    "every layer kind": every_kind,
    "dense only": dense_only,
}
