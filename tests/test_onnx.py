"""ONNX export (fastcnn/export.py): ONNX Runtime's outputs equal ``predict_batch``'s for every
layer kind, both dtypes and the presets; the graph passes the checker; errors name the layer."""

import os
import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import Activation, Linear, Network, d_sigmoid, sigmoid
from fastcnn.cli import main
from fastcnn.export import CONVERTERS, ExportError, to_onnx
from fastcnn.models import mnist_cnn

from .zoo import NETWORKS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# The targets: sigmoid outputs in [0, 1], so absolute tolerances. float32 sums of 3,380
# products round differently in ORT's GEMM than in fastcnn's kernels (seen: up to 4e-6).
ORT_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
DTYPES = (np.float32, np.float64)


def run_ort(model, xs):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": xs})[0]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NETWORKS)
def test_onnx_matches_predict_batch(name, dtype):
    # Catches a wrong converter (unflipped or transposed filters, a bias on the wrong axis, a
    # reshape in the wrong order, Gemm without transB) and a wrong dtype.
    network = NETWORKS[name](dtype)
    model = to_onnx(network)
    onnx.checker.check_model(model, full_check=True)
    data = np.random.default_rng(7)
    for n in (1, 5, 64):  # the batch axis is dynamic
        xs = data.random((n, *network.input_shape)).astype(dtype)
        got, want = run_ort(model, xs), network.predict_batch(xs)
        assert got.dtype == want.dtype == np.dtype(dtype), name
        assert got.shape == want.shape == (n, int(np.prod(network.output_shape))), name
        np.testing.assert_allclose(got, want, rtol=0, atol=ORT_TOL[np.dtype(dtype)], err_msg=name)


def test_onnx_model_interface():
    # Catches a fixed batch size or a misnamed input/output, which consumers rely on.
    model = to_onnx(mnist_cnn(rng=0))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["N", 1, 28, 28]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 10]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert model.opset_import[0].version == 17
    ops = {node.op_type for node in to_onnx(mnist_cnn(rng=0, dtype=np.float32)).graph.node}
    assert {"Conv", "Add", "Sigmoid", "Gemm"} <= ops  # float32 uses ORT's Conv kernel


def test_export_onnx_writes_atomically(tmp_path):
    # Catches a half-written file or a temporary left behind.
    network = mnist_cnn(rng=0, dtype=np.float32)
    path = tmp_path / "m.onnx"
    fastcnn.export_onnx(network, path)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]
    xs = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"input": xs})[0], network.predict_batch(xs), atol=1e-5
    )


def test_layer_without_converter_is_named():
    # Catches a silent export of a layer whose behaviour the converter does not know.
    class Doubling(Linear):
        pass

    network = Network([Doubling(4, 2), Activation(sigmoid, d_sigmoid)])
    with pytest.raises(ExportError) as info:
        to_onnx(network)
    assert str(info.value) == (
        "layer 0 (Linear(4, 2)): no ONNX converter for layer type 'Doubling'; "
        f"fastcnn.export.CONVERTERS knows {', '.join(CONVERTERS)}"
    )


def test_unregistered_activation_is_named():
    def relu(x):
        return np.maximum(x, 0)

    def d_relu(x):
        return (x > 0).astype(x.dtype)

    network = Network([Linear(4, 2), Activation(relu, d_relu)])
    with pytest.raises(ExportError, match=r"^layer 1 \(Activation\(relu, d_relu\)\): a model file"):
        to_onnx(network)


def test_unknown_config_option_is_refused(monkeypatch):
    # Catches a converter that would ignore an option added to a layer later (say padding=).
    layer = Linear(4, 2)
    monkeypatch.setattr(layer, "get_config", lambda: {**Linear(4, 2).get_config(), "padding": 1})
    with pytest.raises(ExportError, match=r"does not know the option\(s\) padding=1"):
        to_onnx(Network([layer]))


def test_mixed_dtypes_are_refused():
    network = Network([Linear(4, 3), Linear(3, 2, dtype=np.float32)])
    with pytest.raises(ExportError, match=r"mixes parameter dtypes float64 \(layer 0\), float32"):
        to_onnx(network)


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(
        ImportError, match=r"^ONNX export needs the onnx package: pip install 'fastcnn\[onnx\]'$"
    ):
        to_onnx(mnist_cnn(rng=0))


def test_cli_export(tmp_path, capsys):
    # Catches a broken command: the file it writes runs in ORT like the model file it read.
    network = mnist_cnn(rng=0, init="xavier")
    network.save(tmp_path / "m.npz")
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    xs = np.random.default_rng(1).random((4, 1, 28, 28))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"input": xs})[0], network.predict_batch(xs), rtol=0, atol=1e-12
    )


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    assert main(["export", str(tmp_path / "bad.npz"), str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastcnn: error: ") and err.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "m.onnx")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    network = mnist_cnn(rng=0)
    network.save(tmp_path / "m.npz")
    for out, message in (
        (tmp_path, f"fastcnn: error: {tmp_path}: is a directory, not an ONNX file\n"),
        (
            tmp_path / "missing" / "m.onnx",
            f"fastcnn: error: Cannot write {tmp_path / 'missing' / 'm.onnx'}: directory "
            f"{tmp_path / 'missing'} does not exist.\n",
        ),
    ):
        assert main(["export", str(tmp_path / "m.npz"), str(out)]) == 1
        assert capsys.readouterr().err == message
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "m.npz"]
