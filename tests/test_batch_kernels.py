"""The kernels of the mini-batch loop (the batched dense GEMMs, the accumulated convolution
gradients, the loss and the step) against the seed's SciPy/NumPy expressions applied
sample by sample, over hypothesis-drawn shapes and batch sizes, in float64 and float32; and, where
the docstrings promise it, bit for bit against the per-sample kernels."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import signal

from fastcnn import functions
from fastcnn.kernels import activation, blas, conv, dense, losses, sgd
from fastcnn.layers.conv import wide_size

from .conftest import DTYPES, conv_shapes, seeds, tolerance

batches = st.integers(1, 9)
by_dtype = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def draw(rng, dtype, *dims, low=-1.0):
    return rng.uniform(low, 1.0, dims).astype(dtype)


def check(name, got, expected, dtype, **where):
    label = f"{name} ({', '.join(f'{k}={v}' for k, v in where.items())}, {np.dtype(dtype).name})"
    assert got.dtype == dtype, f"{label}: dtype {got.dtype}"
    assert got.shape == expected.shape, f"{label}: shape {got.shape} vs {expected.shape}"
    np.testing.assert_allclose(got, expected, **tolerance(dtype), err_msg=label)


def conv_arrays(shape, batch_size, dtype, seed):
    rng = np.random.default_rng(seed)
    oh, ow = shape.out_hw
    return {
        "xs": draw(rng, dtype, batch_size, shape.depth, shape.height, shape.width, low=0.0),
        "filters": draw(rng, dtype, shape.count, shape.depth, shape.size, shape.size),
        "biases": draw(rng, dtype, shape.count, oh, ow),
        "d_outputs": draw(rng, dtype, batch_size, shape.count, oh, ow),
    }


def conv_gradient_sums(a, batch_size, dtype, d_filters, d_biases):
    """The mini-batch loop's filter and bias sums: each sample's gradient added by
    conv.conv_gradient_add, sample after sample (as kernels/conv.py's batch hook does)."""
    _, height, width = a["xs"].shape[1:]
    wide = np.zeros(wide_size(height, width, a["filters"].shape[2]), dtype)
    for b in range(batch_size):
        conv.conv_gradient_add(a["xs"][b], a["d_outputs"][b], d_filters, d_biases, wide)


@by_dtype
@given(shape=conv_shapes(max_side=12), batch_size=batches, seed=seeds)
def test_conv_gradient_add_accumulates_scipy_sums(dtype, shape, batch_size, seed):
    # Catches a parameter gradient that overwrites instead of accumulating, sums the wrong
    # samples/filters, correlates the wrong way round (x with g vs g with x), or lets one
    # sample's widened gradient leak into the next through the shared scratch.
    a = conv_arrays(shape, batch_size, dtype, seed)
    rng = np.random.default_rng(seed + 1)
    d_filters = draw(rng, dtype, *a["filters"].shape)
    d_biases = draw(rng, dtype, *a["biases"].shape)
    expected_f = d_filters.astype(np.float64)
    expected_b = d_biases.astype(np.float64)
    for b in range(batch_size):
        for i in range(shape.count):
            expected_b[i] += a["d_outputs"][b, i]
            for j in range(shape.depth):
                expected_f[i, j] += signal.correlate2d(a["xs"][b, j], a["d_outputs"][b, i], "valid")
    conv_gradient_sums(a, batch_size, dtype, d_filters, d_biases)
    where = {"shape": shape, "B": batch_size}
    check("conv_gradient_add [d_filters]", d_filters, expected_f.astype(dtype), dtype, **where)
    check("conv_gradient_add [d_biases]", d_biases, expected_b.astype(dtype), dtype, **where)


@by_dtype
@given(shape=conv_shapes(max_side=12), seed=seeds)
def test_conv_gradient_then_step_is_seed_update(dtype, shape, seed):
    # Catches a gradient-then-step that rounds differently from the seed's fused
    # `f - correlate2d(x, g) * rate`: zeroed sums take one sample's gradient exactly (0 + t is t),
    # so one step of it must equal NumPy's step from the same gradient, bit for bit.
    a = conv_arrays(shape, 1, dtype, seed)
    d_filters = np.zeros_like(a["filters"])
    d_biases = np.zeros_like(a["biases"])
    conv_gradient_sums(a, 1, dtype, d_filters, d_biases)
    alone = np.zeros_like(d_filters)
    wide = np.zeros(wide_size(shape.height, shape.width, shape.size), dtype)
    conv.conv_gradient_add(a["xs"][0], a["d_outputs"][0], alone, np.zeros_like(d_biases), wide)
    np.testing.assert_array_equal(d_filters, alone, err_msg="a sum of one vs one gradient")
    np.testing.assert_array_equal(d_biases, a["d_outputs"][0], err_msg="d_biases")
    before = a["filters"].copy()
    expected = before - d_filters * dtype(0.1)
    sgd.sgd_step(before.reshape(-1), d_filters.reshape(-1), 1, 0.1)
    np.testing.assert_array_equal(before, expected, err_msg="sgd_step(count=1)")


@by_dtype
@given(shape=conv_shapes(max_side=12), seed=seeds)
def test_conv_input_gradient_matches_scipy(dtype, shape, seed):
    # Catches an input gradient that correlates instead of convolving, or keeps the stale
    # contents of its output (which starts as NaN here).
    a = conv_arrays(shape, 1, dtype, seed)
    d_input = np.full(a["xs"].shape[1:], np.nan, dtype)
    conv.conv_input_gradient(a["d_outputs"][0], a["filters"], d_input)
    expected = np.zeros(a["xs"].shape[1:], dtype)
    for i in range(shape.count):
        for j in range(shape.depth):
            expected[j] += signal.convolve2d(a["d_outputs"][0, i], a["filters"][i, j], "full")
    check("conv_input_gradient [d_input]", d_input, expected, dtype, shape=shape)


@st.composite
def dense_cases(draw_):
    return draw_(batches), draw_(st.integers(1, 300)), draw_(st.integers(1, 40)), draw_(seeds)


@by_dtype
@given(case=dense_cases())
def test_dense_batch_kernels_match_numpy(dtype, case):
    # Catches a transposed weight matrix in any of the three GEMMs (forward, input gradient,
    # fused weight step), a bias added to the wrong axis, or a bias gradient summed over outputs
    # instead of samples. Each sample is checked against the seed's per-sample expressions.
    batch_size, n, m, seed = case
    rng = np.random.default_rng(seed)
    xs = draw(rng, dtype, batch_size, n, low=0.0)
    weights = draw(rng, dtype, m, n)
    biases = draw(rng, dtype, m, 1)
    d_outputs = draw(rng, dtype, batch_size, m)
    out = np.full((batch_size, m), np.nan, dtype)
    d_inputs = np.full((batch_size, n), np.nan, dtype)
    d_biases = np.full((m, 1), np.nan, dtype)
    scratch = np.full(m * batch_size + 3, np.nan, dtype)  # more than needed: the rest untouched
    dense.dense_forward_batch(xs, weights, biases, out, scratch)
    assert np.isnan(scratch[m * batch_size :]).all()
    dense.dense_input_gradient_batch(d_outputs, weights, d_inputs)
    sum_w = np.zeros((m, n), np.float64)
    sum_b = np.zeros((m, 1), np.float64)
    for b in range(batch_size):
        x, g = xs[b].reshape(n, 1), d_outputs[b].reshape(m, 1)
        check("dense_forward_batch [out]", out[b], (np.dot(weights, x) + biases)[:, 0], dtype, b=b)
        check("dense_input_gradient_batch", d_inputs[b], np.dot(weights.T, g)[:, 0], dtype, b=b)
        sum_w += np.dot(g, x.T)
        sum_b += g
    # The fused step: the weights move by rate times the mean gradient inside the gemm.
    stepped = weights.copy()
    dense.dense_sgd_batch(xs, d_outputs, stepped, d_biases, batch_size, dtype(0.5))
    expected = (weights - sum_w / batch_size * 0.5).astype(dtype)
    check("dense_sgd_batch [weights]", stepped, expected, dtype, B=batch_size)
    check("dense_sgd_batch [d_biases]", d_biases, sum_b.astype(dtype), dtype, B=batch_size)


@numba.njit
def compiled_gemm_update(a, b, c, alpha):
    # gemm_update called from Python is its NumPy twin; the BLAS call exists only compiled.
    blas.gemm_update(a, b, c, alpha)


@by_dtype
@given(
    m=st.integers(1, 40),
    k=st.integers(1, 40),
    n=st.integers(1, 60),
    layouts=st.sampled_from(["CC", "CF", "FC", "FF"]),
    alpha=st.sampled_from([1.0, -0.25, 3]),
    seed=seeds,
)
def test_gemm_update_adds_scaled_product(dtype, m, k, n, layouts, alpha, seed):
    # Catches the BLAS call behind the fused dense step reading an operand with the wrong
    # transpose or leading dimension (a transposed view is F-ordered), replacing c instead of
    # adding to it, or dropping alpha; shapes include 1 and non-square ones.
    rng = np.random.default_rng(seed)

    def operand(rows, cols, layout):
        x = draw(rng, dtype, rows, cols)
        return x if layout == "C" else np.asfortranarray(x)

    a, b = operand(m, k, layouts[0]), operand(k, n, layouts[1])
    c = draw(rng, dtype, m, n)
    expected = c.astype(np.float64) + alpha * (a.astype(np.float64) @ b.astype(np.float64))
    compiled_gemm_update(a, b, c, alpha)
    check("gemm_update", c, expected.astype(dtype), dtype, layouts=layouts)


@by_dtype
@given(batch_size=batches, m=st.integers(1, 30), seed=seeds)
def test_sigmoid_and_mse_over_a_batch(dtype, batch_size, m, seed):
    # Catches the activation kernels treating a (B, n) array as one sample (they flatten any
    # shape), and a batched loss that averages over the batch instead of per sample or uses
    # another d_mse scale than the seed's 2 (p - y) / m.
    rng = np.random.default_rng(seed)
    z = draw(rng, dtype, batch_size, m) * 8
    y = draw(rng, dtype, batch_size, m, low=0.0)
    s = np.full_like(z, np.nan)
    activation.sigmoid(z, s)
    check("sigmoid (B, n)", s, functions.sigmoid(z), dtype, B=batch_size)
    g = draw(rng, dtype, batch_size, m)
    back = np.full_like(z, np.nan)
    activation.sigmoid_backward(z, s, g, back)
    check("sigmoid_backward (B, n)", back, g * functions.d_sigmoid(z), dtype, B=batch_size)
    d_out = np.full_like(s, np.nan)
    for b in range(batch_size):
        loss = losses.mse(s[b], y[b], d_out[b])
        np.testing.assert_allclose(loss, functions.mse(s[b], y[b]), **tolerance(dtype))
        check("mse [d_predicted]", d_out[b], functions.d_mse(s[b], y[b]), dtype, b=b)


@by_dtype
@given(batch_size=batches, n=st.integers(1, 50), rate=st.floats(1e-3, 2.0), seed=seeds)
def test_sgd_step_is_mean_gradient_step(dtype, batch_size, n, rate, seed):
    # Catches an update by the summed (not mean) gradient, a multiply by 1/B (which rounds
    # differently from the oracle's division), or arithmetic promoted to float64 for float32
    # parameters: the result must equal NumPy's `p - (g / B) * rate` exactly, in p's dtype.
    rng = np.random.default_rng(seed)
    params = draw(rng, dtype, 3, n)
    grads = draw(rng, dtype, 3, n) * batch_size
    expected = params - (grads / dtype(batch_size)) * dtype(rate)
    sgd.sgd_step(params.reshape(-1), grads.reshape(-1), batch_size, rate)
    assert params.dtype == dtype
    np.testing.assert_array_equal(params, expected, err_msg=f"sgd_step B={batch_size}")
