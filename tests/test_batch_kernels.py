"""The mini-batch kernels (``kernels/batch.py``) against the seed's SciPy/NumPy expressions applied
sample by sample, over hypothesis-drawn shapes and batch sizes, in float64 and float32; and, where
the docstrings promise it, bit for bit against the per-sample kernels."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import signal

from fastcnn import functions
from fastcnn.kernels import activation, batch, blas, conv, gradient

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


@by_dtype
@given(shape=conv_shapes(max_side=12), batch_size=batches, seed=seeds)
def test_conv_forward_batch_matches_scipy(dtype, shape, batch_size, seed):
    # Catches a batched forward that mixes samples (wrong batch index), drops the biases, or
    # correlates with an unflipped/transposed filter; and any sample differing in its last bits
    # from the per-sample kernel, which B = 1 training relies on to stay the same numbers.
    a = conv_arrays(shape, batch_size, dtype, seed)
    out = np.full((batch_size, shape.count, *shape.out_hw), np.nan, dtype)
    batch.conv_forward_batch(a["xs"], a["filters"], a["biases"], out)
    for b in range(batch_size):
        expected = a["biases"].copy()
        for i in range(shape.count):
            for j in range(shape.depth):
                expected[i] += signal.correlate2d(a["xs"][b, j], a["filters"][i, j], "valid")
        check("conv_forward_batch [out]", out[b], expected, dtype, shape=shape, b=b)
        single = np.empty_like(out[b])
        conv.conv_forward(a["xs"][b], a["filters"], a["biases"], single)
        np.testing.assert_array_equal(out[b], single, err_msg=f"sample {b} vs conv_forward")


@by_dtype
@given(shape=conv_shapes(max_side=12), batch_size=batches, seed=seeds)
def test_conv_gradient_batch_accumulates_scipy_sums(dtype, shape, batch_size, seed):
    # Catches a parameter gradient that overwrites instead of accumulating, sums the wrong
    # samples/filters, or correlates the wrong way round (x with g vs g with x).
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
    batch.conv_gradient_batch(a["xs"], a["d_outputs"], d_filters, d_biases)
    check(
        "conv_gradient_batch [d_filters]",
        d_filters,
        expected_f.astype(dtype),
        dtype,
        shape=shape,
        B=batch_size,
    )
    check(
        "conv_gradient_batch [d_biases]",
        d_biases,
        expected_b.astype(dtype),
        dtype,
        shape=shape,
        B=batch_size,
    )


@by_dtype
@given(shape=conv_shapes(max_side=12), seed=seeds)
def test_conv_gradient_batch_of_one_is_conv_sgd_gradient(dtype, shape, seed):
    # Catches a batch-of-one gradient whose sums run in another order than conv_sgd's, which
    # would make B = 1 training drift from today's per-sample path in the last bits.
    a = conv_arrays(shape, 1, dtype, seed)
    d_filters = np.zeros_like(a["filters"])
    d_biases = np.zeros_like(a["biases"])
    batch.conv_gradient_batch(a["xs"], a["d_outputs"], d_filters, d_biases)
    # conv_sgd from zero parameters with rate 1 leaves exactly minus the gradient it applies.
    filters = np.zeros_like(a["filters"])
    biases = np.zeros_like(a["biases"])
    conv.conv_sgd(a["xs"][0], filters, biases, a["d_outputs"][0], dtype(1))
    np.testing.assert_array_equal(d_filters, -filters, err_msg="d_filters vs conv_sgd")
    np.testing.assert_array_equal(d_biases, -biases, err_msg="d_biases vs conv_sgd")
    # And one step from the batch gradient equals conv_sgd's step.
    before = a["filters"].copy()
    expected = before.copy()
    conv.conv_sgd(a["xs"][0], expected, a["biases"].copy(), a["d_outputs"][0], dtype(0.1))
    d_filters[:] = 0
    batch.conv_gradient_batch(a["xs"], a["d_outputs"], d_filters, np.zeros_like(d_biases))
    batch.sgd_apply(before, d_filters, 1, 0.1)
    np.testing.assert_array_equal(before, expected, err_msg="sgd_apply(count=1) vs conv_sgd")


@by_dtype
@given(shape=conv_shapes(max_side=12), batch_size=batches, seed=seeds)
def test_conv_gradient_batch_is_running_sum_of_conv_backward(dtype, shape, batch_size, seed):
    # Catches the three filter-gradient kernels (batch.conv_gradient_batch, conv.conv_sgd,
    # gradient.conv_backward) drifting apart: they share one summation helper, so the batch's
    # sums are the per-sample gradients of gradient.conv_backward added one after the other, bit
    # for bit, whatever the filter size (the helper sums taps three at a time, then the rest).
    a = conv_arrays(shape, batch_size, dtype, seed)
    d_filters = np.zeros_like(a["filters"])
    batch.conv_gradient_batch(a["xs"], a["d_outputs"], d_filters, np.zeros_like(a["biases"]))
    expected = np.zeros_like(d_filters)
    single = np.empty_like(d_filters)
    d_input = np.empty(a["xs"].shape[1:], dtype)
    for b in range(batch_size):
        gradient.conv_backward(a["xs"][b], a["filters"], a["d_outputs"][b], single, d_input)
        expected += single
    np.testing.assert_array_equal(
        d_filters, expected, err_msg="conv_gradient_batch vs conv_backward"
    )


@by_dtype
@given(shape=conv_shapes(max_side=12), batch_size=batches, seed=seeds)
def test_conv_input_gradient_batch_matches_scipy(dtype, shape, batch_size, seed):
    # Catches an input gradient that correlates instead of convolving, mixes samples, or keeps
    # the stale contents of its output (which starts as NaN here).
    a = conv_arrays(shape, batch_size, dtype, seed)
    d_inputs = np.full(a["xs"].shape, np.nan, dtype)
    batch.conv_input_gradient_batch(a["d_outputs"], a["filters"], d_inputs)
    for b in range(batch_size):
        expected = np.zeros(a["xs"].shape[1:], dtype)
        for i in range(shape.count):
            for j in range(shape.depth):
                expected[j] += signal.convolve2d(a["d_outputs"][b, i], a["filters"][i, j], "full")
        check(
            "conv_input_gradient_batch [d_inputs]", d_inputs[b], expected, dtype, shape=shape, b=b
        )
        single = np.empty_like(d_inputs[b])
        f, bias = a["filters"].copy(), a["biases"].copy()
        conv.conv_backward_sgd(a["xs"][b], f, bias, a["d_outputs"][b], dtype(0), single)
        np.testing.assert_array_equal(
            d_inputs[b], single, err_msg=f"sample {b} vs conv_backward_sgd"
        )


@st.composite
def dense_cases(draw_):
    return draw_(batches), draw_(st.integers(1, 300)), draw_(st.integers(1, 40)), draw_(seeds)


@by_dtype
@given(case=dense_cases())
def test_dense_batch_kernels_match_numpy(dtype, case):
    # Catches a transposed weight matrix in any of the three GEMMs (forward, input gradient,
    # weight gradient), a bias added to the wrong axis, or a bias gradient summed over outputs
    # instead of samples. Each sample is checked against the seed's per-sample expressions.
    batch_size, n, m, seed = case
    rng = np.random.default_rng(seed)
    xs = draw(rng, dtype, batch_size, n, low=0.0)
    weights = draw(rng, dtype, m, n)
    biases = draw(rng, dtype, m, 1)
    d_outputs = draw(rng, dtype, batch_size, m)
    out = np.full((batch_size, m), np.nan, dtype)
    d_inputs = np.full((batch_size, n), np.nan, dtype)
    d_weights = np.full((m, n), np.nan, dtype)
    d_biases = np.full((m, 1), np.nan, dtype)
    batch.dense_forward_batch(xs, weights, biases, out)
    batch.dense_input_gradient_batch(d_outputs, weights, d_inputs)
    batch.dense_gradient_batch(xs, d_outputs, d_weights, d_biases)
    sum_w = np.zeros((m, n), np.float64)
    sum_b = np.zeros((m, 1), np.float64)
    for b in range(batch_size):
        x, g = xs[b].reshape(n, 1), d_outputs[b].reshape(m, 1)
        check("dense_forward_batch [out]", out[b], (np.dot(weights, x) + biases)[:, 0], dtype, b=b)
        check("dense_input_gradient_batch", d_inputs[b], np.dot(weights.T, g)[:, 0], dtype, b=b)
        sum_w += np.dot(g, x.T)
        sum_b += g
    check("dense_gradient_batch [d_weights]", d_weights, sum_w.astype(dtype), dtype, B=batch_size)
    check("dense_gradient_batch [d_biases]", d_biases, sum_b.astype(dtype), dtype, B=batch_size)
    # The fused step: the weights move by rate times the mean gradient inside the gemm.
    stepped = weights.copy()
    d_biases[:] = np.nan
    batch.dense_sgd_batch(xs, d_outputs, stepped, d_biases, batch_size, dtype(0.5))
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
    activation.sigmoid_backward(s, g, back)
    check("sigmoid_backward (B, n)", back, g * functions.d_sigmoid(z), dtype, B=batch_size)
    losses = np.full(batch_size, np.nan)
    d_out = np.full_like(s, np.nan)
    batch.mse_batch(s, y, losses, d_out)
    for b in range(batch_size):
        np.testing.assert_allclose(losses[b], functions.mse(s[b], y[b]), **tolerance(dtype))
        check("mse_batch [d_outputs]", d_out[b], functions.d_mse(s[b], y[b]), dtype, b=b)


@by_dtype
@given(batch_size=batches, n=st.integers(1, 50), rate=st.floats(1e-3, 2.0), seed=seeds)
def test_sgd_apply_is_mean_gradient_step(dtype, batch_size, n, rate, seed):
    # Catches an update by the summed (not mean) gradient, a multiply by 1/B (which rounds
    # differently from the oracle's division), or arithmetic promoted to float64 for float32
    # parameters: the result must equal NumPy's `p - (g / B) * rate` exactly, in p's dtype.
    rng = np.random.default_rng(seed)
    params = draw(rng, dtype, 3, n)
    grads = draw(rng, dtype, 3, n) * batch_size
    expected = params - (grads / dtype(batch_size)) * dtype(rate)
    batch.sgd_apply(params, grads, batch_size, rate)
    assert params.dtype == dtype
    np.testing.assert_array_equal(params, expected, err_msg=f"sgd_apply B={batch_size}")
