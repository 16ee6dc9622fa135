"""Issue 17's function pairs, losses and reference maths (fastcnn.functions, fastcnn.reference)
against PyTorch's forward and autograd (float64, :data:`AUTOGRAD`), against central differences,
and on the edge cases: ties in max-pooling, odd sizes, logits of ±1000, bad targets.

Tests that need torch skip without it (``pytest.importorskip``); CI installs ``torch==2.13.0``.
"""

import copy
import pickle
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcnn import functions, reference
from fastcnn.functions import (
    CrossEntropyGradient,
    SoftmaxOutput,
    binary_cross_entropy,
    cross_entropy,
    d_binary_cross_entropy,
    d_cross_entropy,
    d_leaky_relu,
    d_relu,
    d_tanh,
    leaky_relu,
    relu,
    tanh,
)

from .support import AUTOGRAD, FD, FD_STEP, seeds

ACTIVATIONS = {
    "relu": (relu, d_relu, "relu"),
    "tanh": (tanh, d_tanh, "tanh"),
    "leaky_relu": (leaky_relu, d_leaky_relu, "leaky_relu"),
}


def torch_module():
    return pytest.importorskip("torch")


def numeric_gradient(f, array):
    """Central differences of the scalar ``f()`` with respect to each element of ``array``
    (perturbed in place and restored): tests/test_gradients.py's method."""
    grad = np.empty(array.shape)
    flat, out = array.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        keep = flat[k]
        flat[k] = keep + FD_STEP
        up = f()
        flat[k] = keep - FD_STEP
        down = f()
        flat[k] = keep
        out[k] = (up - down) / (2 * FD_STEP)
    return grad


def as_torch(array, grad=True):
    torch = torch_module()
    return torch.tensor(np.ascontiguousarray(array), dtype=torch.float64, requires_grad=grad)


def one_hot(n, k):
    y = np.zeros((n, 1))
    y[k] = 1.0
    return y


def soft_target(rng, n):
    y = rng.uniform(0.0, 1.0, (n, 1))
    return y / np.sum(y)


# --------------------------------------------------------------------------------------------------
# activations


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(seed=seeds, n=st.integers(1, 40))
def test_activation_matches_torch(name, seed, n):
    # Catches an activation or derivative that differs from PyTorch's forward or autograd
    # (a wrong slope, tanh' written as 1 - x**2, a derivative of the wrong sign).
    torch = torch_module()
    f, d_f, torch_name = ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 3.0, (n, 1))
    x[rng.integers(0, n)] = 0.0  # the kink, where autograd picks a side
    g = rng.normal(size=(n, 1))
    tx = as_torch(x)
    ty = getattr(torch.nn.functional, torch_name)(tx)
    (ty * as_torch(g, grad=False)).sum().backward()
    np.testing.assert_allclose(f(x), ty.detach().numpy(), **AUTOGRAD, err_msg=f"[{name}]")
    np.testing.assert_allclose(
        reference.activation_backward(g, d_f, x),
        tx.grad.numpy(),
        **AUTOGRAD,
        err_msg=f"[d_{name}]",
    )


def test_activation_derivatives_at_zero():
    # Catches the derivative at exactly 0 taken from the other side than PyTorch's autograd
    # (relu'(0) = 0, leaky_relu'(0) = 0.01) and any dtype promotion of float32 inputs.
    x = np.array([[-1.0], [0.0], [2.0]])
    np.testing.assert_array_equal(d_relu(x), [[0.0], [0.0], [1.0]])
    np.testing.assert_array_equal(d_leaky_relu(x), [[0.01], [0.01], [1.0]])
    np.testing.assert_array_equal(leaky_relu(x), [[-0.01], [0.0], [2.0]])
    for f in (relu, d_relu, tanh, d_tanh, leaky_relu, d_leaky_relu):
        assert f(x.astype(np.float32)).dtype == np.float32, f.__name__
    assert leaky_relu(np.float32([-3.0]))[0] == np.float32(-3.0) * np.float32(0.01)


