"""The seed's sigmoid and its backward pass, elementwise over arrays of any shape."""

import numpy as np

from ._jit import jit


@jit
def sigmoid(x, out):
    """``1 / (1 + np.exp(-x))``; x and out of one shape."""
    one = out.dtype.type(1)
    xf = x.reshape(-1)
    of = out.reshape(-1)
    for i in range(xf.size):
        of[i] = one / (one + np.exp(-xf[i]))


@jit
def sigmoid_backward(output, d_output, out):
    """``d_output * d_sigmoid(x)`` given ``output = sigmoid(x)``: ``d_output * (s * (1 - s))``.

    The seed recomputes ``s = sigmoid(x)`` here; taking the forward output instead gives the same
    numbers without a second exponential.
    """
    one = out.dtype.type(1)
    sf = output.reshape(-1)
    gf = d_output.reshape(-1)
    of = out.reshape(-1)
    for i in range(sf.size):
        s = sf[i]
        of[i] = gf[i] * (s * (one - s))
