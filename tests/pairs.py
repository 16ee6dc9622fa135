"""One table of (reference, numba) implementation pairs, shared by the equivalence tests and the
benchmarks (numbagg's COMPARISONS): ``PAIRS[op][impl](shape, dtype)`` does all setup and returns a
zero-argument callable, so a benchmark times only the operation. Each callable returns a tuple of
arrays, the reference's and the kernel's in the same order.

The reference side is :mod:`fastcnn.reference`, the seed's own SciPy/NumPy expressions that the
layers' ``backend="scipy"`` path runs too; it never calls ``fastcnn.kernels``.
"""

from dataclasses import dataclass

import numpy as np
from scipy import signal

from fastcnn import reference
from fastcnn.kernels import activation, conv, correlate5, dense, pointwise, pool, sgd, softmax
from fastcnn.layers.conv import wide_size


@dataclass(frozen=True)
class Shape:
    depth: int
    height: int
    width: int
    size: int  # filter_size
    count: int  # filter_count
    hidden: int = 100  # the dense layer after the convolution

    @property
    def out_hw(self):
        return self.height - self.size + 1, self.width - self.size + 1

    @property
    def flat(self):
        return self.count * self.out_hw[0] * self.out_hw[1]

    def __str__(self):
        return f"{self.depth}x{self.height}x{self.width}-k{self.size}-n{self.count}"


MNIST = Shape(1, 28, 28, 3, 5)
LARGE = Shape(3, 64, 64, 5, 16)
RATE = 0.1


def arrays(shape, dtype, seed=0):
    """Inputs, parameters and output gradients of one convolution + dense pair, in ``dtype``."""
    rng = np.random.default_rng(seed)
    oh, ow = shape.out_hw

    def draw(*dims, low=-1.0):
        return rng.uniform(low, 1.0, dims).astype(dtype)

    return {
        "x": draw(shape.depth, shape.height, shape.width, low=0.0),
        "filters": draw(shape.count, shape.depth, shape.size, shape.size),
        "conv_biases": draw(shape.count, oh, ow),
        "conv_d_output": draw(shape.count, oh, ow),
        "v": draw(shape.flat, 1, low=0.0),
        "weights": draw(shape.hidden, shape.flat),
        "biases": draw(shape.hidden, 1),
        "d_output": draw(shape.hidden, 1),
    }


def _copies(a, *names):
    return [a[n].copy() for n in names]


def correlate_reference(shape, dtype):
    a = arrays(shape, dtype)
    x, k = a["x"][0], a["filters"][0, 0]
    return lambda: (signal.correlate2d(x, k, "valid"),)


def correlate_numba(shape, dtype):
    a = arrays(shape, dtype)
    x, k = a["x"][0], a["filters"][0, 0]
    out = np.empty(shape.out_hw, dtype)
    return lambda: (conv.correlate2d_valid(x, k, out), out)[1:]


def convolve_reference(shape, dtype):
    a = arrays(shape, dtype)
    g, k = a["conv_d_output"][0], a["filters"][0, 0]
    return lambda: (signal.convolve2d(g, k, "full"),)


def convolve_numba(shape, dtype):
    a = arrays(shape, dtype)
    g, k = a["conv_d_output"][0], a["filters"][0, 0]
    out = np.empty((shape.height, shape.width), dtype)
    return lambda: (conv.convolve2d_full(g, k, out), out)[1:]


def conv_forward_reference(shape, dtype):
    a = arrays(shape, dtype)
    x, filters, biases = a["x"], a["filters"], a["conv_biases"]

    return lambda: (reference.conv_forward(x, filters, biases),)


def conv_forward_numba(shape, dtype):
    a = arrays(shape, dtype)
    out = np.empty_like(a["conv_biases"])
    return lambda: (conv.conv_forward(a["x"], a["filters"], a["conv_biases"], out), out)[1:]


def conv_backward_reference(shape, dtype):
    a = arrays(shape, dtype)
    x, g = a["x"], a["conv_d_output"]
    filters, biases = _copies(a, "filters", "conv_biases")

    def run():
        d_input, d_filters = reference.conv_gradient(x, filters, g)
        reference.sgd_update(filters, d_filters, dtype(RATE))
        reference.sgd_update(biases, g, dtype(RATE))
        return d_input, filters, biases

    return run


