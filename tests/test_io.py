"""Tests for fastcnn.io: exact round trips, and every kind of bad model file rejected with a
message naming the file and the fault, without unpickling or running anything from it."""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import Activation, Linear, Network, Reshape, _modelfile, io
from fastcnn.io import ModelFileError
from fastcnn.layers import ACTIVATIONS, LAYERS
from fastcnn.models import mnist_cnn

from .support import parameters, xor_network


def softplus(x):
    # A user's own activation (fastcnn registers none of this name).
    return np.log1p(np.exp(x))


def d_softplus(x):
    return 1 / (1 + np.exp(-x))


# What a model file may name, as the messages list them (the registry's tables, in order).
REGISTERED_PAIRS = ", ".join(
    f"Activation({e.function.__name__}, {e.derivative.__name__})" for e in ACTIVATIONS.values()
)


def read_members(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        return {
            name[:-4]: np.lib.format.read_array(archive.open(name), allow_pickle=False)
            for name in archive.namelist()
        }


def architecture(arrays: dict) -> dict:
    return json.loads(arrays[io.ARCHITECTURE].tobytes())


def with_architecture(arrays: dict, doc: dict) -> dict:
    return {**arrays, io.ARCHITECTURE: np.frombuffer(json.dumps(doc).encode(), np.uint8)}


def params(network: Network) -> list[tuple[str, np.ndarray]]:
    return list(parameters(network).items())


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    io.save(mnist_cnn(rng=0), path)
    return path


# ---------------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("backend", ["numba", "scipy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_exact(tmp_path: Path, dtype, backend: str) -> None:
    # Catches parameters rounded or cast on the way (float32 stored as float64, JSON floats), a lost
    # backend or dtype, layers rebuilt out of order, and a load that draws from the global RNG
    # (it would shift every later np.random draw of the user's notebook).
    network = mnist_cnn(rng=1, dtype=dtype, backend=backend)
    x = np.random.RandomState(2).rand(1, 28, 28)
    network.train(
        [x], [np.eye(10)[3].reshape(10, 1)], fastcnn.mse, fastcnn.d_mse, 1, 0.1, verbose=False
    )  # trained values, not just fresh draws
    path = tmp_path / "model.npz"
    network.save(path)
    state = np.random.get_state()
    loaded = fastcnn.load(path)
    after = np.random.get_state()
    assert after[1].tolist() == state[1].tolist() and after[2] == state[2]
    assert repr(loaded) == repr(network)
    for (name, ours), (_, theirs) in zip(params(network), params(loaded), strict=True):
        assert theirs.dtype == np.dtype(dtype), name
        assert theirs.tobytes() == ours.tobytes(), name  # bitwise, NaN-safe
        assert theirs.flags.c_contiguous and theirs.flags.writeable, name
    assert np.array_equal(loaded.predict(x), network.predict(x))


def test_round_trip_small_network(tmp_path: Path) -> None:
    # Catches a loader that only knows the MNIST layout: the seed's XOR network has no
    # convolution and no reshape.
    network = Network([*xor_network(rng=0).layers, Reshape((1, 1), (1,))])
    io.save(network, tmp_path / "xor.npz")
    loaded = io.load(tmp_path / "xor.npz")
    x = np.array([[1.0], [0.0]])
    assert repr(loaded) == repr(network)
    assert np.array_equal(loaded.predict(x), network.predict(x))


def test_saved_file_is_plain_npz(saved: Path) -> None:
    # Catches a format drifting from what the docs promise (members, JSON, version), which other
    # tools reading the file with np.load rely on.
    with np.load(saved, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(
            [
                io.ARCHITECTURE,
                "layer0.filters",
                "layer0.biases",
                "layer3.weights",
                "layer3.biases",
                "layer5.weights",
                "layer5.biases",
            ]
        )
        doc = json.loads(archive[io.ARCHITECTURE].tobytes())
    assert doc["format"] == "fastcnn-model" and doc["version"] == 1
    assert doc["layers"][3] == {
        "type": "Linear",
        "input_size": 3380,
        "output_size": 100,
        "dtype": "float64",
        "backend": "numba",
    }
    assert doc["layers"][1] == {"type": "Activation", "activation": "sigmoid", "backend": "numba"}


# ---------------------------------------------------------------------------------------------------
# what save refuses


def test_save_rejects_user_activation(tmp_path: Path) -> None:
    # Catches a user-defined activation saved as "sigmoid" (silently wrong predictions after load)
    # or pickled (code in a model file).
    network = Network([Linear(2, 3, rng=0), Activation(softplus, d_softplus)])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Cannot save layer 1 (Activation(softplus, d_softplus)): a model file can hold only "
            f"{REGISTERED_PAIRS}."
        ),
    ):
        io.save(network, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_rejects_unknown_layer_type(tmp_path: Path) -> None:
    # Catches a subclass (whose forward_prop may differ) saved as its base class.
    class Scaled(Linear):
        pass

    network = Network([Scaled(2, 3, rng=0)])
    with pytest.raises(
        ValueError,
        match=r"Cannot save layer 0 \(Linear\(2, 3\)\): model files "
        r"hold only the layer types .*not Scaled\.",
    ):
        io.save(network, tmp_path / "m.npz")


def test_save_rejects_parameter_of_wrong_shape(tmp_path: Path) -> None:
    # Catches a file that save writes but load would refuse (weights replaced by hand).
    network = Network([Linear(2, 3, rng=0)])
    network.layers[0].weights = np.zeros((3, 4))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Cannot save layer 0 (Linear(2, 3)): weights has shape (3, 4), expected (3, 2)."
        ),
    ):
        io.save(network, tmp_path / "m.npz")


