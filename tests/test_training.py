"""Network training: the seed's MNIST CNN and XOR on both backends, float32 against float64, the
epoch lines, and the seed notebook's own code run against fastcnn."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import (
    Activation,
    Linear,
    Network,
    d_mse,
    d_sigmoid,
    mse,
    sigmoid,
)
from fastcnn.models import mnist_cnn

from .support import TRAJECTORY_F32, TRAJECTORY_F64, XOR_X, XOR_Y, parameters, xor_network

EPOCH_LINE = re.compile(r"Epoch (\d+), total loss: (\S+)")
# With np.random.seed(0) (rng=0), 3,000 of the seed's 10,000 epochs already give the truth table
# on both backends (final loss ~0.004, every output within 0.1 of its target); checked.
XOR_EPOCHS = 3000


def assert_same_run(history, other, net, other_net, norm_rtol, rtol, atol, what):
    """Per-epoch losses and every final parameter agree.

    Parameters are compared norm-wise (||a - b|| <= norm_rtol * ||a||): rounding differences of a
    few ulp per step grow along a trajectory but stay small relative to each array as a whole,
    whereas a single weight that happens to cross zero can carry a large *relative* elementwise
    error without anything being wrong. The elementwise check is therefore only a loose backstop
    for a few badly wrong elements, which a norm over 338,000 weights could dilute.
    """
    assert len(history) == len(other)
    np.testing.assert_allclose(
        np.asarray(other, float),
        np.asarray(history, float),
        rtol=rtol,
        err_msg=f"{what}: per-epoch losses",
    )
    pairs = zip(parameters(net).items(), parameters(other_net).values(), strict=True)
    for (k, a), b in pairs:
        a, b = np.asarray(a, float), np.asarray(b, float)
        diff = np.linalg.norm(a - b)
        norm = np.linalg.norm(a)
        assert diff <= norm_rtol * norm, (
            f"{what}: {k} {a.shape}: ||a - b|| = {diff:.3g}, ||a|| = {norm:.3g}"
        )
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol, err_msg=f"{what}: {k}")


@pytest.mark.mnist
def test_mnist_backends_agree(mnist_sample):
    # Catches the Numba path (compiled loop) drifting from the seed's SciPy code on the seed's CNN.
    # 600 real SGD steps: kernel bugs the small random shapes miss, a wrong layer or update order in
    # the compiled loop, a different loss sum.
    x, y = mnist_sample
    runs = {}
    for backend in ("scipy", "numba"):
        net = mnist_cnn(backend=backend, rng=0)
        history = net.train(x, y, mse, d_mse, 2, 0.1, verbose=False)
        assert isinstance(history, list) and len(history) == 2
        runs[backend] = history, net
    (h_ref, ref), (h_fast, fast) = runs["scipy"], runs["numba"]
    assert_same_run(h_ref, h_fast, ref, fast, **TRAJECTORY_F64, what="numba vs scipy")
    assert h_ref[1] < h_ref[0]


@pytest.mark.mnist
def test_mnist_per_layer_path_matches_compiled(mnist_sample):
    # Catches the compiled loop (fastcnn's mse) differing from the per-layer path (any other loss).
    x, y = mnist_sample
    x, y = x[:100], y[:100]
    compiled = mnist_cnn(rng=0)
    per_layer = mnist_cnn(rng=0)
    h_compiled = compiled.train(x, y, mse, d_mse, 1, 0.1, verbose=False)
    h_layers = per_layer.train(
        x, y, lambda p, a: mse(p, a), lambda p, a: d_mse(p, a), 1, 0.1, verbose=False
    )
    assert_same_run(
        h_layers, h_compiled, per_layer, compiled, **TRAJECTORY_F64, what="compiled vs per-layer"
    )


@pytest.mark.mnist
def test_mnist_float32_tracks_float64(mnist_sample):
    # Catches a float32 path that is wrong rather than merely less precise.
    x, y = mnist_sample
    runs = {}
    for dtype in (np.float64, np.float32):
        net = mnist_cnn(dtype=dtype, rng=0)
        runs[dtype] = net.train(x, y, mse, d_mse, 2, 0.1, verbose=False), net
    (h64, net64), (h32, net32) = runs[np.float64], runs[np.float32]
    assert all(p.dtype == np.float32 for p in parameters(net32).values())
    assert_same_run(h64, h32, net64, net32, **TRAJECTORY_F32, what="float32 vs float64")


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_xor_learns_truth_table(backend):
    # Catches a training loop that cannot learn XOR (update sign, first layer or biases untrained).
    net = xor_network(backend=backend)
    history = net.train(XOR_X, XOR_Y, mse, d_mse, XOR_EPOCHS, 0.1, verbose=False)
    assert len(history) == XOR_EPOCHS and history[-1] < 0.01 < history[0]
    for x, y in zip(XOR_X, XOR_Y, strict=True):
        predicted = net.predict(x)[0][0]
        assert round(predicted) == y[0][0], f"XOR{tuple(x.ravel())} predicted {predicted}"


def test_xor_backends_agree():
    # Catches the Numba path (Linear first: dense_sgd) drifting from the seed's code on XOR.
    runs = []
    for backend in ("scipy", "numba"):
        net = xor_network(backend=backend)
        runs.append((net.train(XOR_X, XOR_Y, mse, d_mse, XOR_EPOCHS, 0.1, verbose=False), net))
    (h_ref, ref), (h_fast, fast) = runs
    assert_same_run(h_ref, h_fast, ref, fast, **TRAJECTORY_F64, what="xor numba vs scipy")


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_train_prints_seed_epoch_lines(backend, capsys):
    # Catches a changed epoch line, one disagreeing with History, or verbose=False still printing.
    # The seed prints exactly `Epoch {e + 1}, total loss: {loss}`, and scripts parse it.
    net = xor_network(backend=backend)
    history = net.train(XOR_X, XOR_Y, mse, d_mse, 3, 0.1)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"Epoch {e + 1}, total loss: {loss}" for e, loss in enumerate(history)]
    assert all(EPOCH_LINE.fullmatch(line) for line in lines)
    assert [float(EPOCH_LINE.fullmatch(line)[2]) for line in lines] == list(history)

    net.train(XOR_X, XOR_Y, mse, d_mse, 3, 0.1, verbose=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_network_backend_argument_gives_reference_numbers():
    # Catches Network(..., backend="scipy") differing from layers built with backend="scipy".
    # The notebook's XOR cell with backend="scipy" on each layer, against Network(..., backend=).
    rng = np.random.RandomState(0)
    built = Network(
        [
            Linear(2, 3, backend="scipy", rng=rng),
            Activation(sigmoid, d_sigmoid, backend="scipy"),
            Linear(3, 1, backend="scipy", rng=rng),
            Activation(sigmoid, d_sigmoid, backend="scipy"),
        ]
    )
    switched = xor_network(backend="scipy")
    assert all(layer.backend == "scipy" for layer in switched.layers)
    h_built = built.train(XOR_X, XOR_Y, mse, d_mse, 50, 0.1, verbose=False)
    h_switched = switched.train(XOR_X, XOR_Y, mse, d_mse, 50, 0.1, verbose=False)
    assert list(h_built) == list(h_switched)
    for (k, a), b in zip(parameters(built).items(), parameters(switched).values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)


# --------------------------------------------------------------------------------------------------
# the seed notebook's own program

# Cells 329-332 (XOR) and 335-336 (MNIST) of the seed notebook, verbatim.
SEED_CELLS = """
xor_training_x = np.reshape([[0, 0], [0, 1], [1, 0], [1, 1]], (4, 2, 1))
xor_training_y = np.reshape([[0], [1], [1], [0]], (4, 1, 1))