def test_activations_keep_nan():
    # Catches a relu written as `x if x > 0 else 0`, which would hide a diverged run's NaN.
    x = np.array([np.nan, -1.0])
    assert np.isnan(relu(x)[0]) and np.isnan(leaky_relu(x)[0]) and np.isnan(tanh(x)[0])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_reference_names(name):
    # Catches the named reference backward passes (the kernels' oracle) wired to the wrong pair.
    d_f = ACTIVATIONS[name][1]
    x = np.linspace(-3, 3, 13).reshape(13, 1)
    g = np.cos(x)
    backward = getattr(reference, f"{name}_backward")
    np.testing.assert_array_equal(backward(x, g), g * d_f(x))


# --------------------------------------------------------------------------------------------------
# Softmax and cross-entropy


@given(seed=seeds, n=st.integers(1, 20), scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_softmax_cross_entropy_matches_torch(seed, n, scale):
    # Catches a loss or logit gradient that is not PyTorch's CrossEntropyLoss on the logits with
    # probability targets (a missing max shift is caught by the ±1000 tests below).
    torch = torch_module()
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, scale, (n, 1))
    y = soft_target(rng, n)
    s = reference.softmax_layer_forward(x)
    loss = cross_entropy(s, y)
    d_x = reference.softmax_layer_backward(s, d_cross_entropy(s, y))
    tx = as_torch(x)
    t_loss = torch.nn.functional.cross_entropy(tx.T, as_torch(y.T, grad=False))
    t_loss.backward()
    np.testing.assert_allclose(loss, t_loss.item(), **AUTOGRAD, err_msg="[loss]")
    np.testing.assert_allclose(d_x, tx.grad.numpy(), **AUTOGRAD, err_msg="[d_logits]")
    np.testing.assert_allclose(
        s, torch.softmax(tx.detach(), 0).numpy(), **AUTOGRAD, err_msg="[softmax]"
    )


@given(seed=seeds, n=st.integers(1, 20))
def test_softmax_backward_general_matches_torch(seed, n):
    # Catches a wrong Jacobian product for an upstream gradient that is not cross-entropy's
    # (say mse after Softmax): s * (g - sum(g * s)) against autograd.
    torch = torch_module()
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, (n, 1))
    g = rng.normal(size=(n, 1))
    s = reference.softmax_layer_forward(x)
    tx = as_torch(x)
    (torch.softmax(tx, 0) * as_torch(g, grad=False)).sum().backward()
    np.testing.assert_allclose(reference.softmax_layer_backward(s, g), tx.grad.numpy(), **AUTOGRAD)
    # A CrossEntropyGradient of other probabilities takes the general product too.
    other = d_cross_entropy(reference.softmax_layer_forward(x + 1.0), soft_target(rng, n))
    if not np.array_equal(other.probabilities, s):
        np.testing.assert_array_equal(
            reference.softmax_layer_backward(s, other),
            reference.softmax_backward(np.asarray(s), np.asarray(other)),
        )


def test_softmax_backward_finite_differences():
    # Catches a Jacobian product that is not the derivative of the forward pass (both sides of
    # torch's test could share a transposition; central differences cannot).
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 1))
    g = rng.normal(size=(7, 1))
    s = reference.softmax_layer_forward(x)
    numeric = numeric_gradient(lambda: float(np.sum(reference.softmax_forward(x)[0] * g)), x)
    np.testing.assert_allclose(reference.softmax_layer_backward(s, g), numeric, **FD)
    y = soft_target(rng, 7)
    numeric = numeric_gradient(
        lambda: float(cross_entropy(reference.softmax_layer_forward(x), y)), x
    )
    d_x = reference.softmax_layer_backward(s, d_cross_entropy(s, y))
    np.testing.assert_allclose(d_x, numeric, **FD)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target", [0, 1, 2])
def test_softmax_cross_entropy_extreme_logits(dtype, target):
    # Catches NaN or inf from the per-layer path on logits of ±1000 (np.log of an underflowed
    # probability, 0 * -inf, -1 / 0 times a zero Jacobian), and a logit gradient that is not
    # softmax - actual to the last bit. filterwarnings=error turns any overflow, divide or invalid
    # warning into a failure.
    x = np.array([[1000.0], [-1000.0], [0.0]], dtype)
    y = one_hot(3, target).astype(dtype)
    s = reference.softmax_layer_forward(x)
    loss = cross_entropy(s, y)
    # log-sum-exp by hand: max + log(sum(exp(x - max))) = 1000 + log(1 + exp(-1000) + exp(-2000))
    expected = 1000.0 - float(x[target, 0])
    assert np.isfinite(loss)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6 if dtype == np.float32 else 1e-12)
    d_x = reference.softmax_layer_backward(s, d_cross_entropy(s, y))
    assert d_x.dtype == dtype
    assert np.all(np.isfinite(d_x))
    np.testing.assert_array_equal(d_x, np.asarray(s) - y)


