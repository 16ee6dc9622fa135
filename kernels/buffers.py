"""Views of the compiled loops' flat buffers, shared by every layer kind's hooks.

One sample's activations or gradients of layer ``l`` are ``buffer[L.x : L.x + L.in_size]`` (its
input) and ``buffer[L.y : L.y + L.out_size]`` (its output). A mini-batch program's buffers are
``capacity`` times as long: the region of a layer whose per-sample offset is ``o`` and size ``s``
starts at ``o * capacity`` and holds the batch's rows (n, s) one after the other, so a dense
layer's batch is a C-contiguous matrix that BLAS multiplies in one call, and a shorter last batch
uses the region's first rows.

These helpers, and the kinds' small ones (shapes, parameter views), are functions of their own,
not inlined: Numba re-types an inlined function at every call site, and the loops call them from
many; compiled once each, they cost a cold start a second less (CHANGELOG).
"""

from ._jit import jit


@jit
def region(buffer, offset, size, capacity, n):
    """The (n, size) rows of a batch region (see above), as a C-contiguous matrix."""
    start = offset * capacity
    return buffer[start : start + n * size].reshape((n, size))


@jit
def copy(a, out):
    """``out[:] = a`` for 1-D arrays of one size, as a loop: an array-to-array assignment makes
    Numba compile its broadcast check, whose error message pulls in seconds of string code."""
    for i in range(a.size):
        out[i] = a[i]
