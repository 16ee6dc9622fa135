"""What the tests share, written once: named tolerances, the notebook's networks and data, the
parameter helper, and the hypothesis strategies for shapes.

The reference maths itself is :mod:`fastcnn.reference` (the layers' scipy path uses it too), and the
table of (reference, numba) pairs is :mod:`tests.pairs`. ``conftest.py`` keeps the hypothesis
profile and the MNIST fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

from fastcnn import Activation, Layer, Linear, Network, d_sigmoid, sigmoid
from fastcnn.models import mnist_cnn

from .pairs import Shape

__all__ = [
    "AUTOGRAD",
    "DTYPES",
    "EXP_ULPS",
    "F32",
    "F64",
    "FD",
    "FD_STEP",
    "LOSS_SUM",
    "RUNNING_LOSS",
    "SIGMOID_ULPS",
    "TANH_ULPS",
    "TOL",
    "TRAJECTORY_F32",
    "TRAJECTORY_F64",
    "TWO_TERM",
    "XOR_X",
    "XOR_Y",
    "conv_shapes",
    "loss_sum",
    "mnist_cnn",
    "parameters",
    "seeds",
    "tolerance",
    "ulps",
    "xor_network",
]

# --------------------------------------------------------------------------------------------------
# tolerances, named once. Each says which two computations it compares and why it has its value.

# One operation, two paths (kernel vs SciPy/NumPy), float64: a plain loop sums in a different order
# than SciPy/BLAS. Measured over 300 random shapes and all filter sizes at 3x20x20 (up to 1200-term
# sums of values in [-1, 1], results up to ~30): at most 5.3e-14 absolute, and 8e-16 beyond
# rtol * |reference|. So rtol=1e-12 with atol=1e-13 leaves a 100x margin on the absolute part,
# while any real bug (a flipped filter, a missing `* rate`, an off-by-one) is off by 1e-2 or more.
F64 = dict(rtol=1e-12, atol=1e-13)
# The same in float32: ~7 digits, and those sums lose up to ~3 of them: measured 3.4e-5 absolute on
# results up to ~30, 6e-6 beyond 1e-5 * |reference|. 1e-4 both ways keeps a ~10x margin.
F32 = dict(rtol=1e-4, atol=1e-4)
TOL = {np.dtype(np.float64): F64, np.dtype(np.float32): F32}


def tolerance(dtype: Any) -> dict[str, float]:
    """The named tolerance of one operation on two paths, for arrays of ``dtype``."""
    return TOL[np.dtype(dtype)]


# A two-term dot product (Linear(2, 1)) by the kernel and by `@`: at most one rounding apart.
TWO_TERM = dict(rtol=1e-15)

# The compiled loop against the per-layer path: the same kernels in the same order update the
# parameters bit for bit, and only the epoch loss differs, because the compiled loop sums each
# sample's squared error itself where the seed calls np.mean. That is a few ulp of the loss:
# 1e-14 in float64; 1e-6 in float32 (eps 1.2e-7, a 10-output mean).
LOSS_SUM = {np.dtype(np.float64): dict(rtol=1e-14), np.dtype(np.float32): dict(rtol=1e-6)}


def loss_sum(dtype: Any) -> dict[str, float]:
    """The named tolerance of :data:`LOSS_SUM` for ``dtype``."""
    return LOSS_SUM[np.dtype(dtype)]


# A running mean reported to `progress` (np.sum of the losses so far) against the epoch's loss
# (np.cumsum's last element): the same float64 numbers summed in two orders over 600 samples.
RUNNING_LOSS = dict(rel=1e-12)

# Trajectories: per-epoch losses and final parameters of two runs of hundreds of SGD steps from
# the same weights (see assert_same_run in test_training.py for what each field bounds).
# numba vs scipy, float64: measured losses equal to 4e-16 relative and parameters to 9e-16
# norm-wise after 600 MNIST steps; the bounds leave room for rounding to grow along a longer run
# while a real error (a wrong update) is above 1e-2.
TRAJECTORY_F64 = dict(norm_rtol=1e-9, rtol=1e-7, atol=1e-10)
# float32 vs float64: measured losses within 1.5e-6 relative and parameters within 2.5e-6
# norm-wise after 600 steps; float32's eps is 1.2e-7. 1e-4 leaves room for growth while a real
# error is >1e-2; atol 1e-3 only backs up the norm-wise check for weights near zero.
TRAJECTORY_F32 = dict(norm_rtol=1e-4, rtol=1e-4, atol=1e-3)

# Central differences in float64 with step FD_STEP: truncation is O(h^2 f''') < 1e-10 for the
# sigmoid (linear layers have none); rounding is ~eps * |L| / h < 1e-9 for the |L| < 100 of the
# small shapes used. 1e-6 sits well above both and well below a wrong gradient's error.
FD_STEP = 1e-5
FD = dict(rtol=1e-6, atol=1e-6)

# A reference function against PyTorch's forward and autograd, float64 (issue 17): two
# implementations of one formula, sums in different orders over at most a few hundred terms, agree to
# ~1e-14; a wrong formula (a slope, a flipped filter, a missed clamp) is off by 1e-3 or more.
AUTOGRAD = dict(rtol=1e-10, atol=1e-12)

# Units in the last place, for the element-wise kernels that replace one NumPy expression: the
# vectorised exp (a polynomial after range reduction) stays within 2 ulp of np.exp, where a wrong
# coefficient is off by thousands; the sigmoid 1 / (1 + exp(-x)) adds an addition and a division
# to that exp, each rounding once more, so 4 eps relative.
EXP_ULPS = 2
SIGMOID_ULPS = 4
# kernels/pointwise.py's vectorised tanh against np.tanh: measured within 7 ulp in float64 and in
# float32 (the cancellation in 1 - 2 / (exp(2x) + 1) just above the polynomial's range, 1/8);
# 16 leaves a margin, where a wrong coefficient is off by thousands.
TANH_ULPS = 16


def ulps(dtype: Any, n: int) -> dict[str, float]:
    """``n`` units of ``dtype``'s machine epsilon, relative, no absolute slack."""
    return dict(rtol=n * float(np.finfo(dtype).eps), atol=0)


