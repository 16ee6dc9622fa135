"""Bad inputs fail early, with the right exception type and a message naming the layer, what was
expected and what was received."""

import copy
import re

import numpy as np
import pytest

from fastcnn import (
    Activation,
    Convolution,
    Linear,
    Network,
    Reshape,
    d_mse,
    d_sigmoid,
    mse,
    sigmoid,
)

from .support import XOR_X, XOR_Y, parameters, xor_network

BACKENDS = ("numba", "scipy")


def text(s):
    """``s`` as a literal regular expression."""
    return re.escape(s)


# --------------------------------------------------------------------------------------------------
# shapes at run time


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_wrong_input_shape(backend):
    # Catches Linear broadcasting a wrong-shaped input (np.dot of (3,2) by (2,) works) silently.
    layer = Linear(3, 2, backend=backend)
    name = "Linear(3, 2)" if backend == "numba" else "Linear(3, 2, backend='scipy')"
    for bad in (np.ones((2, 1)), np.ones(3), np.ones((3, 2)), np.ones((1, 3))):
        with pytest.raises(
            ValueError,
            match=text(
                f"Input of layer {name} is incompatible with the layer: expected shape (3, 1), "
                f"but received input with shape {bad.shape}"
            ),
        ):
            layer.forward_prop(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_convolution_wrong_input_shape(backend):
    # Catches Convolution accepting an image without its depth axis, or transposed.
    layer = Convolution((1, 28, 28), 3, 5, backend=backend)
    for bad in (np.ones((28, 28)), np.ones((1, 28, 27)), np.ones((3, 28, 28))):
        with pytest.raises(
            ValueError,
            match=text(
                f"Input of layer {layer!r} is incompatible with the layer: expected shape "
                f"(1, 28, 28), but received input with shape {bad.shape}"
            ),
        ):
            layer.forward_prop(bad)


def test_reshape_wrong_input_size():
    # Catches Reshape failing with NumPy's bare "cannot reshape" instead of naming itself.
    layer = Reshape((5, 26, 26), (5 * 26 * 26, 1))
    with pytest.raises(
        ValueError,
        match=text(
            "Input of layer Reshape((5, 26, 26), (3380, 1)) is incompatible with the layer: "
            "expected shape (5, 26, 26), but received input with shape (5, 26, 25)"
        ),
    ):
        layer.forward_prop(np.ones((5, 26, 25)))
    with pytest.raises(
        ValueError,
        match=text(
            "d_output of layer Reshape((5, 26, 26), (3380, 1)) is incompatible with the layer: "
            "expected shape (3380, 1), but received d_output with shape (10, 1)"
        ),
    ):
        layer.backward_prop(np.ones((10, 1)), 0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_d_output_shape(backend):
    # Catches backward_prop trusting d_output's shape; a rejected call must change nothing.
    linear = Linear(3, 2, backend=backend, rng=0)
    linear.forward_prop(np.ones((3, 1)))
    before = linear.weights.copy()
    with pytest.raises(
        ValueError,
        match=text(
            f"d_output of layer {linear!r} is incompatible with the layer: expected shape (2, 1), "
            f"but received d_output with shape (3, 1)"
        ),
    ):
        linear.backward_prop(np.ones((3, 1)), 0.1)
    np.testing.assert_array_equal(linear.weights, before)

    conv = Convolution((2, 5, 5), 3, 4, backend=backend, rng=0)
    conv.forward_prop(np.ones((2, 5, 5)))
    with pytest.raises(
        ValueError,
        match=text(
            f"d_output of layer {conv!r} is incompatible with the layer: expected shape "
            f"(4, 3, 3), but received d_output with shape (4, 3)"
        ),
    ):
        conv.backward_prop(np.ones((4, 3)), 0.1)


def test_sigmoid_kernel_wrong_d_output_shape():
    # Catches a wrong-shaped d_output reaching the sigmoid kernel (it checks no bounds).
    layer = Activation(sigmoid, d_sigmoid)
    layer.forward_prop(np.ones((4, 1)))
    with pytest.raises(
        ValueError,
        match=text(
            "d_output of layer Activation(sigmoid, d_sigmoid) is incompatible with the layer: "
            "expected shape (4, 1), but received d_output with shape (3, 1)"
        ),
    ):
        layer.backward_prop(np.ones((3, 1)), 0.1)


# --------------------------------------------------------------------------------------------------
# types at run time


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "bad",
    [
        np.array([["a"], ["b"], ["c"]]),
        np.array([[1], [None], [2]], dtype=object),
        np.ones((3, 1), complex),
    ],
    ids=["strings", "objects", "complex"],
)
def test_non_numeric_input(backend, bad):
    # Catches non-numeric arrays reaching a kernel, or complex input silently losing its imaginary.
    layer = Linear(3, 2, backend=backend)
    with pytest.raises(
        TypeError,
        match=text(
            f"Input of layer {layer!r} must be numeric, but received an array of dtype "
            f"{bad.dtype}. Convert it with .astype(np.float64)."
        ),
    ):
        layer.forward_prop(bad)
    conv = Convolution((1, 3, 1), 1, 1, backend=backend)
    with pytest.raises(TypeError, match=text(f"Input of layer {conv!r} must be numeric")):
        conv.forward_prop(bad.reshape(1, 3, 1))


def test_non_numeric_input_to_sigmoid_kernel():
    # Catches a string array reaching the sigmoid kernel.
    layer = Activation(sigmoid, d_sigmoid)
    with pytest.raises(
        TypeError,
        match=text(
            "Input of layer Activation(sigmoid, d_sigmoid) must be numeric, but received an array "
            "of dtype <U1"
        ),
    ):
        layer.forward_prop(np.array([["a"], ["b"]]))


@pytest.mark.parametrize("rate", ["0.1", None, True, np.array([0.1, 0.2])])
def test_bad_rate(rate):
    # Catches a non-number rate (a string, an array) used instead of rejected before any update.
    layer = Linear(3, 2, rng=0)
    layer.forward_prop(np.ones((3, 1)))
    before = layer.weights.copy()
    with pytest.raises(TypeError, match="rate must be a real number, got"):
        layer.backward_prop(np.ones((2, 1)), rate)
    np.testing.assert_array_equal(layer.weights, before)


# --------------------------------------------------------------------------------------------------
# construction


BAD_CONSTRUCTORS = [
    (
        lambda: Convolution((1, 3, 4), 5, 2),
        ValueError,
        "filter_size=5 is larger than the input image 3x4; it must be at most 3.",
    ),
    (lambda: Convolution((1, 28, 28), 0, 5), ValueError, "filter_size must be at least 1, got 0."),
    (
        lambda: Convolution((1, 28, 28), 3, -2),
        ValueError,
        "filter_count must be at least 1, got -2.",
    ),
    (
        lambda: Convolution((0, 28, 28), 3, 5),
        ValueError,
        "input_shape[0] must be at least 1, got 0.",
    ),
    (
        lambda: Convolution((1, 28, 28), 3.0, 5),
        TypeError,
        "filter_size must be an integer, got 3.0 of type float.",
    ),
    (
        lambda: Convolution((1, 28.5, 28), 3, 5),
        TypeError,
        "input_shape[1] must be an integer, got 28.5 of type float.",
    ),
    (
        lambda: Convolution((28, 28), 3, 5),
        ValueError,
        "input_shape must have 3 dimensions, got (28, 28).",
    ),
    (
        lambda: Convolution(28, 3, 5),
        TypeError,
        "input_shape must be a tuple of 3 integers, got 28.",
    ),
    (lambda: Linear(0, 3), ValueError, "input_size must be at least 1, got 0."),
    (lambda: Linear(3, -1), ValueError, "output_size must be at least 1, got -1."),
    (lambda: Linear(2.5, 3), TypeError, "input_size must be an integer, got 2.5 of type float."),
    (lambda: Linear(True, 3), TypeError, "input_size must be an integer, got True of type bool."),
    (
        lambda: Reshape((5, 26, 26), (3380, 2)),
        ValueError,
        "Reshape cannot map input_shape (5, 26, 26) (3380 values) to output_shape (3380, 2) "
        "(6760 values).",
    ),
    (lambda: Reshape((2, -3), (-6, 1)), ValueError, "input_shape[1] must be at least 1, got -3."),
    (
        lambda: Reshape((2.5, 2), (5, 1)),
        TypeError,
        "input_shape[0] must be an integer, got 2.5 of type float.",
    ),
    (lambda: Reshape((), ()), ValueError, "input_shape must have at least 1 dimensions, got ()."),
    (lambda: Reshape(5, 5), TypeError, "input_shape must be a tuple of integers, got 5."),
    (
        lambda: Linear(3, 2, backend="cuda"),
        ValueError,
        "backend must be one of ('numba', 'scipy'), got 'cuda'.",
    ),
    (
        lambda: Activation(sigmoid, d_sigmoid, backend="torch"),
        ValueError,
        "backend must be one of ('numba', 'scipy'), got 'torch'.",
    ),
    (
        lambda: Network([Linear(2, 1)], backend="jax"),
        ValueError,
        "backend must be one of ('numba', 'scipy'), got 'jax'.",
    ),
    (
        lambda: Linear(3, 2, dtype=np.int32),
        ValueError,
        "dtype must be float64 or float32, got int32.",
    ),
    (
        lambda: Convolution((1, 4, 4), 2, 2, dtype=np.float16),
        ValueError,
        "dtype must be float64 or float32, got float16.",
    ),
    (
        lambda: Linear(3, 2, dtype="double-ish"),
        TypeError,
        "dtype must be float64 or float32, got 'double-ish'.",
    ),
    (
        lambda: Linear(3, 2, init="lecun"),
        ValueError,
        "init must be one of ('notebook', 'xavier', 'he'), got 'lecun'.",
    ),
    (
        lambda: Linear(3, 2, rng="seed"),
        TypeError,
        "rng must be None, an int seed, a np.random.RandomState or a np.random.Generator, "
        "got 'seed'.",
    ),
    (lambda: Linear(3, 2, rng=1.5), TypeError, "rng must be None, an int seed"),
    (
        lambda: Activation(sigmoid, "d_sigmoid"),
        TypeError,
        "activation and d_activation must be callables",
    ),
]


@pytest.mark.parametrize(
    "call, error, message", BAD_CONSTRUCTORS, ids=[message for _, _, message in BAD_CONSTRUCTORS]
)
def test_bad_constructor_arguments(call, error, message):
    # Catches invalid layer arguments surviving construction, or rejected without the values.
    # Each must also fail before any weight is drawn from the global NumPy state.
    state = np.random.get_state()
    with pytest.raises(error, match=text(message)):
        call()
    # ... and failing before any weight is drawn from the global state.
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])