def test_softmax_extreme_logits_match_torch():
    # Catches a stable-looking loss that is still off from torch's log-sum-exp at large logits.
    torch = torch_module()
    x = np.array([[1000.0], [-1000.0], [999.0], [0.0]])
    y = np.array([[0.25], [0.25], [0.5], [0.0]])
    s = reference.softmax_layer_forward(x)
    tx = as_torch(x)
    t_loss = torch.nn.functional.cross_entropy(tx.T, as_torch(y.T, grad=False))
    t_loss.backward()
    np.testing.assert_allclose(cross_entropy(s, y), t_loss.item(), **AUTOGRAD)
    np.testing.assert_allclose(
        reference.softmax_layer_backward(s, d_cross_entropy(s, y)), tx.grad.numpy(), **AUTOGRAD
    )


def test_cross_entropy_of_plain_probabilities():
    # Catches cross_entropy of plain arrays (no carried log) that is not -sum(actual * log(p)),
    # or that turns 0 * log(0) into NaN (with a warning, an error here).
    p = np.array([[0.7], [0.3], [0.0]])
    y = np.array([[1.0], [0.0], [0.0]])
    assert cross_entropy(p, y) == -np.log(0.7)
    g = d_cross_entropy(p, y)
    np.testing.assert_array_equal(g, [[-1 / 0.7], [0.0], [0.0]])
    assert isinstance(g, CrossEntropyGradient) and g.probabilities is p and g.actual is not None
    # The true gradient at an underflowed probability is -inf; no warning on the way.
    assert d_cross_entropy(np.array([[1.0], [0.0]]), np.array([[0.0], [1.0]]))[1, 0] == -np.inf


@pytest.mark.parametrize(
    "actual, message",
    [
        (
            [[1.0], [0.0]],
            "cross_entropy: predicted has shape (3, 1) but actual has shape (2, 1); they must "
            "match (one probability per class)",
        ),
        (
            [[1.5], [-0.5], [0.0]],
            "cross_entropy: actual (shape (3, 1)) must be a probability distribution, but it has "
            "negative entries (smallest -0.5); pass one-hot or soft targets",
        ),
        (
            [[1.0], [1.0], [0.0]],
            "cross_entropy: actual (shape (3, 1)) must be a probability distribution summing to 1 "
            "(within 1e-05), but it sums to 2.0; pass one-hot or soft targets",
        ),
        (
            [[np.nan], [0.0], [0.0]],
            "cross_entropy: actual (shape (3, 1)) must be a probability distribution, but it has "
            "non-finite entries (NaN or inf); pass one-hot or soft targets",
        ),
    ],
)
def test_cross_entropy_rejects_bad_targets(actual, message):
    # Catches targets that are not a distribution (a class index, two hot entries, a negative)
    # giving a number instead of one error naming the shapes and values; d_cross_entropy too.
    p = reference.softmax_layer_forward(np.array([[1.0], [2.0], [3.0]]))
    with pytest.raises(ValueError, match=re.escape(message)):
        cross_entropy(p, np.array(actual))
    with pytest.raises(ValueError, match=re.escape(message.replace("cross_", "d_cross_", 1))):
        d_cross_entropy(p, np.array(actual))


def test_cross_entropy_accepts_rounded_soft_targets():
    # Catches a target check so tight that float32 label smoothing (sum 1 within ~1e-7) fails.
    y = np.full((10, 1), 0.1, np.float32)
    p = reference.softmax_layer_forward(np.linspace(0, 1, 10).reshape(10, 1).astype(np.float32))
    assert np.isfinite(cross_entropy(p, y))


