"""ONNX export of every layer kind and activation fastcnn registers: ONNX Runtime's outputs equal
``predict_batch``'s (1e-5 float32, 1e-12 float64) over pool sizes, strides, image shapes and
activations; the operators written are the ones the issue names; the registry's every kind has
a converter and a network in the zoo."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcnn import Convolution, Linear, Network, Reshape
from fastcnn.export import ACTIVATION_OPS, CONVERTERS, ExportError, to_onnx
from fastcnn.layers import AvgPool, MaxPool, Softmax
from fastcnn.registry import ACTIVATIONS, LAYERS

from .support import padded_convolutions
from .zoo import NETWORKS, activation, random_biases

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ORT_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
DTYPES = (np.float32, np.float64)
POOLS = (MaxPool, AvgPool)


def run_ort(model, xs):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": xs})[0]


def assert_ort_matches(network, xs, msg=""):
    model = to_onnx(network)  # runs onnx.checker (full_check) itself; again here, to be sure
    onnx.checker.check_model(model, full_check=True)
    got, want = run_ort(model, xs), network.predict_batch(xs)
    assert got.dtype == want.dtype == xs.dtype, msg
    assert got.shape == want.shape == (len(xs), int(np.prod(network.output_shape))), msg
    np.testing.assert_allclose(got, want, rtol=0, atol=ORT_TOL[xs.dtype], err_msg=msg)


def test_every_registered_kind_has_a_converter_and_a_network():
    # Catches a layer kind or activation registered without an ONNX converter, and one that no
    # network of the zoo (so no equivalence test) contains.
    assert set(LAYERS) <= set(CONVERTERS)
    assert set(ACTIVATIONS) <= set(ACTIVATION_OPS)
    kinds, activations = set(), set()
    for build in NETWORKS.values():
        for layer in build(np.float64).layers:
            kinds.add(type(layer).__name__)
            if type(layer).__name__ == "Activation":
                activations.add(layer.get_config()["activation"])
    assert set(LAYERS) <= kinds
    assert set(ACTIVATIONS) <= activations


@st.composite
def pooled(draw):
    """A pool of any size and stride on any image, an activation after it and a Linear layer:
    [pool, activation, Reshape to a column, Linear, activation]."""
    size = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    depth = draw(st.integers(1, 3))
    height = draw(st.integers(size, size + 7))
    width = draw(st.integers(size, size + 7))
    pool = draw(st.sampled_from(POOLS))
    name = draw(st.sampled_from(sorted(ACTIVATIONS)))
    return pool, (depth, height, width), size, stride, name


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=pooled(), seed=st.integers(0, 2**16), ties=st.booleans())
def test_pools_and_activations_match_predict_batch(dtype, case, seed, ties):
    # Catches swapped kernel_shape/strides, a pool read as (N, H, W, C), ceil instead of floor on
    # odd sizes, the float64 average pool's taps off by one, and an activation's slope rounded to
    # float32 (ONNX's LeakyRelu alpha on doubles: 2e-9 relative). Small integers give ties.
    pool_cls, shape, size, stride, name = case
    rng = np.random.RandomState(seed)
    pool = pool_cls(shape, size, stride)
    flat = int(np.prod(pool.output_shape))
    layers = [
        pool,
        activation(name),
        Reshape(pool.output_shape, (flat, 1)),
        Linear(flat, 3, dtype=dtype, rng=rng, init="xavier"),
        activation(name),
    ]
    random_biases(layers, rng)
    network = Network(layers)
    data = np.random.default_rng(seed)
    n = int(data.integers(1, 6))
    if ties:
        xs = data.integers(-2, 3, (n, *shape)).astype(dtype)
    else:
        xs = data.standard_normal((n, *shape)).astype(dtype)
    assert_ort_matches(network, xs, repr(network))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_on_both_signs(name, dtype):
    # Catches an activation exported as another one (relu as leaky_relu agrees on x > 0 only).
    linear = Linear(6, 40, dtype=dtype, rng=0)
    xs = np.random.default_rng(3).standard_normal((8, 6, 1)).astype(dtype) * 3
    before = Network([linear]).predict_batch(xs)
    assert (before < -1).any() and (before > 1).any()
    assert_ort_matches(Network([linear, activation(name)]), xs, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NETWORKS)
def test_zoo_networks_on_signed_inputs(name, dtype):
    # test_onnx.py feeds [0, 1); signed inputs reach a first pool's and activation's negative side.
    network = NETWORKS[name](dtype)
    xs = np.random.default_rng(11).standard_normal((9, *network.input_shape)).astype(dtype)
    assert_ort_matches(network, xs, name)


def test_operators_written():
    # The graph uses ONNX's own operators where ONNX Runtime has them for the dtype (the issue's
    # Relu/Tanh/LeakyRelu alpha=0.01, MaxPool/AveragePool with kernel_shape and strides).
    def ops(network):
        return {
            node.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            for node in to_onnx(network).graph.node
        }

    layers32 = [
        MaxPool((1, 7, 7), 3, 2),
        AvgPool((1, 3, 3), 2, 1),
        Reshape((1, 2, 2), (4, 1)),
        Linear(4, 4, dtype=np.float32, rng=0),
        activation("relu"),
        activation("tanh"),
        activation("leaky_relu"),
    ]
    found = ops(Network(layers32))
    assert found["MaxPool"] == {"kernel_shape": [3, 3], "strides": [2, 2]}
    assert found["AveragePool"] == {"kernel_shape": [2, 2], "strides": [1, 1]}
    assert found["LeakyRelu"]["alpha"] == pytest.approx(0.01)
    assert {"Relu", "Tanh"} <= set(found)
    # float64: ONNX Runtime has no double AveragePool, and LeakyRelu's float alpha is not 0.01
    found = ops(Network([AvgPool((1, 4, 4), 2), activation("leaky_relu")]))
    assert "AveragePool" not in found and "LeakyRelu" not in found
    assert {"Slice", "Div", "Where"} <= set(found)


def test_unknown_pool_option_is_refused(monkeypatch):
    # Catches a pool converter that would ignore an option added later (say padding=).
    pool = MaxPool((1, 4, 4), 2)
    config = {**pool.get_config(), "padding": 1}
    monkeypatch.setattr(pool, "get_config", lambda: config)
    with pytest.raises(
        ExportError,
        match=r"^layer 0 \(MaxPool\(\(1, 4, 4\), 2\)\): the ONNX converter of MaxPool does not "
        r"know the option\(s\) padding=1;",
    ):
        to_onnx(Network([pool]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("classes", [1, 2, 10])
def test_softmax_of_large_logits(classes, dtype):
    # Catches a softmax over the wrong axis (the batch: rows would not sum to 1 per sample), one
    # without the maximum subtracted (logits of 1000 overflow to NaN), and opset < 13 semantics.
    network = Network([Linear(3, classes, dtype=dtype, rng=0), Softmax()])
    xs = np.random.default_rng(0).standard_normal((6, 3, 1)).astype(dtype) * 400
    model = to_onnx(network)
    (node,) = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert (
        onnx.helper.get_attribute_value(node.attribute[0]) == 1
        and model.opset_import[0].version >= 13
    )
    got = run_ort(model, xs)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.sum(axis=1), 1, rtol=0, atol=ORT_TOL[np.dtype(dtype)] * 10)
    assert_ort_matches(network, xs, f"{classes} classes")


@pytest.mark.parametrize("name", ["pools and activations", "softmax classifier"])
def test_cli_export_of_a_model_file(name, tmp_path, capsys):
    # Catches a kind the model file keeps but the command's export path loses (the command
    # exports what io.load rebuilt, not the network in memory).
    from fastcnn.cli import main

    network = NETWORKS[name](np.float32)
    network.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    xs = np.random.default_rng(1).standard_normal((4, *network.input_shape)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"input": xs})[0], network.predict_batch(xs), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=padded_convolutions(), seed=st.integers(0, 2**16))
def test_padded_and_per_filter_convolutions(dtype, case, seed):
    # Catches padding on one side only or on the channel axis, pads in the wrong order, a
    # per-filter bias on the wrong axis or dropped (the biases are random, not zero), and the
    # float64 im2col's taps read from the unpadded input.
    shape, size, count, padding, bias = case
    rng = np.random.RandomState(seed)
    conv = Convolution(
        shape, size, count, padding=padding, bias=bias, dtype=dtype, rng=rng, init="xavier"
    )
    flat = int(np.prod(conv.output_shape))
    layers = [
        conv,
        Reshape(conv.output_shape, (flat, 1)),
        Linear(flat, 3, dtype=dtype, rng=rng, init="xavier"),
    ]
    random_biases(layers, rng)
    network = Network(layers)
    xs = np.random.default_rng(seed).standard_normal((3, *shape)).astype(dtype)
    assert_ort_matches(network, xs, repr(network))


def test_convolution_operators_written():
    # The graph: Conv with pads and its B input for per-filter biases (float32), a
    # bias-free Conv and an Add for the notebook's per-pixel ones.
    def conv_nodes(**options):
        network = Network([Convolution((1, 6, 6), 3, 2, dtype=np.float32, rng=0, **options)])
        nodes = to_onnx(network).graph.node
        return [n for n in nodes if n.op_type == "Conv"], {n.op_type for n in nodes}

    (conv,), ops = conv_nodes(padding=2, bias="filter")
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert attributes["pads"] == [2, 2, 2, 2] and len(conv.input) == 3 and "Add" not in ops
    (conv,), ops = conv_nodes()
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert "pads" not in attributes and len(conv.input) == 2 and "Add" in ops
