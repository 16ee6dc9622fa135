"""The blocked dense kernels (rows of ``weights`` eight per pass, the rest in a four-row pass or one
by one) at odd sizes, in both dtypes: against a float64 NumPy reference, against the seed's
rounding of the SGD update, and their two-thread versions against the one-thread kernels, bit for
bit."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcnn.kernels import dense

from .conftest import DTYPES, seeds, tolerance


@st.composite
def dense_shapes(draw):
    """(m, n, seed): m rows of ``weights`` (any remainder mod 8, and m = 1), n columns (n = 1,
    tiny, around a cache line, and MNIST-like); tiny shapes are drawn far more often."""
    m = draw(st.one_of(st.integers(1, 13), st.sampled_from([63, 100, 101, 130])))
    n = draw(st.one_of(st.integers(1, 40), st.sampled_from([127, 1000, 3380, 3381])))
    return m, n, draw(seeds)


def draw_arrays(m, n, dtype, seed):
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((m, n)).astype(dtype)
    x = rng.uniform(0, 1, (n, 1)).astype(dtype)
    biases = rng.standard_normal((m, 1)).astype(dtype)
    d_output = rng.standard_normal((m, 1)).astype(dtype)
    return weights, x, biases, d_output


def seed_update(weights, biases, x, d_output, rate):
    """The seed's ``w -= rate * (d_output @ x.T)``, ``b -= rate * d_output``, in the arrays' dtype."""
    return weights - (d_output * x.T) * rate, biases - d_output * rate


def rows_in_order(weights, d_output):
    """``weights.T @ d_output`` summed over the rows first to last, in the arrays' dtype."""
    total = np.zeros(weights.shape[1], weights.dtype)
    for o in range(weights.shape[0]):
        total = total + weights[o] * d_output[o, 0]
    return total[:, None]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=dense_shapes())
def test_dense_forward_any_shape(dtype, case):
    # Catches rows lost or done twice by the row loops (m not a multiple of 8 or 4, m < 4), a wrong
    # accumulator or bias per row, or a result that depends on the NaN `out` starts as.
    m, n, seed = case
    weights, x, biases, _ = draw_arrays(m, n, dtype, seed)
    out = np.full((m, 1), np.nan, dtype)
    dense.dense_forward(weights, x, biases, out)
    expected = np.dot(weights.astype(np.float64), x.astype(np.float64)) + biases
    # float32 sums of up to 3381 terms of |w x| < ~4: scale the tolerance by the row's sum of |w x|.
    scale = np.abs(weights.astype(np.float64)) @ np.abs(x.astype(np.float64)) + 1
    tol = tolerance(dtype)
    err = np.abs(out - expected) / scale
    assert np.all(err <= tol["rtol"]), f"dense_forward [out] {m}x{n}: max scaled error {err.max()}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=dense_shapes())
def test_dense_backward_sgd_any_shape(dtype, case):
    # Catches a fused backward pass whose input gradient is taken from updated weights, sums rows
    # in another order, loses remainder rows, or rounds the update other than the seed's
    # (g * x) * rate: weights and biases must equal the seed's update bit for bit, and d_input the
    # rows' sum first to last, bit for bit (and the float64 reference within tolerance).
    m, n, seed = case
    weights, x, biases, d_output = draw_arrays(m, n, dtype, seed)
    rate = dtype(0.1)
    w, b, d_input = weights.copy(), biases.copy(), np.full((n, 1), np.nan, dtype)
    dense.dense_backward_sgd(w, b, x, d_output, rate, d_input)
    w_seed, b_seed = seed_update(weights, biases, x, d_output, rate)
    np.testing.assert_array_equal(w, w_seed, err_msg=f"dense_backward_sgd [weights] {m}x{n}")
    np.testing.assert_array_equal(b, b_seed, err_msg=f"dense_backward_sgd [biases] {m}x{n}")
    np.testing.assert_array_equal(
        d_input, rows_in_order(weights, d_output), err_msg=f"dense_backward_sgd [d_input] {m}x{n}"
    )
    scale = np.abs(weights.astype(np.float64)).T @ np.abs(d_output.astype(np.float64)) + 1
    err = np.abs(d_input - weights.astype(np.float64).T @ d_output) / scale
    assert np.all(err <= tolerance(dtype)["rtol"]), f"d_input {m}x{n}: max scaled error {err.max()}"

    w, b = weights.copy(), biases.copy()
    dense.dense_sgd(w, b, x, d_output, rate)
    np.testing.assert_array_equal(w, w_seed, err_msg=f"dense_sgd [weights] {m}x{n}")
    np.testing.assert_array_equal(b, b_seed, err_msg=f"dense_sgd [biases] {m}x{n}")


