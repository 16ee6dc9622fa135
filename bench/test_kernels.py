"""Each kernel of ``tests.pairs.PAIRS`` against its SciPy/NumPy reference, at MNIST and LARGE sizes,
in float64 and float32. One group per ``op|shape|dtype`` holds both paths of one run."""

import numpy as np
import pytest

from bench import describe
from tests.pairs import LARGE, MNIST, PAIRS

SHAPES = {"MNIST": MNIST, "LARGE": LARGE}
DTYPES = {"float64": np.float64, "float32": np.float32}
# What each pair's callable returns, in order, for failure messages.
LABELS = {
    "softmax_cross_entropy": ("loss", "probs", "d_logits"),
    "conv_backward": ("d_input", "filters", "biases"),
    "dense_backward_sgd": ("d_input", "weights", "biases"),
    "conv_gradient_sgd": ("filters", "biases"),
    "dense_sgd": ("weights", "biases"),
}

_expected = {}


def expected(op, shape):
    """The float64 reference's result of one fresh call (backward ops update state on each call)."""
    if (op, shape) not in _expected:
        run = PAIRS[op]["reference"](SHAPES[shape], np.float64)
        _expected[op, shape] = tuple(np.copy(a) for a in run())
    return _expected[op, shape]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("impl", ["reference", "numba"])
@pytest.mark.parametrize("op", PAIRS)
def test_kernel(benchmark, assert_close, op, impl, shape, dtype):
    # Catches a kernel that is fast but wrong: its first call (also the JIT warm-up) must match
    # the float64 reference before it is timed.
    fn = PAIRS[op][impl](SHAPES[shape], DTYPES[dtype])
    first = tuple(np.copy(a) for a in fn())
    assert_close(
        first,
        expected(op, shape),
        dtype,
        LABELS.get(op, ("output",)),
        f"{op} {impl} {shape} {dtype}",
    )
    describe(
        benchmark,
        f"{op}|{shape}|{dtype}",
        op=op,
        impl=impl,
        shape=shape,
        dims=str(SHAPES[shape]),
        dtype=dtype,
        kind="kernel",
    )
    benchmark(fn)