def conv_backward_numba(shape, dtype):
    a = arrays(shape, dtype)
    x, g = a["x"], a["conv_d_output"]
    filters, biases = _copies(a, "filters", "conv_biases")
    d_input = np.empty_like(x)

    wide = np.zeros(wide_size(x.shape[1], x.shape[2], filters.shape[2]), dtype)
    d_filters, d_biases = np.empty_like(filters), np.empty_like(biases)

    def run():
        # What the per-layer path and the compiled loops do: the input gradient from the filters
        # as they were, the parameters' gradients, then the step.
        conv.conv_input_gradient(g, filters, d_input)
        d_filters[...], d_biases[...] = 0, 0
        conv.conv_gradient_add(x, g, d_filters, d_biases, wide)
        sgd.sgd_step(filters.reshape(-1), d_filters.reshape(-1), 1, dtype(RATE))
        sgd.sgd_step(biases.reshape(-1), d_biases.reshape(-1), 1, dtype(RATE))
        return d_input, filters, biases

    return run


def dense_forward_reference(shape, dtype):
    a = arrays(shape, dtype)
    return lambda: (reference.dense_forward(a["weights"], a["v"], a["biases"]),)


def dense_forward_numba(shape, dtype):
    a = arrays(shape, dtype)
    out = np.empty_like(a["biases"])
    return lambda: (dense.dense_forward(a["weights"], a["v"], a["biases"], out), out)[1:]


def dense_backward_reference(shape, dtype):
    a = arrays(shape, dtype)
    v, g = a["v"], a["d_output"]
    weights, biases = _copies(a, "weights", "biases")

    def run():
        d_input, d_weights = reference.dense_gradient(weights, v, g)
        reference.sgd_update(weights, d_weights, dtype(RATE))
        reference.sgd_update(biases, g, dtype(RATE))
        return d_input, weights, biases

    return run


def dense_backward_numba(shape, dtype):
    a = arrays(shape, dtype)
    v, g = a["v"], a["d_output"]
    weights, biases = _copies(a, "weights", "biases")
    d_input = np.empty_like(v)

    def run():
        dense.dense_backward_sgd(weights, biases, v, g, dtype(RATE), d_input)
        return d_input, weights, biases

    return run


def conv_sgd_reference(shape, dtype):
    a = arrays(shape, dtype)
    x, g = a["x"], a["conv_d_output"]
    filters, biases = _copies(a, "filters", "conv_biases")

    def run():
        d_filters = reference.conv_filters_gradient(x, g, filters.shape)
        reference.sgd_update(filters, d_filters, dtype(RATE))
        reference.sgd_update(biases, g, dtype(RATE))
        return filters, biases

    return run


def conv_sgd_numba(shape, dtype):
    # The first layer's update in a compiled network: no input gradient.
    a = arrays(shape, dtype)
    x, g = a["x"], a["conv_d_output"]
    filters, biases = _copies(a, "filters", "conv_biases")
    wide = np.zeros(wide_size(x.shape[1], x.shape[2], filters.shape[2]), dtype)
    d_filters, d_biases = np.empty_like(filters), np.empty_like(biases)

    def run():
        d_filters[...], d_biases[...] = 0, 0
        conv.conv_gradient_add(x, g, d_filters, d_biases, wide)
        sgd.sgd_step(filters.reshape(-1), d_filters.reshape(-1), 1, dtype(RATE))
        sgd.sgd_step(biases.reshape(-1), d_biases.reshape(-1), 1, dtype(RATE))
        return filters, biases

    return run


def dense_sgd_reference(shape, dtype):
    a = arrays(shape, dtype)
    v, g = a["v"], a["d_output"]
    weights, biases = _copies(a, "weights", "biases")

    def run():
        reference.sgd_update(weights, reference.dense_weights_gradient(v, g), dtype(RATE))
        reference.sgd_update(biases, g, dtype(RATE))
        return weights, biases

    return run


