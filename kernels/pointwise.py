"""ReLU, tanh and leaky ReLU and their backward passes, elementwise over arrays of any shape.

The backward passes take ``(x, y, d_output, out)``: ``x`` the forward input, ``y`` the forward
output, so each uses whichever it needs (ReLU's mask and tanh's ``1 - y * y`` read the output,
leaky ReLU's mask the input) and none recomputes the forward.
"""

import numpy as np
from numba import types
from numba.extending import overload

from ._jit import jit
from .activation import exp

# tanh(a) = a + a * z * (c1 + z * (c2 + ...)), z = a * a: the odd Taylor series (coefficients
# 2^2n (2^2n - 1) B_2n / (2n)!, exact fractions rounded once), used for |x| < 1/8, where its
# eighth term is below 1e-18 relative. Above, 1 - 2 / (exp(2|x|) + 1) loses at most a few ulp to
# cancellation (worst just above 1/8: measured 1.5e-15 relative, 7 ulp, where the bar is 1e-12).
_TANH64_TAYLOR = (
    -1.0 / 3.0,
    2.0 / 15.0,
    -17.0 / 315.0,
    62.0 / 2835.0,
    -1382.0 / 155925.0,
    21844.0 / 6081075.0,
    -929569.0 / 638512875.0,
)
_TANH_SMALL = 0.125
# float32: the first three (to x**7) leave 1.3e-9 relative under 1/8, 1/100 of an ulp (the third
# itself moves results by at most 2 ulp, so float32 tests cannot see it: the float64 ones can).
_TANH32_TAYLOR = tuple(np.float32(c) for c in _TANH64_TAYLOR[:3])


# contract: the polynomial as FMAs, as the exp it shares the file's style with; not the seed's
# rounding (np.tanh is another implementation anyway), within 1e-12 relative of it.
@jit(contract=True)
def _tanh64(x):
    """``np.tanh(x)`` for a float64 to within a few ulp (NaN kept, sign of zero kept); plain
    arithmetic LLVM vectorises, where Numba's np.tanh is a scalar libm call per element."""
    a = abs(x)
    # The polynomial of a clamped copy: the same for |x| < 1/8, and no inf - inf for x = inf.
    b = a if a < _TANH_SMALL else _TANH_SMALL
    z = b * b
    c = _TANH64_TAYLOR
    q = c[6]
    q = q * z + c[5]
    q = q * z + c[4]
    q = q * z + c[3]
    q = q * z + c[2]
    q = q * z + c[1]
    q = q * z + c[0]
    small = b + b * (z * q)
    # Clamped so that exp never overflows (tanh is 1 to the last bit from 19.1 on); NaN passes.
    t = exp(2.0 * (22.0 if a > 22.0 else a))
    large = 1.0 - 2.0 / (t + 1.0)
    return np.copysign(small if a < _TANH_SMALL else large, x)


@jit(contract=True)
def _tanh32(x):
    """:func:`_tanh64` in float32 arithmetic (16 lanes a vector, where float64 has 8), with the
    float32 exp: within a few float32 ulp of np.tanh."""
    small_limit = np.float32(_TANH_SMALL)
    one, two = np.float32(1), np.float32(2)
    a = abs(x)
    b = a if a < small_limit else small_limit
    z = b * b
    c = _TANH32_TAYLOR
    q = c[2]
    q = q * z + c[1]
    q = q * z + c[0]
    small = b + b * (z * q)
    # tanh is 1 in float32 from 9.01 on; clamped below exp's overflow at 88.7 / 2.
    limit = np.float32(10)
    t = exp(two * (limit if a > limit else a))
    large = one - two / (t + one)
    return np.copysign(small if a < small_limit else large, x)


def tanh_scalar(x):
    """``np.tanh(x)`` for one float64 or float32, in that type (the Python twin of the overload)."""
    return _tanh32(x) if isinstance(x, np.float32) else _tanh64(x)


@overload(tanh_scalar)
def _tanh_overload(x):  # pragma: no cover  (runs while Numba compiles, never as plain Python)
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: _tanh64(x)


@jit
def relu(x, out):
    """``np.maximum(x, 0)``; x and out of one shape (NaN stays NaN, as np.maximum keeps it)."""
    zero = out.dtype.type(0)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(xf.size):
        v = xf[i]
        of[i] = zero if v <= zero else v


@jit
def relu_backward(x, y, d_output, out):
    """``d_output * d_relu(x)``: ``d_output`` where ``y = relu(x) > 0``, else 0 (0 at x = 0, as
    PyTorch's autograd); ``x`` is not read (the output holds the same mask)."""
    zero = out.dtype.type(0)
    yf = y.reshape(-1)
    gf = d_output.reshape(-1)
    of = out.reshape(-1)
    for i in range(yf.size):
        of[i] = gf[i] if yf[i] > zero else zero


@jit
def tanh(x, out):
    """``np.tanh(x)`` to within a few ulp (:func:`_tanh64`, :func:`_tanh32`: 7 measured, 10x
    Numba's scalar libm call); x and out of one shape."""
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(xf.size):
        of[i] = tanh_scalar(xf[i])


@jit
def tanh_backward(x, y, d_output, out):
    """``d_output * d_tanh(x)`` given ``y = tanh(x)``: ``d_output * (1 - y * y)``; ``x`` is not
    read (the seed's ``1 - np.tanh(x) ** 2`` squares the same ``y``)."""
    one = out.dtype.type(1)
    yf = y.reshape(-1)
    gf = d_output.reshape(-1)
    of = out.reshape(-1)
    for i in range(yf.size):
        t = yf[i]
        of[i] = gf[i] * (one - t * t)


@jit
def leaky_relu(x, out):
    """``np.where(x > 0, x, x * 0.01)``, the slope rounded to x's dtype; x and out of one shape."""
    zero = out.dtype.type(0)
    slope = out.dtype.type(0.01)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(xf.size):
        v = xf[i]
        of[i] = v if v > zero else v * slope


@jit
def leaky_relu_backward(x, y, d_output, out):
    """``d_output * d_leaky_relu(x)``: ``d_output`` where ``x > 0``, else ``d_output * 0.01``
    (0.01 at x = 0, as PyTorch's autograd); ``y`` is not read."""
    zero = out.dtype.type(0)
    slope = out.dtype.type(0.01)
    xf = x.reshape(-1)
    gf = d_output.reshape(-1)
    of = out.reshape(-1)
    for i in range(xf.size):
        g = gf[i]
        of[i] = g if xf[i] > zero else g * slope
