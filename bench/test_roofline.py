"""The roofline: what this machine's memory allows one training sample of the seed's MNIST net.

One sample's unavoidable traffic is the big dense layer's ``weights`` (100 x 3380) read once (the
forward pass) and read and written once (the backward pass and SGD update); everything else the
sample touches is ~100x smaller. Each is timed here, in each dtype, by the fastest ways at hand,
on one core:

- read once: OpenBLAS ``gemv`` (``scipy.linalg.blas``) computing ``weights @ x``, and fastcnn's
  ``dense_forward``;
- read and written once: OpenBLAS ``ger`` adding ``1e-30 * g x^T`` to ``weights`` in place (a
  rank-1 update that leaves the values unchanged, so rounds do not drift), and fastcnn's
  ``dense_sgd``.

fastcnn's kernels get the weights as the per-sample training loop keeps them, 64-byte aligned
with rows padded to whole cache lines (``fastcnn._compiled``), which is their fastest layout;
BLAS gets them 64-byte aligned and compact, as it requires.

``python -m bench.report`` adds the fastest read and the fastest read-and-write of each dtype into
a per-sample time, the bound, and prints each training row's time per sample as a percentage of
it. BLAS runs on one thread here (threadpoolctl, when installed), so the bound is one core's;
each call also pays SciPy's Python-level wrapper (~1 us), which makes the bound slightly loose.
"""

import contextlib

import numpy as np
import pytest
from scipy.linalg import blas

from bench import describe
from fastcnn._compiled import _empty_lines, _line
from fastcnn.kernels import dense

DTYPES = {"float64": np.float64, "float32": np.float32}
M, N = 100, 5 * 26 * 26  # the seed's MNIST dense layer: weights (100, 3380)


def one_blas_thread():
    """A context limiting BLAS to one thread, or nothing when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(None), "default"
    return threadpool_limits(1, user_api="blas"), 1


def operands(dtype, padded=False):
    rng = np.random.default_rng(7)
    stride = _line(N) if padded else N
    rows = _empty_lines(M * stride, dtype).reshape(M, stride)
    rows[...] = 0
    weights = rows[:, :N]
    weights[...] = rng.uniform(-1, 1, (M, N))
    x = rng.uniform(0, 1, (N, 1)).astype(dtype)
    biases = rng.uniform(-1, 1, (M, 1)).astype(dtype)
    d_output = rng.uniform(-1, 1, (M, 1)).astype(dtype)
    return weights, rows, x, biases, d_output


def candidates(op, impl, dtype):
    """A zero-argument callable doing one pass of ``op`` with ``impl``; for reads, a function
    turning its result into ``weights @ x``; the weights and x it works on."""
    # rows: the weights with their padding, as the kernels take them (a row's length is len(x))
    weights, rows, x, biases, d_output = operands(dtype, padded=impl == "numba")
    # weights.T is the Fortran-ordered (n, m) matrix BLAS sees, without a copy.
    wt, xv, gv = weights.T, x[:, 0], d_output[:, 0]
    d = "d" if dtype == np.float64 else "s"
    if op == "read":
        if impl == "blas":
            gemv = getattr(blas, f"{d}gemv")
            return lambda: gemv(1.0, wt, xv, trans=1), lambda r: r[:, None], weights, x
        out = np.empty((M, 1), dtype)

        def forward():
            dense.dense_forward(rows, x, biases, out)
            return out

        return forward, lambda r: r - biases, weights, x
    if impl == "blas":
        ger = getattr(blas, f"{d}ger")

        def update():
            ger(1e-30, xv, gv, a=wt, overwrite_a=1)
            return weights

        return update, None, weights, x
    # A rate so small that every update rounds back to the same weight: no drift across rounds.
    rate = dtype(1e-30)

    def sgd():
        dense.dense_sgd(rows, biases, x, d_output, rate)
        return weights

    return sgd, None, weights, x


CASES = [(op, impl) for op in ("read", "update") for impl in ("blas", "numba")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op, impl", CASES, ids=[f"{o}-{i}" for o, i in CASES])
def test_roofline(benchmark, op, impl, dtype):
    # Catches a probe that does not do the pass it claims (a gemv on the wrong transpose, a ger
    # that copies instead of updating in place): its result must be W @ x, or W unchanged in place.
    fn, finish, weights, x = candidates(op, impl, DTYPES[dtype])
    before = weights.copy()
    limit, blas_threads = one_blas_thread()
    with limit:
        first = fn()
        if op == "read":
            expected = weights.astype(np.float64) @ x.astype(np.float64)
            tol = 1e-10 if dtype == "float64" else 1e-3
            np.testing.assert_allclose(
                finish(first), expected, rtol=tol, atol=tol, err_msg=f"{op} {impl}"
            )
        else:
            assert first is weights, f"{op} {impl}: did not update weights in place"
            np.testing.assert_array_equal(weights, before, err_msg=f"{op} {impl} changed weights")
        describe(
            benchmark,
            f"roofline-{op}|MNIST|{dtype}",
            op=f"roofline-{op}",
            impl=impl,
            shape="MNIST",
            dims=f"weights {M}x{N}",
            dtype=dtype,
            kind="roofline",
            blas_threads=blas_threads,
        )
        benchmark(fn)