def test_carriers_do_not_spread():
    # Catches the carried log-softmax surviving arithmetic or a view (a stale log would give a
    # wrong loss silently), and a carrier that cannot be deep-copied or pickled as a plain array.
    s = reference.softmax_layer_forward(np.array([[1.0], [2.0]]))
    assert isinstance(s, SoftmaxOutput) and s.log_softmax is not None
    for derived in (s * 2, s + s, np.exp(s), s - np.ones((2, 1)), np.sum(s)):
        assert type(derived) is not SoftmaxOutput, type(derived)
    assert getattr(s[:1], "log_softmax", None) is None
    assert getattr(s.reshape(2), "log_softmax", None) is None
    doubled = s * 2
    assert cross_entropy(doubled / 2, one_hot(2, 0)) == -np.log(np.asarray(s)[0, 0] * 2 / 2)
    for clone in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert type(clone) is np.ndarray
        np.testing.assert_array_equal(clone, s)
    g = d_cross_entropy(s, one_hot(2, 1))
    assert type(g * 1.0) is np.ndarray and type(copy.deepcopy(g)) is np.ndarray


def test_carried_log_is_used():
    # Catches cross_entropy ignoring the carried log-softmax (the ±1000 test would then warn);
    # shown directly with a log that differs from np.log(s).
    s = SoftmaxOutput(np.array([[0.5], [0.5]]), np.array([[-7.0], [-9.0]]))
    assert cross_entropy(s, np.array([[1.0], [0.0]])) == 7.0


# --------------------------------------------------------------------------------------------------
# binary cross-entropy


@given(seed=seeds, n=st.integers(1, 20))
def test_binary_cross_entropy_matches_torch(seed, n):
    # Catches a BCE that is not BCELoss's mean, or a gradient that is not its autograd's.
    torch = torch_module()
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, (n, 1))
    y = rng.uniform(0.0, 1.0, (n, 1))
    tp = as_torch(p)
    t_loss = torch.nn.functional.binary_cross_entropy(tp, as_torch(y, grad=False))
    t_loss.backward()
    np.testing.assert_allclose(binary_cross_entropy(p, y), t_loss.item(), **AUTOGRAD)
    np.testing.assert_allclose(d_binary_cross_entropy(p, y), tp.grad.numpy(), **AUTOGRAD)


def test_binary_cross_entropy_clamps_as_torch():
    # Catches p = 0 or 1 giving inf/NaN (or a warning) instead of BCELoss's clamp at -100, and
    # the backward's 1e-12 floor; tiny p checks log1p(-p) against log(1 - p)'s cancellation.
    torch = torch_module()
    p = np.array([[0.0], [1.0], [0.0], [1.0], [1e-300], [1e-17], [0.5]])
    y = np.array([[0.0], [1.0], [1.0], [0.0], [0.0], [0.0], [1.0]])
    tp = as_torch(p)
    t_loss = torch.nn.functional.binary_cross_entropy(tp, as_torch(y, grad=False))
    t_loss.backward()
    np.testing.assert_allclose(binary_cross_entropy(p, y), t_loss.item(), **AUTOGRAD)
    np.testing.assert_allclose(d_binary_cross_entropy(p, y), tp.grad.numpy(), **AUTOGRAD)
    assert binary_cross_entropy(np.array([[1e-17]]), np.array([[0.0]])) == 1e-17


def test_binary_cross_entropy_finite_differences():
    # Catches a BCE gradient that is not the derivative of the loss (divided by size twice, say).
    rng = np.random.default_rng(5)
    p = rng.uniform(0.1, 0.9, (6, 1))
    y = rng.uniform(0.0, 1.0, (6, 1))
    numeric = numeric_gradient(lambda: float(binary_cross_entropy(p, y)), p)
    np.testing.assert_allclose(d_binary_cross_entropy(p, y), numeric, **FD)


# --------------------------------------------------------------------------------------------------
# pooling