def dense_sgd_numba(shape, dtype):
    # The first layer's update in a compiled network: no input gradient.
    a = arrays(shape, dtype)
    v, g = a["v"], a["d_output"]
    weights, biases = _copies(a, "weights", "biases")

    def run():
        dense.dense_sgd(weights, biases, v, g, dtype(RATE))
        return weights, biases

    return run


def sigmoid_reference(shape, dtype):
    v = arrays(shape, dtype)["v"] * dtype(8) - dtype(4)
    return lambda: (reference.sigmoid(v),)


def sigmoid_numba(shape, dtype):
    v = arrays(shape, dtype)["v"] * dtype(8) - dtype(4)
    out = np.empty_like(v)
    return lambda: (activation.sigmoid(v, out), out)[1:]


def sigmoid_backward_reference(shape, dtype):
    a = arrays(shape, dtype)
    v = a["v"] * dtype(8) - dtype(4)
    g = a["v"] - dtype(0.5)
    return lambda: (reference.activation_backward(g, reference.d_sigmoid, v),)


def sigmoid_backward_numba(shape, dtype):
    a = arrays(shape, dtype)
    v = a["v"] * dtype(8) - dtype(4)
    g = a["v"] - dtype(0.5)
    s, out = np.empty_like(v), np.empty_like(v)

    def run():
        # The layer keeps sigmoid's forward output; the time of that forward is sigmoid's row.
        activation.sigmoid(v, s)
        activation.sigmoid_backward(v, s, g, out)
        return (out,)

    return run


# --------------------------------------------------------------------------------------------------
# issue 17's kernels: activations on the dense layer's input vector, Softmax with cross-entropy on
# the dense layer's output, pooling on the convolution's output, the 5 x 5 correlation.


def _activation_input(shape, dtype):
    a = arrays(shape, dtype)
    return a["v"] * dtype(8) - dtype(4), a["v"] - dtype(0.5)


def _pointwise_pair(name):
    function = getattr(reference, name)
    backward = getattr(reference, f"{name}_backward")
    kernel = getattr(pointwise, name)
    kernel_backward = getattr(pointwise, f"{name}_backward")

    def forward_reference(shape, dtype):
        v, _ = _activation_input(shape, dtype)
        return lambda: (function(v),)

    def forward_numba(shape, dtype):
        v, _ = _activation_input(shape, dtype)
        out = np.empty_like(v)
        return lambda: (kernel(v, out), out)[1:]

    def backward_reference(shape, dtype):
        v, g = _activation_input(shape, dtype)
        return lambda: (backward(v, g),)

    def backward_numba(shape, dtype):
        v, g = _activation_input(shape, dtype)
        y, out = np.empty_like(v), np.empty_like(v)
        kernel(v, y)  # the layer keeps its forward output; the forward's time is its own row

        return lambda: (kernel_backward(v, y, g, out), out)[1:]

    return (
        {"reference": forward_reference, "numba": forward_numba},
        {"reference": backward_reference, "numba": backward_numba},
    )