def block_edges(m, blocks):
    """The row blocks of the two-thread kernels: edges on multiples of eight rows, the last block
    taking the remainder."""
    eights = m // 8
    return [8 * (t * eights // blocks) for t in range(blocks)] + [m]


@pytest.mark.slow  # compiles the parallel kernels in both dtypes (never cached)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("m, n", [(1, 1), (3, 17), (7, 30), (13, 33), (100, 3380), (101, 3381)])
def test_dense_blocks_match_one_thread(dtype, m, n):
    # Catches block edges that lose or repeat rows, threads that race on a shared element, biases
    # updated once per block, or a cross-thread sum in another order: with 1, 2 and 3 blocks,
    # twice each, the outputs and updates equal the one-thread kernels' bit for bit, and d_input
    # equals the blocks' in-order row sums added in block order, bit for bit.
    weights, x, biases, d_output = draw_arrays(m, n, dtype, m * n)
    rate = dtype(0.1)
    out = np.empty((m, 1), dtype)
    dense.dense_forward(weights, x, biases, out)
    w1, b1, d1 = weights.copy(), biases.copy(), np.empty((n, 1), dtype)
    dense.dense_backward_sgd(w1, b1, x, d_output, rate, d1)
    for blocks in (1, 2, 3):
        edges = block_edges(m, blocks)
        shares = [rows_in_order(weights[a:b], d_output[a:b]) for a, b in itertools.pairwise(edges)]
        d_expected = shares[0]
        for share in shares[1:]:
            d_expected = d_expected + share
        for run in (1, 2):
            where = f"{blocks} blocks, run {run}, {m}x{n} {np.dtype(dtype).name}"
            got = np.full((m, 1), np.nan, dtype)
            dense.dense_forward_blocks(weights, x, biases, got, blocks)
            np.testing.assert_array_equal(got, out, err_msg=f"dense_forward_blocks [out] {where}")
            w, b, d = weights.copy(), biases.copy(), np.full((n, 1), np.nan, dtype)
            partial = np.full((blocks, n + 5), np.nan, dtype)
            dense.dense_backward_sgd_blocks(w, b, x, d_output, rate, d, partial)
            for name, a, e in (("d_input", d, d_expected), ("weights", w, w1), ("biases", b, b1)):
                np.testing.assert_array_equal(a, e, err_msg=f"backward_sgd_blocks [{name}] {where}")
            np.testing.assert_allclose(
                d, d1, **tolerance(dtype), err_msg=f"d_input vs 1 thread {where}"
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=dense_shapes(), pad=st.integers(1, 17))
def test_padded_rows_give_the_compact_results(dtype, case, pad):
    # Catches a kernel taking a row's length from the weights instead of x (it would read the
    # padding, NaN here, into every sum), or updating the padding the network loop keeps between
    # rows. Padded and compact weights must give the same numbers bit for bit.
    m, n, seed = case
    weights, x, biases, d_output = draw_arrays(m, n, dtype, seed)
    padded = np.full((m, n + pad), np.nan, dtype)
    padded[:, :n] = weights
    rate = dtype(0.1)
    outs = [np.empty((m, 1), dtype) for _ in range(2)]
    dense.dense_forward(weights, x, biases, outs[0])
    dense.dense_forward(padded, x, biases, outs[1])
    np.testing.assert_array_equal(outs[1], outs[0], err_msg="dense_forward")
    compact = [weights.copy(), biases.copy(), np.empty((n, 1), dtype)]
    wide = [padded.copy(), biases.copy(), np.empty((n, 1), dtype)]
    dense.dense_backward_sgd(compact[0], compact[1], x, d_output, rate, compact[2])
    dense.dense_backward_sgd(wide[0], wide[1], x, d_output, rate, wide[2])
    for a, b, name in zip(wide, compact, ["weights", "biases", "d_input"], strict=True):
        np.testing.assert_array_equal(a[:, : b.shape[1]], b, err_msg=f"dense_backward_sgd {name}")
    assert np.isnan(wide[0][:, n:]).all(), "dense_backward_sgd wrote the padding"
    compact, wide = [weights.copy(), biases.copy()], [padded.copy(), biases.copy()]
    dense.dense_sgd(compact[0], compact[1], x, d_output, rate)
    dense.dense_sgd(wide[0], wide[1], x, d_output, rate)
    np.testing.assert_array_equal(wide[0][:, :n], compact[0], err_msg="dense_sgd weights")
    assert np.isnan(wide[0][:, n:]).all(), "dense_sgd wrote the padding"