# ---------------------------------------------------------------------------------------------------
# what load refuses


def _rewrite(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        arrays = change(read_members(path))
        path.unlink()
        np.savez(path, **arrays)

    return mutate


def _edit_architecture(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def change(arrays: dict) -> dict:
        doc = architecture(arrays)
        edit(doc)
        return with_architecture(arrays, doc)

    return _rewrite(change)


def _truncate(fraction: float) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return mutate


def _scribble(path: Path) -> None:
    # random bytes over the middle of layer3.weights' data: the zip structure stays intact
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start : start + 64] = np.random.default_rng(0).bytes(64)
    path.write_bytes(bytes(data))


def _random_file(path: Path) -> None:
    path.write_bytes(np.random.default_rng(1).bytes(5000))


def _npy_file(path: Path) -> None:
    with open(path, "wb") as f:  # np.save(path) would append ".npy" to the name
        np.save(f, np.zeros(3))


def _forged_header(path: Path) -> None:
    # a header claiming a 8 TB array with no data behind it
    arrays = read_members(path)
    path.unlink()
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w") as f:
                if name == "layer3.weights":
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
                    )
                else:
                    np.lib.format.write_array(f, array)


def _set(key, value, layer=None):
    def edit(doc):
        (doc["layers"][layer] if layer is not None else doc)[key] = value

    return edit


def _drop(key, layer):
    def edit(doc):
        del doc["layers"][layer][key]

    return edit


