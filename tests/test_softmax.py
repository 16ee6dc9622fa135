"""The Softmax layer and the cross-entropy losses on every path: the layer's kernels against its
reference (fastcnn.reference), PyTorch's autograd, the fused softmax + cross-entropy of the compiled
loops against the per-layer path (per sample and in mini-batches), logits of ±1000, model files, and
the errors for a Softmax on the wrong input and targets that are not distributions."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastcnn
from fastcnn import (
    Activation,
    Convolution,
    Linear,
    MaxPool,
    Network,
    Reshape,
    Softmax,
    _compiled,
    binary_cross_entropy,
    cross_entropy,
    d_binary_cross_entropy,
    d_cross_entropy,
    d_mse,
    d_relu,
    d_sigmoid,
    mse,
    relu,
    sigmoid,
)

from .support import AUTOGRAD, DTYPES, TRAJECTORY_F64, parameters, seeds, tolerance


def per_layer(loss):
    """A copy of a registered loss function, so Network.train takes the per-layer path with the
    same numbers (the registry knows functions by identity)."""

    def function(predicted, actual):
        return loss(predicted, actual)

    function.__name__ = loss.__name__
    return function


def one_hot(rng, n, classes):
    return np.eye(classes)[rng.integers(0, classes, n)].reshape(n, classes, 1)


def small_net(backend, seed=0, dtype=np.float64, head=None, classes=5):
    """conv 3x3 -> ReLU -> maxpool -> dense -> Softmax (or ``head``), on 8x8 images."""
    rng = np.random.RandomState(seed)
    options = dict(rng=rng, init="he", dtype=dtype)
    layers = [
        Convolution((1, 8, 8), 3, 2, **options),
        Activation(relu, d_relu),
        MaxPool((2, 6, 6), 2),
        Reshape((2, 3, 3), (18, 1)),
        Linear(18, classes, **options),
        head if head is not None else Softmax(),
    ]
    return Network(layers, backend=backend)


def assert_same_run(a, b, history_a, history_b, tol):
    np.testing.assert_allclose(history_a, history_b, rtol=tol, atol=tol, err_msg="losses")
    pa, pb = parameters(a), parameters(b)
    for name in pa:
        np.testing.assert_allclose(pa[name], pb[name], rtol=tol, atol=tol, err_msg=name)


# --------------------------------------------------------------------------------------------------
# the layer


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(n=st.integers(1, 40), scale=st.sampled_from([0.1, 3.0, 50.0]), seed=seeds)
def test_softmax_layer_matches_reference(dtype, n, scale, seed):
    # Catches a softmax without the max shift (overflow at scale 50 in float32), a wrong
    # normalisation, and a Jacobian product with a wrong sign or a missing term.
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 1)) * scale).astype(dtype)
    fast, ref = Softmax(), Softmax(backend="scipy")
    out, expected = fast.forward_prop(x), ref.forward_prop(x)
    assert out.dtype == np.dtype(dtype) and out.shape == (n, 1)
    np.testing.assert_allclose(out, expected, **tolerance(dtype))
    np.testing.assert_allclose(out.log_softmax, expected.log_softmax, **tolerance(dtype))
    g = rng.standard_normal((n, 1)).astype(dtype)
    np.testing.assert_allclose(
        fast.backward_prop(g, 0.1), ref.backward_prop(g, 0.1), **tolerance(dtype)
    )


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_softmax_layer_and_cross_entropy_match_torch(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for n in (1, 2, 10, 33):
        x = rng.standard_normal((n, 1)) * 4
        target = rng.dirichlet(np.ones(n)).reshape(n, 1)
        layer = Softmax(backend=backend)
        s = layer.forward_prop(x)
        loss = cross_entropy(s, target)
        d_x = layer.backward_prop(d_cross_entropy(s, target), 0.1)
        tx = torch.tensor(x.T, dtype=torch.float64, requires_grad=True)
        t_loss = torch.nn.functional.cross_entropy(tx, torch.tensor(target.T))
        t_loss.backward()
        np.testing.assert_allclose(s, torch.softmax(tx.detach(), 1).numpy().T, **AUTOGRAD)
        np.testing.assert_allclose(loss, t_loss.item(), **AUTOGRAD)
        np.testing.assert_allclose(d_x, tx.grad.numpy().T, **AUTOGRAD)
        # The general Jacobian product (a gradient that is not cross-entropy's).
        g = rng.standard_normal((n, 1))
        tx.grad = None
        (torch.softmax(tx, 1) * torch.tensor(g.T)).sum().backward()
        layer.forward_prop(x)
        np.testing.assert_allclose(layer.backward_prop(g, 0.1), tx.grad.numpy().T, **AUTOGRAD)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_softmax_cross_entropy_is_finite_at_1000(backend, dtype):
    # logits of ±1000: exp underflows to exact 0s. Catches np.log(0) = -inf reaching the loss
    # (0 * -inf is NaN) and a backward through -actual / 0; the gradient is softmax - actual to the
    # last bit.
    x = np.array([[1000.0], [-1000.0], [0.0], [999.0]], dtype)
    target = np.array([[0.0], [1.0], [0.0], [0.0]], dtype)
    layer = Softmax(backend=backend)
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        s = layer.forward_prop(x)
        loss = cross_entropy(s, target)
        d_x = layer.backward_prop(d_cross_entropy(s, target), 0.1)
    assert np.isfinite(loss) and loss == pytest.approx(2000.0 + np.log1p(np.exp(-1.0)), rel=1e-6)
    assert np.array_equal(d_x, np.asarray(s) - target)


def test_softmax_output_is_the_callers_to_change():
    # Catches the backward pass reading the array the caller was given (and changed).
    layer = Softmax()
    s = layer.forward_prop(np.array([[1.0], [2.0]]))
    kept = np.array(s)
    s[...] = 0
    g = np.array([[1.0], [0.0]])
    expected = kept * (g - np.sum(g * kept))
    np.testing.assert_allclose(layer.backward_prop(g, 0.1), expected, rtol=1e-15)


def test_softmax_takes_a_column():
    with pytest.raises(ValueError, match=r"Softmax\(\).*column vector \(n, 1\).*shape \(3, 4\)"):
        Softmax().forward_prop(np.zeros((3, 4)))
    net = Network([Convolution((1, 6, 6), 3, 2), Softmax()])
    with pytest.raises(
        ValueError, match=r"layer 1 \(Softmax\(\) takes a column vector.*outputs shape \(2, 4, 4\)"
    ):
        net.predict_batch(np.zeros((1, 1, 6, 6)))


# --------------------------------------------------------------------------------------------------
# training: the compiled loops against the per-layer path


@pytest.mark.parametrize("batch_size", [1, 7])
@given(seed=seeds, classes=st.integers(2, 12))
def test_softmax_cross_entropy_training_matches_per_layer(batch_size, seed, classes):
    # The compiled loops fuse Softmax and cross_entropy into one kernel over the logits and start
    # the backward pass at the layer before; the per-layer path runs the layer and the loss as
    # written. Catches a fused gradient other than softmax - actual, a backward pass that runs the
    # Softmax's Jacobian as well, a mini-batch that does not average, and the wrong layer skipped.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 1, 8, 8))
    y = one_hot(rng, 30, classes)
    fast, ref = small_net("numba", seed, classes=classes), small_net("scipy", seed, classes=classes)
    assert _compiled.program(fast.layers, cross_entropy, d_cross_entropy) is not None
    args = (cross_entropy, d_cross_entropy, 3, 0.05)
    ha = fast.train(x, y, *args, verbose=False, batch_size=batch_size)
    hb = ref.train(x, y, *args, verbose=False, batch_size=batch_size)
    assert_same_run(fast, ref, ha, hb, TRAJECTORY_F64["norm_rtol"])


@pytest.mark.parametrize("batch_size", [1, 6])
def test_per_layer_numba_path_matches_compiled(batch_size):
    # The same network on its Numba layers called from Python (loss functions the registry does
    # not know) and on the compiled loops: the Softmax layer's own kernels and its exact
    # softmax - actual for a cross-entropy gradient agree with the fused kernel to rounding.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 1, 8, 8))
    y = one_hot(rng, 20, 5)
    fast, slow = small_net("numba", 4), small_net("numba", 4)
    assert _compiled.program(slow.layers, per_layer(cross_entropy), d_cross_entropy) is None
    ha = fast.train(
        x, y, cross_entropy, d_cross_entropy, 2, 0.05, verbose=False, batch_size=batch_size
    )
    hb = slow.train(
        x,
        y,
        per_layer(cross_entropy),
        d_cross_entropy,
        2,
        0.05,
        verbose=False,
        batch_size=batch_size,
    )
    assert_same_run(fast, slow, ha, hb, TRAJECTORY_F64["norm_rtol"])


@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize(
    "head, loss",
    [
        (Activation(sigmoid, d_sigmoid), (binary_cross_entropy, d_binary_cross_entropy)),
        (Activation(sigmoid, d_sigmoid), (cross_entropy, d_cross_entropy)),  # not fused
        (Softmax(), (mse, d_mse)),  # the Softmax's own backward hook
    ],
    ids=["sigmoid-bce", "sigmoid-ce", "softmax-mse"],
)
def test_other_heads_train_on_the_compiled_loops(head, loss, batch_size):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((24, 1, 8, 8))
    y = one_hot(rng, 24, 5)
    if loss[0] is cross_entropy:  # a sigmoid's outputs are no distribution: rescale the targets
        x = x * 0.1
    fast = small_net("numba", 1, head=_copy_head(head, "numba"))
    ref = small_net("scipy", 1, head=_copy_head(head, "scipy"))
    assert _compiled.program(fast.layers, *loss) is not None
    ha = fast.train(x, y, *loss, 2, 0.05, verbose=False, batch_size=batch_size)
    hb = ref.train(x, y, *loss, 2, 0.05, verbose=False, batch_size=batch_size)
    assert_same_run(fast, ref, ha, hb, TRAJECTORY_F64["norm_rtol"])


def _copy_head(head, backend):
    if isinstance(head, Softmax):
        return Softmax(backend=backend)
    return Activation(head.activation, head.d_activation, backend=backend)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_compiled_cross_entropy_is_finite_at_1000(batch_size):
    # A dense layer scaled to give logits near ±1000: the fused kernel's log-sum-exp keeps the loss
    # finite where log(softmax) would be -inf (and the training would stop as "not finite").
    net = Network([Linear(3, 4, rng=0), Softmax()])
    net.layers[0].weights[...] = np.array([[500.0, 0, 0], [-500.0, 0, 0], [0, 500.0, 0], [0, 0, 0]])
    x = np.array([[[2.0], [0.0], [0.0]], [[0.0], [2.0], [0.0]]] * 2)
    y = np.array([[[0.0], [1.0], [0.0], [0.0]]] * 4)
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        history = net.train(x, y, cross_entropy, d_cross_entropy, 1, 1e-6, batch_size=batch_size)
    assert np.isfinite(history[0]) and history[0] > 1000


def test_cross_entropy_refuses_targets_that_are_not_distributions():
    # On every path and before any update: the weights stay as they were.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 8, 8))
    for backend in ("numba", "scipy"):
        net = small_net(backend)
        before = parameters(net)
        for bad, what in [
            (np.full((4, 5, 1), 0.5), r"sample 0 sums to 2\.5, not 1"),
            (
                np.array([np.eye(5)[0], np.eye(5)[1] * 2 - np.eye(5)[0], *np.eye(5)[2:4]]),
                r"sample 1 has a negative entry",
            ),
        ]:
            with pytest.raises(ValueError, match=r"probability distribution.*" + what):
                net.train(x, bad.reshape(4, 5, 1), cross_entropy, d_cross_entropy, 1, 0.1)
        after = parameters(net)
        assert all(np.array_equal(before[k], after[k]) for k in before)


def test_softmax_network_round_trips_a_model_file(tmp_path):
    net = small_net("numba", 2)
    path = tmp_path / "m.npz"
    net.save(path)
    loaded = fastcnn.load(path)
    assert isinstance(loaded.layers[-1], Softmax)
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8))
    assert np.array_equal(loaded.predict_batch(x), net.predict_batch(x))
    np.testing.assert_allclose(net.predict_batch(x).sum(axis=1), 1.0, rtol=1e-12)
