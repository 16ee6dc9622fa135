"""Mini-batch training (``Network.train(batch_size=, shuffle=, rng=)``) and ``predict_batch``: the
compiled batch loop against the per-layer oracle, batch size 1 against today's per-sample SGD,
the mean gradient against finite differences, and the errors and edge cases of the API."""

import re

import numpy as np
import pytest

from fastcnn import (
    Activation,
    Convolution,
    Linear,
    Network,
    Reshape,
    cli,
    d_mse,
    d_sigmoid,
    load,
    mse,
    sigmoid,
)
from fastcnn.models import mnist_cnn

from .conftest import DTYPES

# The compiled batch loop sums a batch's gradients in another order than the oracle (GEMM, and
# the convolution's taps summed over the whole batch): float64 sums of a few hundred terms differ
# by ~1e-16 relative per step; two epochs of 300 MNIST samples drift to ~1e-16 absolute (measured
# 5.6e-17). 1e-9 is the bound, far below any real bug (a missing 1/B is off by 30x).
BATCH_F64 = dict(rtol=1e-9, atol=1e-9)


def per_layer_mse(predicted, actual):
    # Not `fastcnn.mse` itself, so Network.train takes the per-layer path with the same numbers.
    return mse(predicted, actual)


def params(net):
    return [p.copy() for layer in net.layers for p in layer.parameters()]


def assert_params(a, b, what, **tol):
    for k, (p, q) in enumerate(zip(params(a), params(b), strict=True)):
        np.testing.assert_allclose(p, q, err_msg=f"{what}: parameter {k}", **tol)


def small_net(dtype=np.float64, backend="numba", seed=0):
    """Two convolutions (so one computes an input gradient), two dense layers, sigmoids."""
    return Network(
        [
            Convolution((1, 6, 6), 3, 2, dtype=dtype, backend=backend, rng=seed),
            Activation(sigmoid, d_sigmoid),
            Convolution((2, 4, 4), 2, 2, dtype=dtype, backend=backend, rng=seed + 1),
            Activation(sigmoid, d_sigmoid),
            Reshape((2, 3, 3), (18, 1)),
            Linear(18, 7, dtype=dtype, backend=backend, rng=seed + 2),
            Activation(sigmoid, d_sigmoid),
            Linear(7, 3, dtype=dtype, backend=backend, rng=seed + 3),
            Activation(sigmoid, d_sigmoid),
        ]
    )


def small_data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 1, 6, 6))
    y = np.eye(3)[rng.integers(0, 3, n)].reshape(n, 3, 1)
    return x, y


@pytest.mark.slow
@pytest.mark.mnist
def test_batch_numba_equals_scipy_on_mnist(mnist_sample):
    # Catches a compiled batch loop that differs from the notebook's maths averaged per batch: a
    # wrong mean (sum, or 1/32 on the short last batch), a gradient taken after a partial update,
    # a GEMM transposed, the short last batch (300 = 9 * 32 + 12) reading stale rows.
    x, y = mnist_sample
    nets = [mnist_cnn(init="xavier", rng=0, backend=b) for b in ("numba", "scipy")]
    runs = [net.train(x, y, mse, d_mse, 2, 0.5, verbose=False, batch_size=32) for net in nets]
    np.testing.assert_allclose(runs[0], runs[1], err_msg="epoch losses", **BATCH_F64)
    assert_params(nets[0], nets[1], "numba vs scipy, B=32", **BATCH_F64)
    # and the batches did move the weights (a run that updates nothing would pass the above)
    assert runs[0][1] < runs[0][0]


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_batch_size_1_is_per_sample_sgd_bit_for_bit(backend):
    # Catches batch_size=1 taking the batch path (mean of one gradient, other rounding) instead
    # of today's per-sample SGD, and a shuffled per-sample run that is not the same loop over the
    # permuted samples.
    x, y = small_data(20)
    a, b, c, d = (small_net(backend=backend) for _ in range(4))
    la = a.train(x, y, mse, d_mse, 2, 0.5, verbose=False)
    lb = b.train(x, y, mse, d_mse, 2, 0.5, verbose=False, batch_size=1)
    assert list(la) == list(lb)
    assert_params(a, b, "batch_size=1", rtol=0, atol=0)
    c.train(x, y, mse, d_mse, 2, 0.5, verbose=False, shuffle=True, rng=3)
    orders = np.random.RandomState(3)
    for _ in range(2):
        order = orders.permutation(len(x))
        d.train(x[order], y[order], mse, d_mse, 1, 0.5, verbose=False)
    assert_params(c, d, "shuffled batch_size=1", rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_per_layer_path_equals_compiled(dtype):
    # Catches the per-layer batch path (custom loss, subclassed layers) and the compiled one
    # disagreeing: gradients summed at moving parameters, or a layer's grads misassigned.
    x, y = small_data(23)
    compiled, per_layer = small_net(dtype), small_net(dtype)
    lc = compiled.train(x, y, mse, d_mse, 3, 0.5, verbose=False, batch_size=5)
    lp = per_layer.train(x, y, per_layer_mse, d_mse, 3, 0.5, verbose=False, batch_size=5)
    tol = BATCH_F64 if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lc, lp, err_msg="epoch losses", **tol)
    assert_params(compiled, per_layer, "compiled vs per-layer", **tol)