def _logits(shape, dtype):
    a = arrays(shape, dtype)
    logits = a["d_output"] * dtype(10)
    target = np.zeros_like(logits)
    target[shape.hidden // 2] = 1
    return logits, target


def softmax_cross_entropy_reference(shape, dtype):
    logits, target = _logits(shape, dtype)

    def run():
        s = reference.softmax_layer_forward(logits)
        loss = reference.cross_entropy(s, target)
        d_logits = reference.softmax_layer_backward(s, reference.d_cross_entropy(s, target))
        return np.asarray(loss, dtype), np.asarray(s), d_logits

    return run


def softmax_cross_entropy_numba(shape, dtype):
    logits, target = _logits(shape, dtype)
    x, y = logits.reshape(-1), target.reshape(-1)
    probs, d_logits = np.empty_like(logits), np.empty_like(logits)

    def run():
        loss = softmax.softmax_cross_entropy(x, y, probs.reshape(-1), d_logits.reshape(-1))
        return np.asarray(loss, dtype), probs, d_logits

    return run


def _pool_size(shape):
    return 2 if min(shape.out_hw) >= 2 else 1


def _pool_pair(kind):
    forward = getattr(reference, f"{kind}pool_forward")
    backward = getattr(reference, f"{kind}pool_backward")
    kernel = getattr(pool, f"{kind}pool_forward")
    kernel_backward = getattr(pool, f"{kind}pool_backward")

    def setup(shape, dtype):
        a = arrays(shape, dtype)
        x = a["conv_d_output"]  # (count, oh, ow), values in [-1, 1]
        size = _pool_size(shape)
        g = np.ones(reference.pool_output_shape(x.shape, size, size), dtype)
        return x, g, size

    def forward_reference(shape, dtype):
        x, _, size = setup(shape, dtype)
        return lambda: (forward(x, size, size),)

    def forward_numba(shape, dtype):
        x, g, size = setup(shape, dtype)
        out = np.empty_like(g)
        return lambda: (kernel(x, size, size, out), out)[1:]

    def backward_reference(shape, dtype):
        x, g, size = setup(shape, dtype)
        return lambda: (backward(x, g, size, size),)

    def backward_numba(shape, dtype):
        x, g, size = setup(shape, dtype)
        d_input = np.empty_like(x)
        return lambda: (kernel_backward(x, g, size, size, d_input), d_input)[1:]

    return (
        {"reference": forward_reference, "numba": forward_numba},
        {"reference": backward_reference, "numba": backward_numba},
    )


def _correlate5_arrays(shape, dtype):
    # The image padded by 2 (LeNet's first layer), so any table shape takes a 5 x 5 filter.
    a = arrays(shape, dtype)
    x = reference.pad(a["x"][:1], 2)[0]
    k = np.random.default_rng(5).uniform(-1.0, 1.0, (5, 5)).astype(dtype)
    base = a["x"][0] - dtype(0.5)
    return x, k, base


def correlate5_reference(shape, dtype):
    x, k, base = _correlate5_arrays(shape, dtype)
    return lambda: (base + signal.correlate2d(x, k, "valid"),)


def correlate5_numba(shape, dtype):
    x, k, base = _correlate5_arrays(shape, dtype)
    out = np.empty_like(base)
    return lambda: (correlate5.correlate5_rows(x, k, base, out), out)[1:]


_RELU, _RELU_BACKWARD = _pointwise_pair("relu")
_TANH, _TANH_BACKWARD = _pointwise_pair("tanh")
_LEAKY, _LEAKY_BACKWARD = _pointwise_pair("leaky_relu")
_MAXPOOL, _MAXPOOL_BACKWARD = _pool_pair("max")
_AVGPOOL, _AVGPOOL_BACKWARD = _pool_pair("avg")


PAIRS = {
    "correlate2d_valid": {"reference": correlate_reference, "numba": correlate_numba},
    "convolve2d_full": {"reference": convolve_reference, "numba": convolve_numba},
    "conv_forward": {"reference": conv_forward_reference, "numba": conv_forward_numba},
    "conv_backward": {"reference": conv_backward_reference, "numba": conv_backward_numba},
    "dense_forward": {"reference": dense_forward_reference, "numba": dense_forward_numba},
    "dense_backward_sgd": {"reference": dense_backward_reference, "numba": dense_backward_numba},
    "conv_gradient_sgd": {"reference": conv_sgd_reference, "numba": conv_sgd_numba},
    "dense_sgd": {"reference": dense_sgd_reference, "numba": dense_sgd_numba},
    "sigmoid": {"reference": sigmoid_reference, "numba": sigmoid_numba},
    "sigmoid_backward": {"reference": sigmoid_backward_reference, "numba": sigmoid_backward_numba},
    "relu": _RELU,
    "relu_backward": _RELU_BACKWARD,
    "tanh": _TANH,
    "tanh_backward": _TANH_BACKWARD,
    "leaky_relu": _LEAKY,
    "leaky_relu_backward": _LEAKY_BACKWARD,
    "softmax_cross_entropy": {
        "reference": softmax_cross_entropy_reference,
        "numba": softmax_cross_entropy_numba,
    },
    "maxpool_forward": _MAXPOOL,
    "maxpool_backward": _MAXPOOL_BACKWARD,
    "avgpool_forward": _AVGPOOL,
    "avgpool_backward": _AVGPOOL_BACKWARD,
    "correlate5_rows": {"reference": correlate5_reference, "numba": correlate5_numba},
}
