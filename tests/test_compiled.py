"""The compiled training path (kernels/_loops.py via fastcnn/_compiled.py) against the per-layer
path it replaces, the two-thread dense kernels against the one-thread ones, and the vectorised exp.
"""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcnn import (
    Activation,
    Convolution,
    Linear,
    Network,
    Reshape,
    _compiled,
    d_mse,
    d_sigmoid,
    mse,
    sigmoid,
)
from fastcnn.kernels import _loops, activation, dense
from fastcnn.models import mnist_cnn

from .support import (
    DTYPES,
    EXP_ULPS,
    RUNNING_LOSS,
    SIGMOID_ULPS,
    XOR_X,
    XOR_Y,
    loss_sum,
    parameters,
    tolerance,
    ulps,
    xor_network,
)


def per_layer_mse(predicted, actual):
    # Not `fastcnn.mse` itself, so Network.train takes the per-layer path with the same numbers.
    return mse(predicted, actual)


def conv_net(depth, side, size, count, hidden, dtype, seed, second_conv=False):
    layers = [
        Convolution((depth, side, side), size, count, dtype=dtype, rng=seed),
        Activation(sigmoid, d_sigmoid),
    ]
    out = side - size + 1
    if second_conv:  # a convolution that is not first computes an input gradient
        layers += [
            Convolution((count, out, out), 1, 2, dtype=dtype, rng=seed + 1),
            Activation(sigmoid, d_sigmoid),
        ]
        count = 2
    flat = count * out * out
    layers += [
        Reshape((count, out, out), (flat, 1)),
        Linear(flat, hidden, dtype=dtype, rng=seed + 2),
        Activation(sigmoid, d_sigmoid),
        Linear(hidden, 3, dtype=dtype, rng=seed + 3),
        Activation(sigmoid, d_sigmoid),
    ]
    return Network(layers)


def data(depth, side, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, depth, side, side)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)].reshape(n, 3, 1)
    return x, y


@pytest.mark.slow
@given(
    depth=st.integers(1, 2),
    size=st.integers(1, 4),
    extra=st.integers(0, 5),
    count=st.integers(1, 3),
    hidden=st.integers(1, 12),
    second_conv=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 1000),
)
def test_compiled_train_equals_per_layer_path(
    depth, size, extra, count, hidden, second_conv, dtype, seed
):
    # Catches the compiled loop diverging from the layers it replaces: a wrong offset into the
    # flat parameters, a skipped layer, a first-layer shortcut that changes the update.
    side = size + extra
    x, y = data(depth, side, 12, seed)
    nets = [conv_net(depth, side, size, count, hidden, dtype, seed, second_conv) for _ in range(2)]
    assert _compiled.program(nets[0].layers) is not None
    compiled = nets[0].train(x, y, mse, d_mse, 2, 0.5, verbose=False)
    reference = nets[1].train(x, y, per_layer_mse, d_mse, 2, 0.5, verbose=False)
    # Same kernels in the same order: the updates are bit for bit the same. Only the loss, which
    # the compiled loop sums itself where the seed calls np.mean, may differ in its last bits.
    for (k, a), b in zip(parameters(nets[0]).items(), parameters(nets[1]).values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)
    np.testing.assert_allclose(compiled, reference, **loss_sum(dtype))