@pytest.mark.parametrize("loss", [mse, per_layer_mse], ids=["compiled", "per-layer"])
def test_batch_step_is_mean_gradient_finite_differences(loss):
    # Catches a step that is not rate * the mean gradient of the batch's mean loss: a sum instead
    # of a mean, a missing sample, a wrong sign. One step on a batch of 5 with rate r gives
    # (before - after) / r; central differences of L(p) = mean_b mse(net(x_b), y_b) give dL/dp.
    x, y = small_data(5, seed=4)
    net = small_net(seed=5)
    before = params(net)
    rate = 1e-3  # (before - after) / rate then carries ~1e-16 / 1e-3 rounding: far below FD_TOL
    net.train(x, y, loss, d_mse, 1, rate, verbose=False, batch_size=5)
    stepped = [(b - a) / rate for b, a in zip(before, params(net), strict=True)]
    probe = small_net(seed=5)
    flat_y = y.reshape(len(y), -1)

    def mean_loss():
        return float(np.mean(np.mean((flat_y - probe.predict_batch(x)) ** 2, axis=1)))

    h = 1e-5
    for k, p in enumerate(q for layer in probe.layers for q in layer.parameters()):
        numeric = np.empty(p.shape)
        for i in np.ndindex(p.shape):
            keep = p[i]
            p[i] = keep + h
            up = mean_loss()
            p[i] = keep - h
            down = mean_loss()
            p[i] = keep
            numeric[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(stepped[k], numeric, rtol=1e-5, atol=1e-8, err_msg=f"param {k}")


def test_shuffle_repeatable_and_new_order_each_epoch():
    # Catches shuffling that ignores the seed, draws one order for all epochs, or draws from the
    # wrong source: a seeded run equals unshuffled batch runs over the orders that
    # RandomState(seed).permutation draws, epoch after epoch.
    x, y = small_data(30)
    a, b, c = small_net(), small_net(), small_net()
    a.train(x, y, mse, d_mse, 2, 0.5, verbose=False, batch_size=4, shuffle=True, rng=11)
    orders = np.random.RandomState(11)
    first, second = orders.permutation(30), orders.permutation(30)
    assert not np.array_equal(first, second)
    for order in (first, second):
        b.train(x[order], y[order], mse, d_mse, 1, 0.5, verbose=False, batch_size=4)
    assert_params(a, b, "seeded shuffle", rtol=0, atol=0)
    for _ in range(2):  # the first order twice: not what a new order per epoch gives
        c.train(x[first], y[first], mse, d_mse, 1, 0.5, verbose=False, batch_size=4)
    assert any(not np.array_equal(p, q) for p, q in zip(params(a), params(c), strict=True))
    # None draws from NumPy's global state, so np.random.seed repeats a run
    d, e = small_net(), small_net()
    for net in (d, e):
        np.random.seed(11)
        net.train(x, y, mse, d_mse, 2, 0.5, verbose=False, batch_size=4, shuffle=True)
    assert_params(d, e, "np.random.seed", rtol=0, atol=0)
    assert_params(a, d, "None vs RandomState(11)", rtol=0, atol=0)
    # a Generator passed across calls keeps drawing new orders
    f, g = small_net(), small_net()
    gen = np.random.default_rng(1)
    f.train(x, y, mse, d_mse, 1, 0.5, verbose=False, batch_size=4, shuffle=True, rng=gen)
    f.train(x, y, mse, d_mse, 1, 0.5, verbose=False, batch_size=4, shuffle=True, rng=gen)
    orders = np.random.default_rng(1)
    for _ in range(2):
        order = orders.permutation(30)
        g.train(x[order], y[order], mse, d_mse, 1, 0.5, verbose=False, batch_size=4)
    assert_params(f, g, "Generator", rtol=0, atol=0)


@pytest.mark.parametrize(
    "path",
    [("numba", mse), ("scipy", mse), ("numba", per_layer_mse)],
    # Names, not reprs: a function's repr holds its address, which differs between pytest-xdist's
    # workers, and they must collect the same test ids.
    ids=["compiled", "scipy", "per-layer"],
)
@pytest.mark.parametrize(
    ("batch_size", "error", "message"),
    [
        (0, ValueError, "batch_size must be at least 1, got 0."),
        (-3, ValueError, "batch_size must be at least 1, got -3."),
        (2.0, TypeError, "batch_size must be an integer, got 2.0 of type float."),
        (True, TypeError, "batch_size must be an integer, got True of type bool."),
        ("4", TypeError, "batch_size must be an integer, got '4' of type str."),
    ],
)
def test_bad_batch_size_errors_weights_untouched(path, batch_size, error, message):
    # Catches a bad batch_size reaching a loop (range step 0, a float slice) or being checked
    # only after an epoch changed the weights, on any of the three paths.
    backend, loss = path
    x, y = small_data(6)
    net = small_net(backend=backend)
    before = params(net)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        net.train(x, y, loss, d_mse, 1, 0.5, verbose=False, batch_size=batch_size)
    for p, q in zip(before, params(net), strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("loss", [mse, per_layer_mse], ids=["compiled", "per-layer"])
def test_batch_larger_than_data_is_one_batch(loss):
    # Catches a batch larger than the data read past the samples (the compiled buffers are sized
    # for the batch) or being refused: it is one step on all the samples.
    x, y = small_data(7)
    a, b = small_net(), small_net()
    la = a.train(x, y, loss, d_mse, 2, 0.5, verbose=False, batch_size=1000)
    lb = b.train(x, y, loss, d_mse, 2, 0.5, verbose=False, batch_size=7)
    assert list(la) == list(lb)
    assert_params(a, b, "B=1000 vs B=7", rtol=0, atol=0)


# The scipy path's NumPy warns about the overflow and the nan it makes on purpose.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(
    "path",
    [("numba", mse), ("scipy", mse), ("numba", per_layer_mse)],
    # Names, not reprs: a function's repr holds its address, which differs between pytest-xdist's
    # workers, and they must collect the same test ids.
    ids=["compiled", "scipy", "per-layer"],
)
def test_nan_loss_inside_batch_stops_before_its_update(path):
    # Catches a batch applied although one of its losses is nan (the weights would all be nan),
    # or the error raised after the update, or the earlier batches' updates lost.
    backend, loss = path

    def net():
        return Network(
            [
                Linear(4, 3, backend=backend, rng=1),
                Linear(3, 2, backend=backend, rng=2),
                Activation(sigmoid, d_sigmoid),
            ]
        )

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (10, 4, 1))
    x[5] = 1e308  # finite, but the first layer outputs +inf and -inf, which the second adds
    y = np.eye(2)[rng.integers(0, 2, 10)].reshape(10, 2, 1)
    a, b = net(), net()
    for n in (a, b):
        # Not inf - inf inside one dot product: BLAS may fuse it into fma(-2, 1e308, inf) = inf.
        n.layers[0].weights[:2] = ((2.0, 2.0, 0.0, 0.0), (-2.0, -2.0, 0.0, 0.0))
        n.layers[1].weights[0] = (1.0, 1.0, 0.5)  # inf * 1 + -inf * 1 = nan, fused or not
    with pytest.raises(FloatingPointError, match=r"^Epoch 1, sample 5 \(of the batch starting at"):
        a.train(x, y, loss, d_mse, 1, 0.5, verbose=False, batch_size=4)
    b.train(x[:4], y[:4], loss, d_mse, 1, 0.5, verbose=False, batch_size=4)
    assert_params(a, b, "weights after the first batch", rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.mnist
def test_float32_and_two_threads_track_float64_one_thread(mnist_sample):
    # Catches the float32 batch loop or BLAS on two threads computing something else (a dtype
    # mixed up, a race): their epoch losses track the float64 one-thread run.
    x, y = mnist_sample
    runs = {}
    for dtype, threads in ((np.float64, 1), (np.float32, 1), (np.float64, 2), (np.float32, 2)):
        net = mnist_cnn(init="xavier", rng=0, dtype=dtype, num_threads=threads)
        runs[dtype, threads] = net.train(x, y, mse, d_mse, 2, 0.5, verbose=False, batch_size=32)
    reference = runs[np.float64, 1]
    np.testing.assert_allclose(runs[np.float64, 2], reference, rtol=1e-9)
    np.testing.assert_allclose(runs[np.float32, 1], reference, rtol=1e-3)
    np.testing.assert_allclose(runs[np.float32, 2], reference, rtol=1e-3)


@pytest.mark.parametrize("backend", ["numba", "scipy"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_batch_equals_stacked_predict(backend, dtype):
    # Catches batched prediction that drops or repeats samples across its batches of 128, mixes
    # rows of a batch, or returns another shape than (N, outputs).
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (300, 1, 6, 6))
    net = small_net(dtype, backend)
    got = net.predict_batch(x)
    want = np.stack([net.predict(v).ravel() for v in x])
    assert got.shape == (300, 3)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, want, **tol)
    assert net.predict_batch(x[:1]).shape == (1, 3)
    labels = want.argmax(axis=1)
    assert net.evaluate(x, labels) == 1.0


def test_predict_batch_bad_shape():
    # Catches predict_batch taking one sample (or a wrong shape) and reading out of bounds.
    with pytest.raises(ValueError, match=r"^xs has samples of shape \(6, 6\)"):
        small_net().predict_batch(np.zeros((1, 6, 6)))


@pytest.mark.slow
@pytest.mark.mnist
def test_cli_batch_size_and_shuffle(tmp_path, mnist_dir, capsys):
    # Catches --batch-size/--shuffle not reaching Network.train (the run would equal per-sample),
    # an unseeded shuffle (two runs differ), or a model file the batch run saves differently.
    outs = [tmp_path / f"m{k}.npz" for k in range(3)]
    common = ["--limit", 256, "--test-limit", 100, "--epochs", 2, "--init", "xavier", "--quiet"]
    for out, extra in zip(outs, ([], [], ["--seed", 1]), strict=True):
        argv = ["train", "--data", mnist_dir, "--out", out, *common, "--rate", 3]
        argv += ["--batch-size", 16, "--shuffle", *extra]
        assert cli.main([str(a) for a in argv]) == 0
    capsys.readouterr()
    models = [load(out) for out in outs]
    assert_params(models[0], models[1], "same seed", rtol=0, atol=0)
    assert any(
        not np.array_equal(p, q) for p, q in zip(params(models[0]), params(models[2]), strict=True)
    )
    # the same run through the API (seed 0: weights and order) gives the saved model
    from fastcnn.datasets import load_mnist, one_hot, scale_images

    (train_x, train_y), _ = load_mnist(mnist_dir, download=False)
    net = mnist_cnn(init="xavier", rng=0)
    net.train(
        scale_images(train_x[:256]),
        one_hot(train_y[:256]),
        mse,
        d_mse,
        2,
        3.0,
        verbose=False,
        batch_size=16,
        shuffle=True,
        rng=0,
    )
    assert_params(net, models[0], "API vs CLI", rtol=0, atol=0)


@pytest.mark.slow
def test_batch_entry_points_compile_once_per_dtype_and_kinds():
    # Catches the batch loop reaching Numba with per-network types (one multi-second compile per
    # network shape or batch size instead of one per dtype and set of kinds).
    import numba

    from fastcnn import _compiled
    from fastcnn.kernels import _loops

    xor = Network([Linear(2, 3, rng=0), Activation(sigmoid, d_sigmoid), Linear(3, 1, rng=0)])
    xor.train(
        np.ones((5, 2, 1)), np.ones((5, 1, 1)), mse, d_mse, 1, 0.1, verbose=False, batch_size=2
    )
    small = small_net()
    x, y = small_data(9)
    small.train(x, y, mse, d_mse, 1, 0.1, verbose=False, batch_size=4)
    small.train(x, y, mse, d_mse, 1, 0.1, verbose=False, batch_size=9)
    xor.predict_batch(np.ones((3, 2, 1)))
    small.predict_batch(x)
    deeper = Network([Linear(2, 4, rng=0), *xor.layers[1:2], Linear(4, 2, rng=0), *xor.layers])
    deeper.train(
        np.ones((5, 2, 1)), np.ones((5, 1, 1)), mse, d_mse, 1, 0.1, verbose=False, batch_size=3
    )
    deeper.predict_batch(np.ones((3, 2, 1)))
    for net in (xor, small):
        program = _compiled.program(net.layers)
        for entry, flags in (
            (_loops.train_sgd_batch, program.flag_text()),
            (_loops.predict_batch, program.flag_text(predict=True)),
        ):
            float64 = [
                s
                for s in entry.signatures
                if s[1].dtype == numba.float64 and str(s).endswith(flags)
            ]
            assert len(float64) == 1, f"{entry.__name__}: {entry.signatures}"