# --------------------------------------------------------------------------------------------------
# shapes

DTYPES = (np.float64, np.float32)


@st.composite
def conv_shapes(draw, max_depth=3, max_side=20, max_count=4, max_hidden=20):
    """A :class:`tests.pairs.Shape`. The filter size is drawn first and bounds height and width from
    below, so every draw is valid and nothing is filtered out (which would waste examples)."""
    size = draw(st.integers(1, max_side))
    height = draw(st.integers(size, max_side))
    width = draw(st.integers(size, max_side))
    depth = draw(st.integers(1, max_depth))
    count = draw(st.integers(1, max_count))
    hidden = draw(st.integers(1, max_hidden))
    return Shape(depth, height, width, size, count, hidden)


@st.composite
def padded_convolutions(draw):
    """``(depth, height, width), size, count, padding, bias``: a convolution of any filter size,
    padding and bias kind on any image it fits (bounded below by the filter less the padding, so
    nothing is filtered out)."""
    size = draw(st.integers(1, 5))
    padding = draw(st.integers(0, 3))
    depth = draw(st.integers(1, 3))
    count = draw(st.integers(1, 4))
    low = max(1, size - 2 * padding)
    height = draw(st.integers(low, low + 6))
    width = draw(st.integers(low, low + 6))
    bias = draw(st.sampled_from(["pixel", "filter"]))
    return (depth, height, width), size, count, padding, bias


seeds = st.integers(0, 2**32 - 1)

# --------------------------------------------------------------------------------------------------
# the notebook's networks and data. The MNIST CNN is fastcnn.models.mnist_cnn (re-exported above):
# the library's own copy of cell 335, so the tests never write it out again.

# The XOR truth table of cells 329-331, as float64 (the notebook's int arrays give the same numbers:
# every path casts its inputs to the layer's dtype at the door, and float arrays can take a NaN).
XOR_X = np.reshape([[0, 0], [0, 1], [1, 0], [1, 1]], (4, 2, 1)).astype(np.float64)
XOR_Y = np.reshape([[0], [1], [1], [0]], (4, 1, 1)).astype(np.float64)


def xor_network(
    *,
    rng: Any = 0,
    backend: str = "numba",
    activation: tuple[Callable, Callable] = (sigmoid, d_sigmoid),
) -> Network:
    """The notebook's XOR network (cell 330): ``Linear(2, 3)``, activation, ``Linear(3, 1)``,
    activation. ``rng`` is one source for both layers, in the notebook's order, so ``rng=s`` gives
    the weights of ``np.random.seed(s)`` followed by that cell. ``activation`` swaps in another
    function pair (say tanh) for both activation layers."""
    if isinstance(rng, int):
        rng = np.random.RandomState(rng)
    return Network(
        [
            Linear(2, 3, rng=rng),
            Activation(*activation),
            Linear(3, 1, rng=rng),
            Activation(*activation),
        ],
        backend=backend,
    )


# --------------------------------------------------------------------------------------------------
# parameters


def parameters(model: Network | Layer | Sequence[Layer]) -> dict[str, NDArray]:
    """Every array SGD updates, asked from each layer's ``named_parameters()``, in layer order.

    For a network or a list of layers the keys read ``"layer {i} {Type}.{name}"``; for one layer
    they are its attribute names. Fails when there are none at all, so a renamed or emptied
    ``named_parameters()`` makes a comparison fail instead of comparing two empty lists.
    """
    if isinstance(model, Layer):
        named = dict(model.named_parameters())
    else:
        layers = model.layers if isinstance(model, Network) else model
        named = {
            f"layer {i} {type(layer).__name__}.{name}": array
            for i, layer in enumerate(layers)
            for name, array in layer.named_parameters().items()
        }
    if not named:
        raise AssertionError(f"{model!r} has no parameters: nothing to compare")
    return named
