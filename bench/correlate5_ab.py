"""The 5 x 5 fast path against the generic tap loop at LeNet's shapes, interleaved A/B:

    python -m bench.correlate5_ab

Each repetition times both variants back to back, so load from other processes hits both alike;
it prints the medians of each and the median of the per-repetition ratios (generic / fast). Not a
pytest bench: it drives conv.py's private tap loops (`_correlate2d_valid_add`,
`_convolve2d_full_add`) directly, so it goes stale if those are renamed.
"""

import time

import numba
import numpy as np

from fastcnn.kernels import conv
from fastcnn.kernels import correlate5 as c5


@numba.njit
def fill_bias(b, out):
    for i in range(out.shape[0]):
        for a in range(out.shape[1]):
            for q in range(out.shape[2]):
                out[i, a, q] = b[i, 0, 0]


@numba.njit
def fwd_generic(x, xp, f, b, out, p):
    c5.pad2d(x, p, xp)
    fill_bias(b, out)
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            conv._correlate2d_valid_add(xp[j], f[i, j], out[i])


@numba.njit
def fwd_5(x, xp, f, b, out, p):
    c5.pad2d(x, p, xp)
    fill_bias(b, out)
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            c5.correlate5_rows(xp[j], f[i, j], out[i], out[i])


@numba.njit
def fwd_5w(x, xp, f, b, out, p, wide):
    c5.pad2d(x, p, xp)
    fill_bias(b, out)
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            c5.correlate5_wide(xp[j], f[i, j], out[i], wide, out[i])


@numba.njit
def din_generic(g, gp, f, d):
    d[:] = 0
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            conv._convolve2d_full_add(g[i], f[i, j], d[j])


@numba.njit
def din_5(g, gp, f, d):
    d[:] = 0
    c5.pad2d(g, 4, gp)
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            c5.convolve5_full_add(gp[i], f[i, j], d[j])


@numba.njit
def din_5w(g, gp, f, d, wide):
    d[:] = 0
    c5.pad2d(g, 4, gp)
    for i in range(f.shape[0]):
        for j in range(f.shape[1]):
            c5.convolve5_full_wide(gp[i], f[i, j], wide, d[j])


def ab(fa, fb, args_a, args_b, reps=41, inner=100):
    fa(*args_a)
    fb(*args_b)
    ta, tb = [], []
    for _ in range(reps):
        s = time.perf_counter()
        for _ in range(inner):
            fa(*args_a)
        ta.append((time.perf_counter() - s) / inner)
        s = time.perf_counter()
        for _ in range(inner):
            fb(*args_b)
        tb.append((time.perf_counter() - s) / inner)
    ta, tb = np.array(ta) * 1e6, np.array(tb) * 1e6
    return np.median(ta), np.median(tb), np.median(ta / tb)


def main():
    rng = np.random.default_rng(0)
    for dt in (np.float64, np.float32):
        for name, depth, side, count, p in (
            ("conv1 1->6 @5x5, 28x28 pad 2", 1, 28, 6, 2),
            ("conv2 6->16 @5x5, 14x14", 6, 14, 16, 0),
        ):
            x = rng.uniform(0, 1, (depth, side, side)).astype(dt)
            xp = np.empty((depth, side + 2 * p, side + 2 * p), dt)
            f = rng.normal(0, 0.2, (count, depth, 5, 5)).astype(dt)
            b = rng.normal(size=(count, 1, 1)).astype(dt)
            o = side + 2 * p - 4
            o1, o2 = np.empty((count, o, o), dt), np.empty((count, o, o), dt)
            a, bb, r = ab(fwd_generic, fwd_5, (x, xp, f, b, o1, p), (x, xp, f, b, o2, p))
            np.testing.assert_allclose(o1, o2, rtol=1e-4, atol=1e-4)
            print(
                f"{dt.__name__:7} {name:30} forward  generic {a:7.2f} us  correlate5_rows {bb:7.2f} us  ratio {r:.2f}"
            )
            wide = np.empty(xp.shape[1] * xp.shape[2], dt)
            o3 = np.empty_like(o1)
            a, bb, r = ab(fwd_generic, fwd_5w, (x, xp, f, b, o1, p), (x, xp, f, b, o3, p, wide))
            np.testing.assert_array_equal(o2, o3)
            print(
                f"{dt.__name__:7} {name:30} forward  generic {a:7.2f} us  correlate5_wide {bb:7.2f} us  ratio {r:.2f}"
            )
            g = rng.normal(size=(count, o, o)).astype(dt)
            gp = np.empty((count, o + 8, o + 8), dt)
            d1, d2 = (
                np.empty((depth, side + 2 * p, side + 2 * p), dt),
                np.empty((depth, side + 2 * p, side + 2 * p), dt),
            )
            a, bb, r = ab(din_generic, din_5, (g, gp, f, d1), (g, gp, f, d2))
            np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-4)
            print(
                f"{dt.__name__:7} {name:30} d_input  generic {a:7.2f} us  convolve5_full_add {bb:7.2f} us  ratio {r:.2f}"
            )
            wide = np.empty(gp.shape[1] * gp.shape[2], dt)
            d3 = np.empty_like(d1)
            a, bb, r = ab(din_generic, din_5w, (g, gp, f, d1), (g, gp, f, d3, wide))
            np.testing.assert_array_equal(d2, d3)
            print(
                f"{dt.__name__:7} {name:30} d_input  generic {a:7.2f} us  convolve5_full_wide {bb:7.2f} us  ratio {r:.2f}"
            )


if __name__ == "__main__":
    main()