BAD_FILES = {
    # name: (how to damage a saved MNIST model, the message after "<path>: ")
    "truncated": (
        _truncate(0.5),
        "truncated or corrupt model file (the zip archive cannot be read: ",
    ),
    "truncated-to-header": (_truncate(0.0005), "truncated or corrupt model file"),
    "empty": (_truncate(0.0), "not a fastcnn model file (a .npz zip archive); it is an empty file"),
    "random-bytes": (
        _random_file,
        "not a fastcnn model file (a .npz zip archive); it is a file starting with",
    ),
    "corrupt-data": (
        _scribble,
        "layer 3 (Linear(3380, 100)): weights is truncated or corrupt (Bad CRC-32",
    ),
    "npy-not-npz": (
        _npy_file,
        "not a fastcnn model file (a .npz zip archive); it is a single .npy array",
    ),
    "shape": (
        _rewrite(lambda a: {**a, "layer3.weights": np.zeros((100, 3381))}),
        "layer 3 (Linear(3380, 100)): weights has shape (100, 3381), expected (100, 3380).",
    ),
    "dtype": (
        _rewrite(lambda a: {**a, "layer5.biases": a["layer5.biases"].astype(np.float32)}),
        "layer 5 (Linear(100, 10)): biases has dtype float32, expected float64.",
    ),
    "int-dtype": (
        _rewrite(lambda a: {**a, "layer0.filters": np.zeros((5, 1, 3, 3), int)}),
        "layer 0 (Convolution((1, 28, 28), 3, 5)): filters has dtype int64, expected float64.",
    ),
    "forged-header": (
        _forged_header,
        "layer 3 (Linear(3380, 100)): weights has shape (1000000000000,), expected (100, 3380).",
    ),
    "missing-member": (
        _rewrite(lambda a: {k: v for k, v in a.items() if k != "layer5.biases"}),
        "missing member 'layer5.biases', which the architecture requires",
    ),
    "unknown-member": (
        _rewrite(lambda a: {**a, "run_me": np.zeros(1)}),
        "unknown member 'run_me'; the architecture has no such parameter.",
    ),
    "no-architecture": (
        _rewrite(lambda a: {"weights": np.zeros(3)}),
        "not a fastcnn model file: it has no 'architecture.json' member (members: weights).",
    ),
    "not-json": (
        _rewrite(lambda a: {**a, io.ARCHITECTURE: np.frombuffer(b"{oops", np.uint8)}),
        "architecture.json is not valid UTF-8 JSON",
    ),
    "wrong-format": (
        _edit_architecture(_set("format", "keras")),
        'not a fastcnn model file: architecture.json lacks "format": "fastcnn-model".',
    ),
    "newer-version": (
        _edit_architecture(_set("version", 2)),
        "model format version 2, but this fastcnn reads version 1; upgrade fastcnn to read it.",
    ),
    "unknown-layer-type": (
        _edit_architecture(_set("type", "Lambda", layer=1)),
        f"layer 1: unknown layer type 'Lambda'; a model file may hold only {', '.join(LAYERS)}.",
    ),
    "other-activation": (
        _edit_architecture(_set("activation", "softplus", layer=4)),
        "layer 4 (Activation): activation must be " + ", ".join(f'"{n}"' for n in ACTIVATIONS),
    ),
    "missing-field": (
        _edit_architecture(_drop("output_size", layer=5)),
        "layer 5 (Linear): missing field 'output_size'.",
    ),
    "unknown-field": (
        _edit_architecture(_set("code", "import os", layer=3)),
        "layer 3 (Linear): unknown field 'code'.",
    ),
    "bad-backend": (
        _edit_architecture(_set("backend", "cuda", layer=0)),
        "layer 0 (Convolution): backend must be one of ('numba', 'scipy'), found 'cuda'.",
    ),
    "bad-size": (
        _edit_architecture(_set("input_size", -3, layer=3)),
        "layer 3 (Linear): input_size must be a positive integer, found -3.",
    ),
    "filter-too-big": (
        _edit_architecture(_set("filter_size", 29, layer=0)),
        "layer 0 (Convolution): filter_size 29 is larger than the input image 28x28.",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_load_rejects_bad_file(saved: Path, case: str) -> None:
    # Catches a bad file loading into a broken network, or failing with a bare numpy/zipfile
    # exception (or a traceback in the CLI) that doesn't say which file and what is wrong.
    damage, message = BAD_FILES[case]
    damage(saved)
    with pytest.raises(ModelFileError) as info:
        io.load(saved)
    assert str(info.value).startswith(f"{saved}: {message}"), str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_never_unpickles(tmp_path: Path, saved: Path) -> None:
    # Catches np.load(allow_pickle=True) or pickle anywhere on the load path: unpickling this
    # array would create the marker directory (pickle can call any function).
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    arrays = read_members(saved)
    arrays["layer3.weights"] = np.array([Payload()], dtype=object)
    saved.unlink()
    np.savez(saved, **arrays)
    with pytest.raises(
        ModelFileError,
        match=re.escape(
            f"{saved}: layer 3 (Linear(3380, 100)): weights holds Python objects (pickled data)"
        ),
    ):
        io.load(saved)
    assert not marker.exists()


def test_load_missing_file_is_os_error(tmp_path: Path) -> None:
    # Catches a missing file reported as a corrupt one (the user would go looking for damage).
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "nope.npz")


# ---------------------------------------------------------------------------------------------------
# atomic writes


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error) -> None:
    # Catches a save that writes in place (a crash or Ctrl-C mid-write destroys the previous
    # model) or leaves its temporary file behind.
    path = tmp_path / "model.npz"
    io.save(Network([Linear(2, 3, rng=0)]), path)
    before = path.read_bytes()

    def failing_writer(file, arrays):
        file.write(b"PK\x03\x04 half a model")
        raise error

    monkeypatch.setattr(_modelfile, "_write_npz", failing_writer)
    with pytest.raises(type(error)):
        io.save(Network([Linear(2, 3, rng=1)]), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    assert np.array_equal(io.load(path).layers[0].weights, Linear(2, 3, rng=0).weights)


def test_save_file_mode_follows_umask(tmp_path: Path) -> None:
    # Catches the temporary file's private 0600 mode leaking into the model (other users of a
    # shared machine could not read it), and an overwrite resetting a chosen mode.
    old = os.umask(0o022)
    try:
        io.save(Network([Linear(2, 3, rng=0)]), tmp_path / "m.npz")
        assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "m.npz", 0o640)
        io.save(Network([Linear(2, 3, rng=0)]), tmp_path / "m.npz")
        assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_save_missing_directory(tmp_path: Path) -> None:
    # Catches an error naming mkstemp's random temporary file instead of the user's path.
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'no' / 'm.npz'}")):
        io.save(Network([Linear(2, 3, rng=0)]), tmp_path / "no" / "m.npz")