def test_compiled_train_linear_first_layer_xor():
    # Catches the first dense layer's update-only kernel (dense_sgd) differing from the full one.
    a, b = xor_network(rng=7), xor_network(rng=7)
    la = a.train(XOR_X, XOR_Y, mse, d_mse, 50, 0.1, verbose=False)
    lb = b.train(XOR_X, XOR_Y, per_layer_mse, d_mse, 50, 0.1, verbose=False)
    for (k, p), q in zip(parameters(a).items(), parameters(b).values(), strict=True):
        np.testing.assert_array_equal(p, q, err_msg=k)
    np.testing.assert_allclose(la, lb, **loss_sum(np.float64))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_match_one_thread_and_repeat(dtype):
    # Catches a race between the two threads (results would vary run to run) and a wrong block
    # split or partial-sum combination (results would leave the one-thread run's neighbourhood).
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    x, y = data(1, 12, 6, 0)
    runs = {}
    for name, threads in (("one", 1), ("two", 2), ("two again", 2)):
        # Linear(300, 256) has more than PARALLEL_MIN_WEIGHTS weights: it is split across threads.
        net = conv_net(1, 12, 3, 3, 256, dtype, 3)
        assert dense.PARALLEL_MIN_WEIGHTS <= 300 * 256
        net.num_threads = threads
        losses = net.train(x, y, mse, d_mse, 2, 0.1, verbose=False)
        runs[name] = (losses, list(parameters(net).values()))
    for a, b in zip(runs["two"][1], runs["two again"][1], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(runs["one"][1], runs["two"][1], strict=True):
        np.testing.assert_allclose(a, b, **tolerance(dtype))
    np.testing.assert_allclose(runs["one"][0], runs["two"][0], **tolerance(dtype))
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored after training


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_two_threads_large_first_dense_layer_is_one_threads_run(dtype):
    # Catches the two-thread path's large first dense layer (the blocked kernel since it ran 3x
    # slower than one thread, each core updating rows the other had read) updating differently
    # from the one-thread update-only kernel, or writing its unused input gradient over a buffer
    # in use: with only the first layer large, nothing is summed in another order, so the whole
    # run must be the one-thread run's, bit for bit.
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (6, 700, 1))
    y = np.eye(4)[rng.integers(0, 4, 6)].reshape(6, 4, 1)
    runs = []
    for threads in (1, 2):
        net = Network(
            [
                Linear(700, 100, rng=5, dtype=dtype),
                Activation(sigmoid, d_sigmoid),
                Linear(100, 4, rng=6, dtype=dtype),
                Activation(sigmoid, d_sigmoid),
            ],
            num_threads=threads,
        )
        assert dense.PARALLEL_MIN_WEIGHTS <= 700 * 100
        losses = net.train(x, y, mse, d_mse, 3, 0.5, verbose=False)
        runs.append((losses, list(parameters(net).values())))
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])


def test_num_threads_beyond_numba_is_an_error():
    # Catches a silent fall-back to fewer threads than asked for.
    net = conv_net(1, 6, 3, 2, 4, np.float64, 0)
    net.num_threads = numba.config.NUMBA_NUM_THREADS + 1
    x, y = data(1, 6, 2, 0)
    with pytest.raises(ValueError, match=r"num_threads=\d+, but Numba runs at most \d+ threads"):
        net.train(x, y, mse, d_mse, 1, 0.1, verbose=False)