xor_layers = [
    Linear(2, 3),
    Activation(sigmoid, d_sigmoid),
    Linear(3, 1),
    Activation(sigmoid, d_sigmoid),
]

xor_network = Network(xor_layers)

xor_network.train(xor_training_x, xor_training_y, mse, d_mse, 10000, 0.1)

print(f"0 XOR 0: predicted = {round(xor_network.predict([[0], [0]])[0][0])}, actual = 0")
print(f"0 XOR 1: predicted = {round(xor_network.predict([[0], [1]])[0][0])}, actual = 1")
print(f"1 XOR 0: predicted = {round(xor_network.predict([[1], [0]])[0][0])}, actual = 1")
print(f"1 XOR 1: predicted = {round(xor_network.predict([[1], [1]])[0][0])}, actual = 0")

(mnist_train_x, mnist_train_y), (mnist_test_x, mnist_test_y) = mnist.load_data()

x = mnist_train_x
y = mnist_train_y

x = x.reshape(len(x), 1, 28, 28).astype("float32") / 255
y = to_categorical(y, num_classes=10).reshape(len(y), 10, 1)

mnist_layers = [
    Convolution((1, 28, 28), 3, 5),
    Activation(sigmoid, d_sigmoid),
    Reshape((5, 26, 26), (5 * 26 * 26, 1)),
    Linear(5 * 26 * 26, 100),
    Activation(sigmoid, d_sigmoid),
    Linear(100, 10),
    Activation(sigmoid, d_sigmoid),
]