# ---------------------------------------------------------------------------------------------------
# files written before layers described themselves


# The architecture JSON exactly as io.save wrote it before get_config existed (version 1).
TODAYS_ARCHITECTURE = {
    "format": "fastcnn-model",
    "version": 1,
    "layers": [
        {
            "type": "Convolution",
            "input_shape": [1, 6, 6],
            "filter_size": 3,
            "filter_count": 2,
            "dtype": "float64",
            "backend": "numba",
        },
        {"type": "Activation", "activation": "sigmoid", "backend": "numba"},
        {"type": "Reshape", "input_shape": [2, 4, 4], "output_shape": [32, 1]},
        {
            "type": "Linear",
            "input_size": 32,
            "output_size": 3,
            "dtype": "float32",
            "backend": "scipy",
        },
    ],
}


def test_file_in_todays_format_loads_and_save_writes_it(tmp_path: Path) -> None:
    # Catches get_config/from_config changing the file format: a hand-built file in the version-1
    # layout (JSON fields, member names) must load exactly, and save must write the same JSON.
    rng = np.random.default_rng(0)
    arrays = {
        "layer0.filters": rng.standard_normal((2, 1, 3, 3)),
        "layer0.biases": rng.standard_normal((2, 4, 4)),
        "layer3.weights": rng.standard_normal((3, 32)).astype(np.float32),
        "layer3.biases": rng.standard_normal((3, 1)).astype(np.float32),
    }
    doc = json.dumps(TODAYS_ARCHITECTURE).encode()
    path = tmp_path / "old.npz"
    np.savez(path, **{io.ARCHITECTURE: np.frombuffer(doc, np.uint8)}, **arrays)
    network = io.load(path)
    assert [type(layer).__name__ for layer in network.layers] == [
        "Convolution",
        "Activation",
        "Reshape",
        "Linear",
    ]
    for key, value in arrays.items():
        i, name = key[len("layer") :].split(".")
        stored = network.layers[int(i)].named_parameters()[name]
        assert stored.dtype == value.dtype
        np.testing.assert_array_equal(stored, value)
    io.save(network, tmp_path / "new.npz")
    members = read_members(tmp_path / "new.npz")
    assert architecture(members) == TODAYS_ARCHITECTURE
    assert set(members) == {io.ARCHITECTURE, *arrays}
