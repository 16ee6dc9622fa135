"""Networks with every layer kind, for the interop tests (test_onnx*.py, test_interop*.py)."""

import numpy as np

from fastcnn import Activation, Convolution, Linear, Network, Reshape, d_sigmoid, sigmoid
from fastcnn.layers import AvgPool, MaxPool, Softmax
from fastcnn.models import lenet, mnist_cnn
from fastcnn.registry import ACTIVATIONS


def activation(name, **options):
    """The registered activation ``name`` as a layer, e.g. ``activation("relu")``."""
    entry = ACTIVATIONS[name]
    return Activation(entry.function, entry.derivative, **options)


def random_biases(layers, rng):
    """Nonzero biases, so a dropped or misplaced bias shows."""
    for layer in layers:
        for name, array in layer.named_parameters().items():
            if name == "biases":
                array[...] = rng.randn(*array.shape)


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
    random_biases(layers, rng)
    return Network(layers)


def pools_and_activations(dtype, rng=0):
    """Both pools and the activations in the places their converters must handle: a pool first
    (the network's input shape comes from it), overlapping windows (stride < size) on an odd
    size, windows with gaps between them (stride > size), a pool fed by a Reshape from a column
    and a pool last (its output flattened); non-square images catch swapped axes."""
    rng = np.random.RandomState(rng)
    options = dict(dtype=dtype, rng=rng, init="xavier")
    layers = [
        MaxPool((2, 17, 16), 2, stride=1),
        Convolution((2, 16, 15), 3, 4, **options),
        activation("relu"),
        MaxPool((4, 14, 13), 3, stride=2),
        activation("tanh"),
        AvgPool((4, 6, 6), 2, stride=3),
        Reshape((4, 2, 2), (16, 1)),
        Linear(16, 18, **options),
        activation("leaky_relu"),
        Reshape((18, 1), (2, 3, 3)),
        AvgPool((2, 3, 3), 2, stride=1),
        activation("sigmoid"),
    ]
    random_biases(layers, rng)
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


def softmax_classifier(dtype, rng=0):
    """A small classifier: a convolution, ReLU, max-pool and Linear layer whose logits (large:
    the notebook's randn init) a Softmax turns into probabilities; a Softmax in the middle too."""
    rng = np.random.RandomState(rng)
    options = dict(dtype=dtype, rng=rng)
    layers = [
        Convolution((1, 9, 8), 3, 3, **options),
        activation("relu"),
        MaxPool((3, 7, 6), 2),
        Reshape((3, 3, 3), (27, 1)),
        Linear(27, 12, **options),
        Softmax(),
        Linear(12, 6, **options),
        Softmax(),
    ]
    return Network(layers)


def lenet_random_biases(dtype):
    """LeNet-5 with random biases (its he init makes them zero, which would hide a lost bias)."""
    network = lenet(dtype=dtype, rng=5)
    random_biases(network.layers, np.random.RandomState(6))
    return network


NETWORKS = {
    "mnist_cnn notebook init": lambda dtype: mnist_cnn(dtype=dtype, rng=0),
    "mnist_cnn xavier init": lambda dtype: mnist_cnn(dtype=dtype, rng=3, init="xavier"),
    "every layer kind": every_kind,
    "pools and activations": pools_and_activations,
    "softmax classifier": softmax_classifier,
    "lenet": lambda dtype: lenet(dtype=dtype, rng=0),
    "lenet random biases": lenet_random_biases,
    "dense only": dense_only,
}