mnist_network = Network(mnist_layers)

mnist_network.train(x, y, mse, d_mse, 5, 0.1)
"""
SEED_NOTEBOOK = (
    Path(__file__).resolve().parents[2] / "shared" / "seed" / "cnn-from-scratch-notebook.txt"
)


def seed_namespace(mnist_dir, samples):
    """The seed's imports (cell 322) with fastcnn in place of its own classes, and keras' MNIST
    helpers replaced by fastcnn.datasets on the first ``samples`` training images."""
    namespace = {"np": np}
    exec("from fastcnn import *", namespace)

    class mnist:  # keras.datasets.mnist
        @staticmethod
        def load_data():
            (train_x, train_y), test = fastcnn.datasets.load_mnist(mnist_dir, download=False)
            return (train_x[:samples], train_y[:samples]), test

    def to_categorical(y, num_classes):  # keras.utils.to_categorical: float32, one row per label
        return np.eye(num_classes, dtype="float32")[y]

    namespace.update(mnist=mnist, to_categorical=to_categorical)
    return namespace


def test_seed_cells_are_verbatim():
    # Catches the copy of the notebook's code drifting from the seed notebook (when it is there).
    if not SEED_NOTEBOOK.is_file():
        pytest.skip(f"seed notebook not found at {SEED_NOTEBOOK}")
    notebook = {line.rstrip() for line in SEED_NOTEBOOK.read_text().splitlines()}
    missing = [line for line in SEED_CELLS.splitlines() if line.strip() and line not in notebook]
    assert not missing, f"lines not in the seed notebook: {missing}"


@pytest.mark.mnist
def test_seed_notebook_program_runs(mnist_dir):
    # Catches API drift that breaks the seed notebook's own code, or changes what it prints.
    namespace = seed_namespace(mnist_dir, samples=300)
    out = io.StringIO()
    np.random.seed(0)
    with contextlib.redirect_stdout(out):
        exec(compile(SEED_CELLS, "<seed notebook cells 329-336>", "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10000 + 4 + 5
    xor_lines, table, mnist_lines = lines[:10000], lines[10000:10004], lines[10004:]
    for line in xor_lines + mnist_lines:
        match = EPOCH_LINE.fullmatch(line)
        assert match, f"not the seed's epoch line: {line!r}"
        assert np.isfinite(float(match[2]))
    assert [int(EPOCH_LINE.fullmatch(line)[1]) for line in mnist_lines] == [1, 2, 3, 4, 5]
    assert table == [  # the seed's printed truth table (cell 332)
        "0 XOR 0: predicted = 0, actual = 0",
        "0 XOR 1: predicted = 1, actual = 1",
        "1 XOR 0: predicted = 1, actual = 1",
        "1 XOR 1: predicted = 0, actual = 0",
    ]
    losses = [float(EPOCH_LINE.fullmatch(line)[2]) for line in mnist_lines]
    assert losses[-1] < losses[0]
    assert namespace["x"].shape == (300, 1, 28, 28)