@pytest.mark.parametrize("blocks", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_block_kernels_match_serial(blocks, dtype):
    # Catches rows lost or done twice at block edges (3 blocks of 7 rows do not divide evenly).
    rng = np.random.default_rng(blocks)
    w = rng.standard_normal((7, 30)).astype(dtype)
    b = rng.standard_normal((7, 1)).astype(dtype)
    x = rng.standard_normal((30, 1)).astype(dtype)
    g = rng.standard_normal((7, 1)).astype(dtype)
    out_serial, out_blocks = np.empty((7, 1), dtype), np.empty((7, 1), dtype)
    dense.dense_forward(w, x, b, out_serial)
    dense.dense_forward_blocks(w, x, b, out_blocks, blocks)
    np.testing.assert_allclose(out_blocks, out_serial, **tolerance(dtype))
    assert out_blocks.dtype == dtype
    w1, b1, w2, b2 = w.copy(), b.copy(), w.copy(), b.copy()
    d1, d2 = np.empty_like(x), np.empty_like(x)
    dense.dense_backward_sgd(w1, b1, x, g, dtype(0.1), d1)
    dense.dense_backward_sgd_blocks(w2, b2, x, g, dtype(0.1), d2, np.empty((blocks, 30), dtype))
    np.testing.assert_array_equal(w1, w2)  # the update touches each weight once, identically
    np.testing.assert_array_equal(b1, b2)
    np.testing.assert_allclose(d2, d1, **tolerance(dtype))


def test_nan_in_compiled_path_stops_before_the_update():
    # Catches the compiled loop applying the update of the sample whose loss is not finite, or
    # naming the wrong sample.
    # A finite but huge target overflows the squared error at sample 13 only.
    x, y = data(1, 6, 20, 1)
    y = y.astype(np.float64)
    y[13, 0, 0] = 1e300
    net, twin = conv_net(1, 6, 3, 2, 4, np.float64, 5), conv_net(1, 6, 3, 2, 4, np.float64, 5)
    # errstate: run as plain Python (NUMBA_DISABLE_JIT, the coverage run), NumPy would also warn.
    with (
        np.errstate(over="ignore"),
        pytest.raises(FloatingPointError, match=r"Epoch 1, sample 13: the loss is not finite"),
    ):
        net.train(x, y, mse, d_mse, 1, 0.1, verbose=False)
    twin.train(x[:13], y[:13], mse, d_mse, 1, 0.1, verbose=False)
    for (k, a), b in zip(parameters(net).items(), parameters(twin).values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_progress_and_on_epoch_callbacks():
    # Catches progress reports that skip samples or report a wrong running loss.
    x, y = data(1, 6, 600, 2)
    net = conv_net(1, 6, 3, 2, 4, np.float64, 6)
    seen, epochs = [], []
    history = net.train(
        x,
        y,
        mse,
        d_mse,
        2,
        0.1,
        verbose=False,
        progress=lambda e, done, loss: seen.append((e, done, loss)),
        on_epoch=lambda e, h: epochs.append((e, list(h))),
    )
    assert [(e, d) for e, d, _ in seen] == [
        (1, 256),
        (1, 512),
        (1, 600),
        (2, 256),
        (2, 512),
        (2, 600),
    ]
    assert seen[2][2] == pytest.approx(history[0], **RUNNING_LOSS)
    assert epochs == [(1, history[:1]), (2, history[:2])]


def test_evaluate_compiled_equals_per_sample_predict():
    # Catches the batched prediction path disagreeing with predict().
    x, y = data(1, 8, 50, 3)
    net = conv_net(1, 8, 3, 2, 6, np.float64, 8)
    labels = y.reshape(50, 3).argmax(axis=1)
    expected = np.mean([np.argmax(net.predict(s)) == t for s, t in zip(x, labels, strict=True)])
    assert net.evaluate(x, labels) == expected
    assert net.evaluate(x, y) == expected  # one-hot labels


def test_compiled_path_declines_what_it_cannot_run():
    # Catches the compiled path taking a network it would train wrongly.
    tanh = Activation(np.tanh, lambda v: 1 - np.tanh(v) ** 2)
    assert _compiled.program([Linear(2, 2), tanh]) is None
    assert _compiled.program([Linear(2, 2, backend="scipy")]) is None
    assert _compiled.program([Linear(2, 2), Linear(2, 2, dtype=np.float32)]) is None
    assert _compiled.program([Linear(2, 2)], loss=per_layer_mse) is None
    assert _compiled.program([Linear(2, 2), Activation(sigmoid, d_sigmoid)]) is not None


@pytest.mark.parametrize(
    "dtype, low, high", [(np.float64, -745.0, 709.7), (np.float32, -103.0, 88.7)]
)
def test_exp_within_two_ulp_of_numpy(dtype, low, high):
    # Catches a wrong polynomial coefficient or range reduction in the vectorised exp.
    t = np.linspace(low, high, 200_001).astype(dtype)
    got = np.array([activation.exp(v) for v in t[::50]], dtype=dtype)
    ref = np.exp(t[::50])
    normal = ref >= np.finfo(dtype).tiny
    errors = np.abs(got[normal] - ref[normal]) / np.spacing(ref[normal])  # in ulp
    assert errors.max() <= EXP_ULPS


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_kernel_edges(dtype):
    # Catches the exp's special cases: overflow must give sigmoid 0, NaN must stay NaN (it is what
    # reveals a diverged run), and -inf/+inf inputs give exactly 1/0 as the seed's sigmoid does.
    x = np.array([-1e4, -800.0, -90.0, 0.0, 90.0, 800.0, 1e4, np.inf, -np.inf, np.nan], dtype)
    out = np.empty_like(x)
    activation.sigmoid(x, out)
    with np.errstate(over="ignore"):
        expected = sigmoid(x)
    np.testing.assert_allclose(out, expected, **ulps(dtype, SIGMOID_ULPS))
    assert out.dtype == dtype


@pytest.mark.parametrize(
    "replacement",
    [
        lambda w: w.T,  # not C-contiguous: training a flat view of it would train a copy
        lambda w: w[:, :2].copy(),  # wrong shape: the kernels would read past its end
        lambda w: w.astype(np.float32),  # wrong dtype for a float64 layer
    ],
)
def test_replaced_parameters_are_checked_on_both_numba_paths(replacement):
    # Catches a kernel reading a user-assigned weights array without the bounds it assumes.
    layer = Linear(3, 3)
    layer.weights = replacement(layer.weights)
    message = r"weights of layer Linear\(3, 3\) must be a writeable C-contiguous float64 array"
    with pytest.raises(ValueError, match=message):
        layer.forward_prop(np.zeros((3, 1)))
    with pytest.raises(ValueError, match=message):
        Network([layer]).train(
            np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), mse, d_mse, 1, 0.1, verbose=False
        )


def _float64_train_signatures():
    return {s for s in _loops.train_sgd.signatures if s[1].dtype == numba.float64}


@pytest.mark.slow
def test_one_compile_per_dtype_and_kinds_whatever_the_network_length():
    # Catches the program reaching Numba as tuples again (one signature, and a multi-second
    # compile, per network length), and the loops' flags leaking the network's length into the
    # signature: networks with the same kinds in the same positions share one compile.
    x, y = np.ones((2, 1, 28, 28)), np.zeros((2, 10, 1))
    mnist_cnn(rng=0).train(x, y, mse, d_mse, 1, 0.1, verbose=False)
    after_cnn = _float64_train_signatures()
    deeper = conv_net(1, 28, 3, 5, 12, np.float64, 0)  # conv first too, two more layers
    deeper.train(x, np.zeros((2, 3, 1)), mse, d_mse, 1, 0.1, verbose=False)
    assert _float64_train_signatures() == after_cnn
    xor = xor_network()
    xor.train(np.ones((2, 2, 1)), np.ones((2, 1, 1)), mse, d_mse, 1, 0.1, verbose=False)
    after_xor = _float64_train_signatures()
    deep_xor = Network([Linear(2, 2), Activation(sigmoid, d_sigmoid), *xor.layers])
    deep_xor.train(np.ones((2, 2, 1)), np.ones((2, 1, 1)), mse, d_mse, 1, 0.1, verbose=False)
    assert _float64_train_signatures() == after_xor
    assert len(after_xor - after_cnn) <= 1  # XOR's kinds: at most one compile more
    # The command line's "compiling..." line looks for the seed CNN's variant by its flags.
    cnn = _compiled.program(mnist_cnn(rng=0).layers, padded=True)
    assert any(cnn.flag_text() in str(s) for s in after_cnn)

    def predict_signatures():
        return {s for s in _loops.predict_batch.signatures if s[1].dtype == numba.float64}

    x2 = np.ones((2, 2, 1))
    before = predict_signatures()
    mnist_cnn(rng=0).evaluate(x, [0, 0])
    xor.evaluate(x2, [0, 0])
    after = predict_signatures()
    assert len(after - before) <= 2  # the CNN's kinds and XOR's, if not compiled before
    deeper.evaluate(x, [0, 0])
    deep_xor.evaluate(x2, [0, 0])
    assert predict_signatures() == after


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        # (kind, first layer, inner layer) of each kind present
        (lambda: mnist_cnn(rng=0), {"conv": (True, None), "dense": (None, True)}),
        (lambda: xor_network(), {"dense": (True, True)}),
        (
            lambda: conv_net(1, 5, 2, 2, 3, np.float64, 0, second_conv=True),
            {"conv": (True, True), "dense": (None, True)},
        ),
    ],
)
def test_flags_name_the_backward_branches_a_program_needs(make, expected):
    # Catches a program that leaves out a branch it runs: its layers would then take another
    # layer's update (a first convolution's instead of an inner one's input gradient), or none.
    program = _compiled.program(make().layers)
    flags = iter(program.flags)
    got = {}
    for name in _loops.KINDS:
        present = next(flags)
        first = next(flags) if _compiled.registry.KINDS[name].has_first else None
        inner = next(flags)
        if name in expected:
            got[name] = (first, inner)
        elif name != "sigmoid":
            assert present is None and first is None and inner is None, name
    assert got == expected
    assert list(flags) == [True if loss == "mse" else None for loss in _loops.LOSSES]