@st.composite
def pool_cases(draw, max_side=12):
    """(depth, h, w, size, stride): the pool size drawn first and bounding h and w from below, so
    every draw is valid; odd sizes and strides below, at and above the size."""
    size = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 6))
    height = draw(st.integers(size, max_side))
    width = draw(st.integers(size, max_side))
    depth = draw(st.integers(1, 3))
    return depth, height, width, size, stride


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(case=pool_cases(), seed=seeds, ties=st.booleans())
def test_pool_matches_torch(kind, case, seed, ties):
    # Catches pooling that differs from PyTorch's max_pool2d / avg_pool2d: a window off by one,
    # odd sizes rounded up, overlapping windows (stride < size) not adding up, and (with small
    # integer inputs, so windows hold equal maxima) a tie given to another than the first maximum.
    torch = torch_module()
    depth, height, width, size, stride = case
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(0, 3, (depth, height, width)).astype(np.float64)
    else:
        x = rng.normal(size=(depth, height, width))
    forward = getattr(reference, f"{kind}pool_forward")
    backward = getattr(reference, f"{kind}pool_backward")
    y = forward(x, size, stride)
    assert y.shape == reference.pool_output_shape(x.shape, size, stride)
    g = rng.normal(size=y.shape)
    tx = as_torch(x[None])
    pooled = getattr(torch.nn.functional, f"{kind}_pool2d")(tx, size, stride)
    (pooled * as_torch(g[None], grad=False)).sum().backward()
    np.testing.assert_allclose(y, pooled[0].detach().numpy(), **AUTOGRAD, err_msg="[output]")
    np.testing.assert_allclose(
        backward(x, g, size, stride), tx.grad[0].numpy(), **AUTOGRAD, err_msg="[d_input]"
    )


def test_maxpool_ties_go_to_the_first_maximum():
    # Catches the last maximum (or every maximum) taking a tied window's gradient; PyTorch's rule
    # is the first in row-major order. Checked by hand, without torch.
    x = np.array([[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0], [2.0, 3.0, 1.0]]])
    g = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    np.testing.assert_array_equal(reference.maxpool_forward(x, 2, 1), [[[3.0, 3.0], [3.0, 3.0]]])
    # First maxima: windows (0,0) and (0,1) at (0,1); (1,0) at (1,0); (1,1) at (1,2).
    expected = np.array([[[0.0, 30.0, 0.0], [30.0, 0.0, 40.0], [0.0, 0.0, 0.0]]])
    np.testing.assert_array_equal(reference.maxpool_backward(x, g, 2, 1), expected)


def test_pool_odd_sizes_floor():
    # Catches an odd input rounded up (a partial window read past the edge) instead of floored.
    x = np.arange(2 * 7 * 5, dtype=np.float64).reshape(2, 7, 5)
    assert reference.pool_output_shape(x.shape, 2, 2) == (2, 3, 2)
    assert reference.maxpool_forward(x, 2, 2).shape == (2, 3, 2)
    assert reference.avgpool_forward(x, 3, 2).shape == (2, 3, 2)
    d = reference.maxpool_backward(x, np.ones((2, 3, 2)), 2, 2)
    assert not d[:, 6, :].any() and not d[:, :, 4].any()  # the dropped row and column


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_finite_differences(kind):
    # Catches a pooling gradient that is not the forward pass's derivative (distinct values, so
    # max-pooling is differentiable at the point).
    rng = np.random.default_rng(7)
    x = rng.permutation(np.arange(2 * 7 * 6, dtype=np.float64)).reshape(2, 7, 6) / 10
    forward = getattr(reference, f"{kind}pool_forward")
    backward = getattr(reference, f"{kind}pool_backward")
    g = rng.normal(size=forward(x, 3, 2).shape)
    numeric = numeric_gradient(lambda: float(np.sum(forward(x, 3, 2) * g)), x)
    np.testing.assert_allclose(backward(x, g, 3, 2), numeric, **FD)


# --------------------------------------------------------------------------------------------------
# padded convolution with per-pixel or per-filter biases


@st.composite
def conv_cases(draw, max_side=9):
    """(depth, h, w, k, count, padding): the filter size first; the padded input bounds it."""
    k = draw(st.integers(1, 5))
    padding = draw(st.integers(0, 3))
    low = max(1, k - 2 * padding)
    height = draw(st.integers(low, max_side))
    width = draw(st.integers(low, max_side))
    depth = draw(st.integers(1, 3))
    count = draw(st.integers(1, 3))
    return depth, height, width, k, count, padding


