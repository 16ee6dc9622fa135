"""One ``forward_prop`` + ``backward_prop`` of each computing layer, ``backend="scipy"`` against the
Numba default, with the weights and data of ``tests.pairs.arrays`` injected into both."""

import numpy as np
import pytest

from bench import describe
from fastcnn import Activation, Convolution, Linear, d_sigmoid, sigmoid
from tests.pairs import LARGE, MNIST, RATE, arrays

SHAPES = {"MNIST": MNIST, "LARGE": LARGE}
DTYPES = {"float64": np.float64, "float32": np.float32}
BACKEND = {"reference": "scipy", "numba": "numba"}


def convolution(shape, dtype, backend):
    a = arrays(shape, dtype)
    layer = Convolution(
        (shape.depth, shape.height, shape.width),
        shape.size,
        shape.count,
        backend=backend,
        dtype=dtype,
        rng=0,
    )
    layer.filters[...] = a["filters"]
    layer.biases[...] = a["conv_biases"]
    return layer, a["x"], a["conv_d_output"], lambda: (layer.filters, layer.biases)


def linear(shape, dtype, backend):
    a = arrays(shape, dtype)
    layer = Linear(shape.flat, shape.hidden, backend=backend, dtype=dtype, rng=0)
    layer.weights[...] = a["weights"]
    layer.biases[...] = a["biases"]
    return layer, a["v"], a["d_output"], lambda: (layer.weights, layer.biases)


def activation(shape, dtype, backend):
    # The seed's sigmoid after the convolution, on its output shape; inputs span [-4, 4].
    a = arrays(shape, dtype)
    layer = Activation(sigmoid, d_sigmoid, backend=backend)
    return layer, a["conv_d_output"] * dtype(4), a["conv_biases"], lambda: ()


LAYERS = {"Convolution": convolution, "Linear": linear, "Activation": activation}
LABELS = {
    "Convolution": ("output", "d_input", "filters", "biases"),
    "Linear": ("output", "d_input", "weights", "biases"),
    "Activation": ("output", "d_input"),
}


def step(layer, x, g, params):
    """The timed callable: one forward and one backward with the SGD update."""

    def run():
        output = layer.forward_prop(x)
        d_input = layer.backward_prop(g, RATE)
        return (output, d_input, *params())

    return run


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", ["reference", "numba"])
@pytest.mark.parametrize("name", LAYERS)
def test_layer(benchmark, assert_close, name, impl, shape, dtype):
    # Catches a layer that is fast but wrong: output, d_input and updated parameters of the first
    # step (also the JIT warm-up) must match the float64 SciPy layer before it is timed.
    fn = step(*LAYERS[name](SHAPES[shape], DTYPES[dtype], BACKEND[impl]))
    first = tuple(np.copy(r) for r in fn())
    want = step(*LAYERS[name](SHAPES[shape], np.float64, "scipy"))()
    assert_close(first, want, dtype, LABELS[name], f"{name} {impl} {shape} {dtype}")
    describe(
        benchmark,
        f"layer {name}|{shape}|{dtype}",
        op=f"layer {name}",
        impl=impl,
        shape=shape,
        dims=str(SHAPES[shape]),
        dtype=dtype,
        kind="layer",
    )
    benchmark(fn)