@pytest.mark.parametrize("dtype", DTYPES)
def test_program_regions_start_on_cache_lines(dtype):
    # Catches the flat buffers or a layer's region in them losing its 64-byte alignment: a vector
    # load that straddles two cache lines costs two, and per-sample float64 training ran 10-25 %
    # slower that way (measured).
    program = _compiled.program(mnist_cnn(rng=0, dtype=dtype).layers)
    for buffer in (program.params, program.acts, program.grads):
        assert buffer.ctypes.data % 64 == 0
    for record in program.spec:
        assert record["x"] % _compiled.LINE == 0 and record["y"] % _compiled.LINE == 0
        if record["p_end"] > record["p0"]:
            assert record["p0"] % _compiled.LINE == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_sample_programs_pad_dense_rows_to_cache_lines(dtype):
    # Catches the per-sample loop's dense rows starting mid-line again (float32 rows of 3,380
    # values: 45.5 instead of 39.4 us a sample, measured), and padded rows reaching BLAS, which
    # multiplies the weights as stored.
    layers = mnist_cnn(rng=0, dtype=dtype).layers
    padded = _compiled.program(layers, padded=True)
    compact = _compiled.program(layers)
    dense = _loops.KINDS.index("dense")
    dense_records = [r for r in padded.spec if r["op"] == dense]
    assert dense_records
    for record in dense_records:
        stride = record["p0_stride"]
        assert stride % _compiled.LINE == 0 and stride >= record["in_size"]
        assert (record["p0"] * padded.params.itemsize) % 64 == 0
    for record in compact.spec:
        if record["op"] == dense:
            assert record["p0_stride"] == record["in_size"]
    # The same parameters come back from either layout.
    before = [p.copy() for layer in layers for p in layer.parameters()]
    padded.store()
    after = [p for layer in layers for p in layer.parameters()]
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="padded rows"):
        padded.batch_buffers(4)