@pytest.mark.parametrize("bias", ["filter", "pixel"])
@given(case=conv_cases(), seed=seeds)
def test_conv_padded_matches_torch(bias, case, seed):
    # Catches a padded convolution that is not torch's conv2d(padding=p): padding on one side
    # only, an unflipped filter in the input gradient, a d_input not cropped back, per-filter bias
    # gradients not summed over the pixels.
    torch = torch_module()
    depth, height, width, k, count, padding = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(depth, height, width))
    filters = rng.normal(size=(count, depth, k, k))
    oh, ow = height + 2 * padding - k + 1, width + 2 * padding - k + 1
    biases = rng.normal(size=(count, 1, 1) if bias == "filter" else (count, oh, ow))
    y = reference.conv_forward_padded(x, filters, biases, padding)
    g = rng.normal(size=y.shape)
    tx, tf, tb = as_torch(x[None]), as_torch(filters), as_torch(biases)
    ty = torch.nn.functional.conv2d(tx, tf, padding=padding)[0] + tb
    (ty * as_torch(g, grad=False)).sum().backward()
    d_input, d_filters, d_biases = reference.conv_gradient_padded(
        x, filters, biases.shape, g, padding
    )
    np.testing.assert_allclose(y, ty.detach().numpy(), **AUTOGRAD, err_msg="[output]")
    np.testing.assert_allclose(d_input, tx.grad[0].numpy(), **AUTOGRAD, err_msg="[d_input]")
    np.testing.assert_allclose(d_filters, tf.grad.numpy(), **AUTOGRAD, err_msg="[d_filters]")
    np.testing.assert_allclose(d_biases, tb.grad.numpy(), **AUTOGRAD, err_msg="[d_biases]")


def test_conv_padded_unpadded_is_the_notebook():
    # Catches padding=0 with per-pixel biases changing a bit of the notebook's convolution.
    rng = np.random.default_rng(11)
    x, filters = rng.normal(size=(2, 8, 7)), rng.normal(size=(3, 2, 3, 3))
    biases, g = rng.normal(size=(3, 6, 5)), rng.normal(size=(3, 6, 5))
    np.testing.assert_array_equal(
        reference.conv_forward_padded(x, filters, biases, 0),
        reference.conv_forward(x, filters, biases),
    )
    d_input, d_filters, d_biases = reference.conv_gradient_padded(x, filters, biases.shape, g, 0)
    expected = reference.conv_gradient(x, filters, g)
    np.testing.assert_array_equal(d_input, expected[0])
    np.testing.assert_array_equal(d_filters, expected[1])
    assert d_biases is g


@pytest.mark.parametrize("bias", ["filter", "pixel"])
def test_conv_padded_finite_differences(bias):
    # Catches padded-convolution gradients that are not the forward pass's derivatives, for the
    # input, the filters and either bias shape.
    rng = np.random.default_rng(13)
    x = rng.normal(size=(2, 5, 4))
    filters = rng.normal(size=(2, 2, 3, 3))
    biases = rng.normal(size=(2, 1, 1) if bias == "filter" else (2, 7, 6))
    g = rng.normal(size=(2, 7, 6))

    def loss():
        return float(np.sum(reference.conv_forward_padded(x, filters, biases, 2) * g))

    analytic = reference.conv_gradient_padded(x, filters, biases.shape, g, 2)
    for name, array, grad in zip(
        ("input", "filters", "biases"), (x, filters, biases), analytic, strict=True
    ):
        np.testing.assert_allclose(grad, numeric_gradient(loss, array), **FD, err_msg=f"[{name}]")


def test_pad_and_crop():
    # Catches pad/crop that are not inverses or pad unevenly.
    x = np.arange(12.0).reshape(1, 3, 4)
    padded = reference.pad(x, 2)
    assert padded.shape == (1, 7, 8) and padded.sum() == x.sum()
    np.testing.assert_array_equal(reference.crop(padded, 2), x)
    assert padded[0, 2, 2] == 0.0 and padded[0, 4, 5] == 11.0


def test_functions_constants_are_torch_defaults():
    # Catches a slope or clamp drifting from PyTorch's defaults.
    assert functions.LEAKY_RELU_SLOPE == 0.01
    assert functions.BCE_LOG_FLOOR == -100.0
    assert np.float32(1e-12) == functions.BCE_EPSILON