def test_backward_before_forward():
    # Catches backward_prop on a missing input failing obscurely instead of naming the call order.
    for layer in (
        Linear(3, 2),
        Linear(3, 2, backend="scipy"),
        Convolution((1, 5, 5), 3, 2),
        Activation(sigmoid, d_sigmoid),
    ):
        with pytest.raises(
            RuntimeError,
            match=text(f"backward_prop of layer {layer!r} was called before forward_prop."),
        ):
            layer.backward_prop(np.ones((2, 1)), 0.1)


# --------------------------------------------------------------------------------------------------
# training


def own_mse(predicted, actual):  # a user's loss: forces the per-layer path on numba
    return mse(predicted, actual)


LOSSES = {"numba": (mse, d_mse), "scipy": (mse, d_mse), "numba-per-layer": (own_mse, d_mse)}


@pytest.mark.parametrize("path", sorted(LOSSES))
def test_non_finite_input_rejected_before_any_update(path):
    # Catches training through a NaN/inf sample: an inf pixel saturates the sigmoid, the loss stays
    # finite and the update writes NaN, so the data must be checked before the first update.
    backend = path.split("-")[0]
    loss, d_loss = LOSSES[path]
    for bad in (np.nan, np.inf, -np.inf):
        x = XOR_X.copy()
        x[2, 1, 0] = bad
        net, initial = xor_network(backend=backend), xor_network(backend=backend)
        with pytest.raises(
            ValueError, match=text("data_x holds a non-finite value (nan or inf) in sample 2")
        ):
            net.train(x, XOR_Y, loss, d_loss, 3, 0.1, verbose=False)
        for a, b in zip(parameters(net).values(), parameters(initial).values(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg="weights changed before the error")


@pytest.mark.parametrize("path", sorted(LOSSES))
def test_infinite_loss_stops_training_before_its_update(path):
    # Catches training through a non-finite loss, or stopping only after the bad sample's update.
    # A finite but huge target makes the squared error overflow at sample 2 only.
    backend = path.split("-")[0]
    loss, d_loss = LOSSES[path]
    y = XOR_Y.copy()
    y[2, 0, 0] = 1e300
    net = xor_network(backend=backend)
    with (
        np.errstate(all="ignore"),
        pytest.raises(FloatingPointError, match=text("Epoch 1, sample 2: the loss is")),
    ):
        net.train(XOR_X, y, loss, d_loss, 3, 0.1, verbose=False)
    snapshot = xor_network(backend=backend)
    snapshot.train(XOR_X[:2], y[:2], loss, d_loss, 1, 0.1, verbose=False)
    for a, b in zip(parameters(net).values(), parameters(snapshot).values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg="weights differ from those after sample 1")


@pytest.mark.parametrize("path", sorted(LOSSES))
def test_divergence_stops_training_in_later_epoch(path):
    # Catches a diverging run not stopped at its first non-finite loss, or the wrong epoch/sample.
    # Rate 2 on a purely linear model of the XOR data overflows in the second epoch.
    backend = path.split("-")[0]
    loss, d_loss = LOSSES[path]

    def linear_net():
        np.random.seed(0)
        return Network([Linear(2, 3), Linear(3, 1)], backend=backend)

    net = linear_net()
    with np.errstate(all="ignore"):  # the reference path's NumPy warns on the overflow
        with pytest.raises(
            FloatingPointError, match=text("Epoch 2, sample 2: the loss is")
        ) as info:
            net.train(XOR_X, XOR_Y, loss, d_loss, 10, 2.0, verbose=False)
        assert "before this sample's update" in str(info.value)
        snapshot = linear_net()
        snapshot.train(XOR_X, XOR_Y, loss, d_loss, 1, 2.0, verbose=False)
        snapshot.train(XOR_X[:2], XOR_Y[:2], loss, d_loss, 1, 2.0, verbose=False)
    for a, b in zip(parameters(net).values(), parameters(snapshot).values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg="weights differ from those after sample 1")


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_data_length_mismatch(backend):
    # Catches zip() silently dropping the unmatched samples of data_x or data_y.
    net = xor_network(backend=backend)
    before = copy.deepcopy(list(parameters(net).values()))
    with pytest.raises(
        ValueError,
        match=text(
            "train got 4 inputs (data_x) but 3 targets (data_y); they must pair up one to one."
        ),
    ):
        net.train(XOR_X, XOR_Y[:3], mse, d_mse, 1, 0.1, verbose=False)
    for a, b in zip(parameters(net).values(), before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("epochs", [-1, 1.5, "2", True])
def test_train_bad_epochs(epochs):
    # Catches range() errors or a silent no-op for a nonsensical epoch count.
    with pytest.raises(
        ValueError, match=text(f"epochs must be a non-negative integer, got {epochs!r}.")
    ):
        xor_network().train(XOR_X, XOR_Y, mse, d_mse, epochs, 0.1, verbose=False)


@pytest.mark.parametrize("path", sorted(LOSSES))
def test_train_wrong_sample_shape_names_network_shape(path):
    # Catches the compiled path hiding a data shape error, or a message without the shapes.
    backend = path.split("-")[0]
    loss, d_loss = LOSSES[path]
    net = xor_network(backend=backend)
    with pytest.raises(
        ValueError,
        match=text(
            "data_x has samples of shape (3, 1) (array of shape (4, 3, 1)), but the network's "
            "input has shape (2, 1)"
        ),
    ):
        net.train(np.ones((4, 3, 1)), XOR_Y, loss, d_loss, 1, 0.1, verbose=False)


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_user_activation_rejects_wrong_d_output_shape(backend):
    # Catches np.multiply broadcasting a (4, 4) gradient against a (4, 1) input into a (4, 4)
    # "input gradient" that the layer below would then reject far from the cause.
    layer = Activation(np.tanh, lambda v: 1 - np.tanh(v) ** 2, backend=backend)
    layer.forward_prop(np.zeros((4, 1)))
    with pytest.raises(
        ValueError,
        match=re.escape("expected shape (4, 1), but received d_output with shape (4, 4)."),
    ):
        layer.backward_prop(np.zeros((4, 4)), 0.1)


def test_reshape_rejects_text():
    # Catches strings passing through Reshape into a Linear layer's TypeError, one layer late.
    with pytest.raises(TypeError, match=r"Input of layer Reshape.*must be numeric"):
        Reshape((2,), (2, 1)).forward_prop(np.array(["a", "b"]))


# Each invalid call of train: (description, kwargs changed from a valid call, error, message).
_LABELS = np.array([0, 1, 1, 0])
BAD_TRAIN_CALLS = [
    ("rate-str", {"rate": "0.1"}, TypeError, "rate must be a real number, got '0.1' of type str."),
    ("rate-bool", {"rate": True}, TypeError, "rate must be a real number, got True of type bool."),
    (
        "rate-none",
        {"rate": None},
        TypeError,
        "rate must be a real number, got None of type NoneType.",
    ),
    ("rate-nan", {"rate": float("nan")}, ValueError, "rate must be a finite real number, got nan."),
    ("rate-inf", {"rate": np.inf}, ValueError, "rate must be a finite real number, got inf."),
    (
        "x-shape",
        {"data_x": np.ones((4, 2))},
        ValueError,
        "data_x has samples of shape (2,) (array of shape (4, 2)), but the network's input has "
        "shape (2, 1); pass an array of shape (N, 2, 1).",
    ),
    (
        "y-shape",
        {"data_y": np.ones((4, 1))},
        ValueError,
        "data_y has targets of shape (1,) (array of shape (4, 1)), but the network's output has "
        "shape (1, 1); pass an array of shape (N, 1, 1).",
    ),
    (
        "x-strings",
        {"data_x": np.full((4, 2, 1), "a")},
        TypeError,
        "data_x must be numeric, but it has dtype <U1. Convert it with .astype(np.float64).",
    ),
    (
        "y-nan",
        {"data_y": np.where(XOR_Y == 1, np.nan, XOR_Y)},
        ValueError,
        "data_y holds a non-finite value (nan or inf) in sample 1",
    ),
    (
        "x-inf",
        {"data_x": np.where(XOR_X == 1, np.inf, XOR_X)},
        ValueError,
        "data_x holds a non-finite value (nan or inf) in sample 1",
    ),
    (
        "pairs",
        {"data_y": XOR_Y[:3]},
        ValueError,
        "train got 4 inputs (data_x) but 3 targets (data_y)",
    ),
]


@pytest.mark.parametrize("path", sorted(LOSSES))
@pytest.mark.parametrize("case", BAD_TRAIN_CALLS, ids=[c[0] for c in BAD_TRAIN_CALLS])
def test_train_rejects_bad_input_on_every_path(path, case):
    # Catches a bad rate or data that trains silently on one path (rate="0.1" or True on the
    # compiled path, nan corrupting weights) or that the compiled path turns into another error.
    _, change, error, message = case
    backend = path.split("-")[0]
    loss, d_loss = LOSSES[path]
    net, initial = xor_network(backend=backend), xor_network(backend=backend)
    call = dict(data_x=XOR_X, data_y=XOR_Y, loss=loss, d_loss=d_loss, epochs=1, rate=0.1)
    with pytest.raises(error, match=text(message)) as info:
        net.train(**{**call, **change}, verbose=False)
    assert "\n" not in str(info.value)
    for a, b in zip(parameters(net).values(), parameters(initial).values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg="weights changed before the error")


@pytest.mark.parametrize("labels", [np.arange(4) % 10, (np.arange(4) % 10).reshape(4, 1)])
@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_train_rejects_integer_labels_as_targets(backend, labels):
    # Catches class labels given where one-hot targets belong: mse broadcasts them against the
    # (10, 1) output and training "works" with a loss near 11.
    np.random.seed(0)
    net = Network([Linear(2, 10), Activation(sigmoid, d_sigmoid)], backend=backend)
    before = [p.copy() for p in parameters(net).values()]
    x = np.ones((4, 2, 1))
    with pytest.raises(ValueError, match=text("data_y looks like integer class labels")) as info:
        net.train(x, labels, mse, d_mse, 1, 0.1, verbose=False)
    assert "np.eye(10)[labels]" in str(info.value)
    for a, b in zip(parameters(net).values(), before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_evaluate_and_predict_check_shapes_at_the_door(backend):
    # Catches evaluate/predict errors that depend on the path chosen, or name no shape.
    net = xor_network(backend=backend)
    with pytest.raises(ValueError, match=text("but the network's input has shape (2, 1)")):
        net.evaluate(np.ones((4, 3, 1)), [0, 1, 1, 0])
    with pytest.raises(ValueError, match=text("predict takes one sample of shape (2, 1)")):
        net.predict(np.ones((3, 1)))
    with pytest.raises(ValueError, match=text("evaluate got 4 samples but 3 labels.")):
        net.evaluate(XOR_X, [0, 1, 1])


def test_network_whose_layers_do_not_chain():
    # Catches a network whose layer sizes disagree, reported by whichever path happened to run.
    net = Network([Linear(2, 3, rng=0), Activation(sigmoid, d_sigmoid), Linear(4, 1, rng=0)])
    with pytest.raises(
        ValueError,
        match=text(
            "layer 2 (Linear(4, 1)) expects input of shape (4, 1), but layer 0 "
            "(Linear(2, 3)) outputs shape (3, 1)."
        ),
    ):
        net.train(XOR_X, XOR_Y, mse, d_mse, 1, 0.1, verbose=False)


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_reassigned_input_is_checked_before_a_kernel_reads_it(backend):
    # Catches issue 10 item 3: a reassigned layer.input read out of bounds by the backward
    # kernels, silently updating weights from memory past the array.
    linear = Linear(30, 10, rng=0, backend=backend)
    linear.forward_prop(np.ones((30, 1)))
    linear.input = np.zeros((10, 1))
    before = linear.weights.copy()
    with pytest.raises(ValueError, match=text("input of layer Linear(30, 10")):
        linear.backward_prop(np.ones((10, 1)), 0.1)
    np.testing.assert_array_equal(linear.weights, before)
    conv = Convolution((1, 6, 6), 3, 2, rng=0, backend=backend)
    conv.forward_prop(np.ones((1, 6, 6)))
    conv.input = np.zeros((1, 3, 3))
    with pytest.raises(ValueError, match=text("input of layer Convolution((1, 6, 6), 3, 2")):
        conv.backward_prop(np.ones((2, 4, 4)), 0.1)
    conv.input = np.ones((1, 6, 6))[:, ::1, ::-1]  # right shape, not C-contiguous
    with pytest.raises(ValueError, match="not C-contiguous"):
        conv.gradient(np.ones((2, 4, 4)))


def test_reassigned_activation_input_is_checked_before_the_kernel():
    # Catches the sigmoid backward kernel writing d_input of the new input's size from a smaller
    # forward output (out of bounds).
    layer = Activation(sigmoid, d_sigmoid)
    layer.forward_prop(np.zeros((3, 1)))
    layer.input = np.zeros((10, 1))
    with pytest.raises(ValueError, match=text("_output of layer Activation(sigmoid, d_sigmoid)")):
        layer.backward_prop(np.ones((10, 1)), 0.1)
    layer.input = [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="must be the float array forward_prop left"):
        layer.backward_prop(np.ones((3, 1)), 0.1)