@pytest.mark.parametrize("batch_size", [1, 8])
def test_fused_fast_paths_are_the_gradient_then_step_loops(batch_size):
    # Catches the fused SGD fast paths (the per-sample dense backward that updates as it goes,
    # the batch GEMM that moves the weights) drifting from the loops that write every gradient
    # to gparams and step it after: per sample the two round alike, bit for bit; per batch BLAS
    # rounds the weights' step as w + alpha * t, so only the last bits may differ.
    x, y = data(1, 8, 5, 2)
    runs = []
    for fused in (True, False):
        net = conv_net(1, 8, 3, 2, 6, np.float64, 1, second_conv=True)
        program = _compiled.program(net.layers, padded=batch_size == 1, fused=fused)
        assert program is not None and (program.loops is _loops) == fused
        xs, ys = program.samples(x), program.samples(y)
        losses = np.empty(len(xs))
        for _ in range(3):
            if batch_size == 1:
                assert program.train(xs, ys, 0.5, losses) == len(xs)
            else:
                assert program.train_batch(xs, ys, batch_size, 0.5, losses) == len(xs)
        program.store()
        runs.append((losses.copy(), list(parameters(net).values())))
    (la, pa), (lb, pb) = runs
    if batch_size == 1:
        np.testing.assert_array_equal(la, lb)
        for a, b in zip(pa, pb, strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(la, lb, **tolerance(np.float64))
        for a, b in zip(pa, pb, strict=True):
            np.testing.assert_allclose(a, b, **tolerance(np.float64))
