"""Element-wise activations and their backward passes, over arrays of any shape: ``f(x, out)`` and
``f_backward(x, y, d_output, out)``, x the forward input and y its output."""

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import jit

# exp(t) = 2**k * exp(r) with k = round(t / ln 2) and |r| <= ln(2) / 2: the classic reduction
# (Cody & Waite: ln 2 split in a high part exact in few bits and a low correction), then Taylor
# polynomials long enough for 1 ulp. Numba's own np.exp is a scalar libm call per element; this
# is plain arithmetic LLVM vectorises (see the README's Speed section).
_EXP64_TAYLOR = tuple(1.0 / np.prod(np.arange(1.0, n + 1)) for n in range(14))  # 1/n!, n <= 13
_EXP32_TAYLOR = tuple(np.float32(c) for c in _EXP64_TAYLOR[:8])  # n <= 7


# contract: the polynomial's a * r + c steps as FMAs (faster, still within 1 ulp of np.exp over the
# whole float64 range measured; tests/test_compiled.py holds it to 2 ulp).
@jit(contract=True)
def _exp64(t):
    """``np.exp(t)`` for a float64 to within 1 ulp (0 below -746, inf above 709.78, NaN kept)."""
    overflow = t > 709.782712893384
    # Clamped (in a form that lets NaN through) so that inf - inf never occurs below.
    t = -746.0 if t < -746.0 else (710.0 if t > 710.0 else t)
    k = np.floor(t * 1.4426950408889634 + 0.5)
    r = (t - k * 0.6931471803691238) - k * 1.9082149292705877e-10
    c = _EXP64_TAYLOR
    p = c[13]
    p = p * r + c[12]
    p = p * r + c[11]
    p = p * r + c[10]
    p = p * r + c[9]
    p = p * r + c[8]
    p = p * r + c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    n = np.int64(k if k == k else 0.0)
    half = n >> 1  # 2**k as two factors, so that subnormal results stay reachable
    scale_a = np.int64((half + 1023) << 52).view(np.float64)
    scale_b = np.int64((n - half + 1023) << 52).view(np.float64)
    return np.inf if overflow else p * scale_a * scale_b


@jit(contract=True)
def _exp32(t):
    """``np.exp(t)`` for a float32 to within 1 ulp, computed in float32."""
    overflow = t > np.float32(88.72283)
    low, high = np.float32(-104.0), np.float32(89.0)
    t = low if t < low else (high if t > high else t)
    k = np.floor(t * np.float32(1.442695) + np.float32(0.5))
    r = (t - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    c = _EXP32_TAYLOR
    p = c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    n = np.int32(k if k == k else np.float32(0))
    half = n >> 1
    scale_a = np.int32((half + 127) << 23).view(np.float32)
    scale_b = np.int32((n - half + 127) << 23).view(np.float32)
    return np.float32(np.inf) if overflow else p * scale_a * scale_b


def exp(t):
    """``np.exp(t)`` for one float64 or float32, in that type (the Python twin of the overload)."""
    return _exp32(t) if isinstance(t, np.float32) else _exp64(t)


@overload(exp)
def _exp_overload(t):  # pragma: no cover  (runs while Numba compiles, never as plain Python)
    if t == types.float32:
        return lambda t: _exp32(t)
    return lambda t: _exp64(t)


@jit
def sigmoid(x, out):
    """``1 / (1 + np.exp(-x))``; x and out of one shape."""
    one = out.dtype.type(1)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(xf.size):
        of[i] = one / (one + exp(-xf[i]))


@jit
def sigmoid_backward(x, y, d_output, out):
    """``d_output * d_sigmoid(x)`` given ``y = sigmoid(x)``: ``d_output * (s * (1 - s))``.

    Every activation's backward kernel takes the forward input ``x`` and output ``y``; the seed
    recomputes ``s = sigmoid(x)`` here, and taking ``y`` instead gives the same numbers without a
    second exponential. x, y, d_output and out of one shape.
    """
    one = out.dtype.type(1)
    sf = y.reshape(-1)
    gf = d_output.reshape(-1)
    of = out.reshape(-1)
    for i in range(sf.size):
        s = sf[i]
        of[i] = gf[i] * (s * (one - s))
