"""Each Numba kernel against its SciPy/NumPy counterpart (the shared table in ``tests/pairs.py``),
over hypothesis-drawn shapes, in float64 and float32: values and dtypes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import signal

from fastcnn import reference
from fastcnn.kernels import activation, conv, dense
from fastcnn.layers.conv import wide_size

from .pairs import PAIRS
from .support import DTYPES, conv_shapes, seeds, tolerance

# What each op's callables return, in order, so a failure names the quantity that differs.
OUTPUTS = {
    "softmax_cross_entropy": ("loss", "probs", "d_logits"),
    "conv_backward": ("d_input", "filters", "biases"),
    "dense_backward_sgd": ("d_input", "weights", "biases"),
    "conv_gradient_sgd": ("filters", "biases"),
    "dense_sgd": ("weights", "biases"),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", sorted(PAIRS))
@given(shape=conv_shapes())
def test_kernel_matches_reference(op, dtype, shape):
    # Catches a kernel that differs from the seed's SciPy/NumPy expression or dtype for some shape.
    # Two rounds through the same buffers (a second SGD step for the in-place ops) also catch an
    # output that is accumulated into instead of reset.
    reference = PAIRS[op]["reference"](shape, dtype)
    kernel = PAIRS[op]["numba"](shape, dtype)
    names = OUTPUTS.get(op, ("out",))
    for round_ in (1, 2):
        expected = [np.array(a) for a in reference()]
        got = [np.array(a) for a in kernel()]
        assert len(got) == len(expected) == len(names)
        for name, e, g in zip(names, expected, got, strict=True):
            where = f"{op} [{name}], call {round_}, shape {shape}, {np.dtype(dtype).name}"
            assert g.dtype == e.dtype == dtype, f"{where}: dtype {g.dtype} vs reference {e.dtype}"
            assert g.shape == e.shape, f"{where}: shape {g.shape} vs reference {e.shape}"
            np.testing.assert_allclose(g, e, **tolerance(dtype), err_msg=where)


@st.composite
def rectangles(draw):
    """An image (h, w) and a kernel (kh, kw) no larger, the kernel drawn first; a values seed."""
    kh, kw = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    h, w = draw(st.integers(kh, 20)), draw(st.integers(kw, 20))
    return (h, w), (kh, kw), draw(seeds)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=rectangles())
def test_correlate2d_valid_any_kernel(dtype, case):
    # Catches swapped kernel axes (invisible with square filters) or a result depending on `out`.
    # `out` starts as NaN, and the values vary with a drawn seed, unlike the table's fixed ones.
    (h, w), (kh, kw), seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, w)).astype(dtype)
    k = rng.standard_normal((kh, kw)).astype(dtype)
    out = np.full((h - kh + 1, w - kw + 1), np.nan, dtype)
    conv.correlate2d_valid(x, k, out)
    expected = signal.correlate2d(x, k, "valid")
    assert out.dtype == expected.dtype == dtype
    np.testing.assert_allclose(out, expected, **tolerance(dtype), err_msg="correlate2d_valid")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=rectangles())
def test_convolve2d_full_any_kernel(dtype, case):
    # Catches an unflipped (correlating) full convolution, swapped axes, or stale `out` contents.
    (h, w), (kh, kw), seed = case
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((h - kh + 1, w - kw + 1)).astype(dtype)
    k = rng.standard_normal((kh, kw)).astype(dtype)
    out = np.full((h, w), np.nan, dtype)
    conv.convolve2d_full(g, k, out)
    expected = signal.convolve2d(g, k, "full")
    assert out.dtype == expected.dtype == dtype
    np.testing.assert_allclose(out, expected, **tolerance(dtype), err_msg="convolve2d_full")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(shape=conv_shapes(), seed=seeds)
def test_layer_kernels_ignore_out_contents(dtype, shape, seed):
    # Catches a layer kernel that reads its output buffer (`out`, `d_input`) before writing it.
    rng = np.random.default_rng(seed)
    oh, ow = shape.out_hw
    x = rng.uniform(0, 1, (shape.depth, shape.height, shape.width)).astype(dtype)
    filters = rng.standard_normal((shape.count, shape.depth, shape.size, shape.size)).astype(dtype)
    biases = rng.standard_normal((shape.count, oh, ow)).astype(dtype)
    g = rng.standard_normal((shape.count, oh, ow)).astype(dtype)
    tol = tolerance(dtype)

    out = np.full_like(biases, np.nan)
    conv.conv_forward(x, filters, biases, out)
    expected = reference.conv_forward(x, filters, biases)
    np.testing.assert_allclose(out, expected, **tol, err_msg="conv_forward [out]")

    d_input = np.full_like(x, np.nan)
    conv.conv_input_gradient(g, filters, d_input)
    expected = reference.conv_input_gradient(filters, g, x.shape)
    np.testing.assert_allclose(d_input, expected, **tol, err_msg="conv_input_gradient [d_input]")

    n, m = shape.flat, shape.hidden
    weights = rng.standard_normal((m, n)).astype(dtype)
    v = rng.uniform(0, 1, (n, 1)).astype(dtype)
    b = rng.standard_normal((m, 1)).astype(dtype)
    out = np.full_like(b, np.nan)
    dense.dense_forward(weights, v, b, out)
    expected = reference.dense_forward(weights, v, b)
    np.testing.assert_allclose(out, expected, **tol, err_msg="dense_forward [out]")
    dv, gm = np.full_like(v, np.nan), rng.standard_normal((m, 1)).astype(dtype)
    dense.dense_backward_sgd(weights.copy(), b.copy(), v, gm, dtype(0.1), dv)
    expected = reference.dense_gradient(weights, v, gm)[0]
    np.testing.assert_allclose(dv, expected, **tol, err_msg="dense_backward_sgd [d_input]")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sigmoid_kernel_extremes(dtype):
    # Catches a sigmoid kernel giving NaN instead of the seed's 0 and 1 at large |x|, or losing NaN.
    x = np.array([-1e4, -800.0, -100.0, 0.0, 100.0, 800.0, 1e4, np.nan], dtype)
    out = np.empty_like(x)
    activation.sigmoid(x, out)
    with np.errstate(over="ignore"):
        expected = reference.sigmoid(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("side", ["square", "one row", "one column", "wide"])
def test_conv_kernels_every_filter_size(dtype, size, depth, side):
    # Catches the 3 x 3 register path of conv_forward (depth > 1 adds into its own output) and the
    # widened filter gradient of conv_gradient_add (taps in groups of three, then one by one; a zero pad
    # between rows; the last row unpadded) going wrong at a size or edge hypothesis may not draw:
    # one output row or column, and every filter size up to 7 (remainders 0, 1 and 2).
    height, width = {"square": (9, 9), "one row": (size, 11), "one column": (10, size)}.get(
        side, (size + 2, 4 * size + 5)
    )
    rng = np.random.default_rng(size * 10 + depth)
    oh, ow = height - size + 1, width - size + 1
    x = rng.uniform(0, 1, (depth, height, width)).astype(dtype)
    filters = rng.standard_normal((2, depth, size, size)).astype(dtype)
    biases = rng.standard_normal((2, oh, ow)).astype(dtype)
    g = rng.standard_normal((2, oh, ow)).astype(dtype)
    tol = tolerance(dtype)

    out = np.full_like(biases, np.nan)
    conv.conv_forward(x, filters, biases, out)
    expected = reference.conv_forward(x, filters, biases)
    np.testing.assert_allclose(out, expected, **tol, err_msg="conv_forward")

    # Accumulated onto a nonzero start, so a kernel that overwrites instead of adding fails too.
    f, b = filters.copy(), biases.copy()
    wide = np.zeros(wide_size(height, width, size), dtype)
    conv.conv_gradient_add(x, g, f, b, wide)
    d_filters = reference.conv_filters_gradient(x, g, filters.shape)
    np.testing.assert_allclose(f, filters + d_filters, **tol, err_msg="conv_gradient_add [filters]")
    np.testing.assert_allclose(b, biases + g, **tol, err_msg="conv_gradient_add [biases]")
