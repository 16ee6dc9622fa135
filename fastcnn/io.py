"""Model files: a network's architecture and parameters in one ``.npz``; no pickle, no code.

A model file is an ordinary NumPy ``.npz`` (a zip of ``.npy`` members):

* ``architecture.json``: a uint8 array of UTF-8 JSON, ``{"format": "fastcnn-model", "version": 1,
  "layers": [...]}``, one object per layer with its type and constructor arguments, for instance
  ``{"type": "Linear", "input_size": 3380, "output_size": 100, "dtype": "float64", "backend":
  "numba"}`` or ``{"type": "Activation", "activation": "sigmoid", "backend": "numba"}``;
* ``layer{i}.{name}``: each parameter array of layer ``i`` (0-based), ``filters``/``biases`` for a
  Convolution, ``weights``/``biases`` for a Linear layer, stored bit for bit.

``load`` trusts nothing in the file: layer types come from an allow-list, every field, member name,
shape and dtype is checked against the architecture before any parameter data is read, and arrays
are read with ``allow_pickle=False``. Nothing in a file is ever executed.
"""

from __future__ import annotations

import collections
import contextlib
import json
import numbers
import os
import tempfile
import zipfile
import zlib
from typing import Any, Union

import numpy as np

from ._validation import BACKENDS
from .layers import ACTIVATIONS, LAYERS, Layer
from .network import Network

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "fastcnn-model"
VERSION = 1
ARCHITECTURE = "architecture.json"

# The only layer types a file may name (fastcnn.layers.LAYERS), and the JSON fields each one must
# have (no more, no fewer): the keys of its get_config().
_FIELDS = {kind: cls.CONFIG_FIELDS for kind, cls in LAYERS.items()}
_DTYPES = ("float64", "float32")
_MAX_ARCHITECTURE_BYTES = 1 << 20  # a real one is a few hundred bytes; refuse to parse megabytes


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, or not a valid fastcnn model; the message names the file
    and the fault."""


# ---------------------------------------------------------------------------------------------------
# save


def save(network: Network, path: PathLike) -> None:
    """Write ``network`` to ``path`` as a model file (see the module docstring).

    The file is written under a temporary name in the same directory and then renamed over
    ``path``, so an interrupted or failed save leaves the previous file intact, never a half-written
    one. ``path`` is used as given (no ``.npz`` is appended).

    Parameters
    ----------
    network : Network
        Made of Convolution, Linear, Reshape and Activation(sigmoid, d_sigmoid) layers.
    path : str or path-like

    Raises
    ------
    ValueError
        A layer that a model file cannot describe (another layer type or subclass, a user-defined
        activation), or a parameter whose shape or dtype no longer matches its layer; the message
        names the layer.
    """
    if not isinstance(network, Network):
        raise TypeError(f"save expects a fastcnn Network, got {type(network).__name__}.")
    specs, arrays = [], {}
    for i, layer in enumerate(network.layers):
        spec = _describe(i, layer)
        specs.append(spec)
        for name, shape in _param_shapes(spec).items():
            value = np.asarray(layer.named_parameters()[name])
            fault = _array_fault(name, value.shape, value.dtype, shape, spec["dtype"])
            if fault:
                raise ValueError(f"Cannot save layer {i} ({layer!r}): {fault}.")
            arrays[f"layer{i}.{name}"] = value
    doc = {"format": FORMAT, "version": VERSION, "layers": specs}
    arrays[ARCHITECTURE] = np.frombuffer(json.dumps(doc).encode("utf-8"), np.uint8)
    _atomic_write(path, arrays)


def _describe(i: int, layer: Any) -> dict:
    """The JSON object for one layer: its type and ``get_config()``. Exact registered types only,
    since a subclass may behave differently."""
    kind = type(layer).__name__
    if LAYERS.get(kind) is not type(layer):
        raise ValueError(
            f"Cannot save layer {i} ({layer!r}): model files hold only the layer types "
            f"{', '.join(LAYERS)}, not {kind}."
        )
    try:
        config = layer.get_config()
    except ValueError as exc:
        raise ValueError(
            f"Cannot save layer {i} ({layer!r}): {exc}; save the parameters "
            f"yourself (np.savez) instead."
        ) from None
    return {"type": kind, **_json(config)}


def _json(value: Any) -> Any:
    """A config with NumPy integers and tuples turned into JSON ints and lists."""
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _write_npz(file: Any, arrays: dict) -> None:
    """The one place bytes are written (a test makes it fail half-way)."""
    np.savez(file, **arrays)


def _atomic_write(path: PathLike, arrays: dict) -> None:
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Cannot save the model to {path}: directory {directory} does not exist."
        )
    # Same directory as the target, so os.replace is an atomic rename on one file system.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the model
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _file_mode(path: str) -> int:
    """mkstemp creates 0600; give the model the mode a plain ``open(path, "wb")`` would have."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o777  # keep the mode of the file being replaced
    # os.umask can only be read by setting it; restore it at once.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


# ---------------------------------------------------------------------------------------------------
# load


def load(path: PathLike) -> Network:
    """Read a model file written by :func:`save` (or ``Network.save``).

    Parameters are restored bit for bit, so ``load(p).predict(x)`` equals the saved network's
    ``predict(x)``. Loading draws nothing from NumPy's global random state.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    Network

    Raises
    ------
    ModelFileError
        Not a zip/npz file, truncated or corrupt data, an unknown format version, an unknown layer
        type or field, missing or unexpected members, a parameter of the wrong shape or dtype, or
        pickled (object) data. The message names the file, the layer and the fault.
    FileNotFoundError, PermissionError
        The file cannot be opened.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:  # OSError (missing file...) propagates unchanged
        head = f.read(4)
    if head[:2] != b"PK":
        what = (
            "a single .npy array"
            if head == b"\x93NUM"
            else "an empty file"
            if not head
            else f"a file starting with {head!r}"
        )
        raise ModelFileError(
            f"{name}: not a fastcnn model file (a .npz zip archive); it is {what}."
        )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(
            f"{name}: truncated or corrupt model file (the zip archive cannot be read: {exc})."
        ) from None
    with archive:
        return _Reader(name, archive).network()


class _Reader:
    """Reads and checks one open model archive; every fault becomes a ModelFileError."""

    def __init__(self, name: str, archive: zipfile.ZipFile):
        self.name = name
        self.archive = archive

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: {message}")

    def network(self) -> Network:
        entries = self.archive.namelist()
        duplicates = sorted(e for e, n in collections.Counter(entries).items() if n > 1)
        if duplicates:
            raise self.fail(
                f"member {duplicates[0]!r} appears more than once; the file is corrupt."
            )
        bad = [e for e in entries if not e.endswith(".npy")]
        if bad:
            raise self.fail(f"unknown member {bad[0]!r}; a model file holds only .npy arrays.")
        members = {e[:-4] for e in entries}
        if ARCHITECTURE not in members:
            raise self.fail(
                f"not a fastcnn model file: it has no {ARCHITECTURE!r} member "
                f"(members: {', '.join(sorted(members)) or 'none'})."
            )
        specs = self.architecture()
        expected = {ARCHITECTURE}
        for i, spec in enumerate(specs):
            expected |= {f"layer{i}.{p}" for p in _param_shapes(spec)}
        missing, unknown = sorted(expected - members), sorted(members - expected)
        if missing:
            raise self.fail(
                f"missing member {missing[0]!r}, which the architecture requires "
                f"({len(missing)} missing in all)."
            )
        if unknown:
            raise self.fail(
                f"unknown member {unknown[0]!r}; the architecture has no such parameter."
            )
        return Network([self.layer(i, spec) for i, spec in enumerate(specs)])

    def read(
        self, member: str, shape: tuple | None, dtype: np.dtype, where: str = ""
    ) -> np.ndarray:
        """Member ``member`` as an array of ``shape`` (None: any 1-D) and ``dtype``. The header is
        checked before the data is read, so a forged header cannot make us allocate more than the
        architecture allows. ``where`` ("layer 3 (Linear(3380, 100))") prefixes the messages."""
        entry, array_name = member + ".npy", member.rsplit(".", 1)[-1] if where else member
        prefix = f"{where}: " if where else ""
        try:
            with self.archive.open(entry) as f:
                major, _ = np.lib.format.read_magic(f)
                header = (
                    np.lib.format.read_array_header_1_0
                    if major == 1
                    else np.lib.format.read_array_header_2_0
                )
                found_shape, _, found_dtype = header(f)
            if found_dtype.hasobject:
                raise self.fail(
                    f"{prefix}{array_name} holds Python objects (pickled data); "
                    f"fastcnn never unpickles, because unpickling can run code."
                )
            fault = _array_fault(array_name, found_shape, found_dtype, shape, dtype)
            if fault:
                raise self.fail(f"{prefix}{fault}.")
            with self.archive.open(entry) as f:
                array = np.lib.format.read_array(f, allow_pickle=False)
                if f.read(1):
                    raise ValueError("trailing bytes after the array data")
        except ModelFileError:
            raise
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            ValueError,
            NotImplementedError,
        ) as exc:  # NotImplementedError: unsupported zip compression
            raise self.fail(f"{prefix}{array_name} is truncated or corrupt ({exc}).") from None
        # Same values, in native byte order and C layout (say, a file from a big-endian machine).
        return np.ascontiguousarray(array, dtype=dtype)

    def architecture(self) -> list:
        size = self.archive.getinfo(ARCHITECTURE + ".npy").file_size
        if size > _MAX_ARCHITECTURE_BYTES:
            raise self.fail(f"{ARCHITECTURE} is {size} bytes; a real one is a few hundred.")
        data = self.read(ARCHITECTURE, None, np.dtype(np.uint8))
        try:
            doc = json.loads(data.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self.fail(f"{ARCHITECTURE} is not valid UTF-8 JSON ({exc}).") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise self.fail(f'not a fastcnn model file: {ARCHITECTURE} lacks "format": "{FORMAT}".')
        version = doc.get("version")
        if version != VERSION or isinstance(version, bool):
            newer = isinstance(version, int) and version > VERSION
            raise self.fail(
                f"model format version {version!r}, but this fastcnn reads version "
                f"{VERSION}" + ("; upgrade fastcnn to read it." if newer else ".")
            )
        extra = sorted(set(doc) - {"format", "version", "layers"})
        if extra:
            raise self.fail(f"unknown field {extra[0]!r} in {ARCHITECTURE}.")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise self.fail(f'{ARCHITECTURE} has no "layers" list.')
        for i, spec in enumerate(layers):
            self.check_spec(i, spec)
        return layers

    def check_spec(self, i: int, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise self.fail(f"layer {i}: expected a JSON object, found {spec!r}.")
        kind = spec.get("type")
        if kind not in _FIELDS:
            raise self.fail(
                f"layer {i}: unknown layer type {kind!r}; a model file may hold only "
                f"{', '.join(_FIELDS)}."
            )
        fields = set(_FIELDS[kind])
        missing, unknown = sorted(fields - set(spec)), sorted(set(spec) - fields - {"type"})
        if missing:
            raise self.fail(f"layer {i} ({kind}): missing field {missing[0]!r}.")
        if unknown:
            raise self.fail(f"layer {i} ({kind}): unknown field {unknown[0]!r}.")
        fault = _spec_fault(spec)
        if fault:
            raise self.fail(f"layer {i} ({kind}): {fault}.")

    def layer(self, i: int, spec: dict) -> Layer:
        kind, label = spec["type"], f"layer {i} ({_signature(spec)})"
        cls = LAYERS[kind]
        config = {k: v for k, v in spec.items() if k != "type"}
        params = {
            name: self.read(f"layer{i}.{name}", shape, np.dtype(spec["dtype"]), label)
            for name, shape in _param_shapes(spec).items()
        }
        # rng=0: the throw-away initial draws come from a private RandomState, so loading leaves
        # NumPy's global random state (which the seed's code draws from) untouched.
        options = {"rng": 0} if cls._PARAMETERS else {}
        try:
            layer = cls.from_config(config, **options)
        except (ValueError, TypeError, OverflowError) as exc:
            raise self.fail(f"{label}: {exc}") from None
        for name, value in params.items():  # replace the throw-away initial draws
            setattr(layer, name, value)
        return layer


# ---------------------------------------------------------------------------------------------------
# shared by save and load


def _param_shapes(spec: dict) -> dict:
    """``{name: shape}`` of the parameters of a (checked) layer spec, as its layer type says."""
    cls = LAYERS[spec["type"]]
    if not cls._PARAMETERS:
        return {}
    return cls.shapes_for(spec)  # type: ignore[attr-defined]


def _array_fault(
    name: str, shape: tuple, dtype: Any, expected_shape: tuple | None, expected_dtype: Any
) -> str | None:
    """What is wrong with an array of ``shape``/``dtype``, or None. ``expected_shape=None``
    means any 1-D shape. Byte order is not a fault: the values are the same."""
    dtype, expected_dtype = np.dtype(dtype), np.dtype(expected_dtype)
    if (
        dtype.hasobject
        or dtype.kind != expected_dtype.kind
        or dtype.itemsize != expected_dtype.itemsize
    ):
        return f"{name} has dtype {dtype}, expected {expected_dtype}"
    if expected_shape is None:
        if len(shape) != 1:
            return f"{name} has shape {tuple(shape)}, expected a 1-D array"
    elif tuple(shape) != tuple(expected_shape):
        return f"{name} has shape {tuple(shape)}, expected {tuple(expected_shape)}"
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1


def _shape_fault(field: str, value: Any, ndim: int | None = None) -> str | None:
    if (
        not isinstance(value, list)
        or not value
        or not all(map(_positive_int, value))
        or (ndim is not None and len(value) != ndim)
    ):
        dims = f"{ndim} " if ndim else ""
        return f"{field} must be a list of {dims}positive integers, found {value!r}"
    return None


def _spec_fault(spec: dict) -> str | None:
    """What is wrong with the field values of a layer spec whose type and keys are right."""
    kind = spec["type"]
    for field in ("input_size", "output_size", "filter_size", "filter_count"):
        if field in spec and not _positive_int(spec[field]):
            return f"{field} must be a positive integer, found {spec[field]!r}"
    if "dtype" in spec and spec["dtype"] not in _DTYPES:
        return f"dtype must be one of {_DTYPES}, found {spec['dtype']!r}"
    if "backend" in spec and spec["backend"] not in BACKENDS:
        return f"backend must be one of {BACKENDS}, found {spec['backend']!r}"
    if kind == "Activation" and spec["activation"] not in ACTIVATIONS:
        names = ", ".join(f'"{n}"' for n in ACTIVATIONS)
        return (
            f"activation must be {names} (the only one{'s' if len(ACTIVATIONS) > 1 else ''} a "
            f"model file can name), found {spec['activation']!r}"
        )
    if kind == "Convolution":
        fault = _shape_fault("input_shape", spec["input_shape"], 3)
        if fault:
            return fault
        if spec["filter_size"] > min(spec["input_shape"][1:]):
            return (
                f"filter_size {spec['filter_size']} is larger than the input image "
                f"{spec['input_shape'][1]}x{spec['input_shape'][2]}"
            )
    if kind == "Reshape":
        fault = _shape_fault("input_shape", spec["input_shape"]) or _shape_fault(
            "output_shape", spec["output_shape"]
        )
        if fault:
            return fault
        if np.prod(spec["input_shape"], dtype=object) != np.prod(
            spec["output_shape"], dtype=object
        ):
            return (
                f"input_shape {spec['input_shape']} and output_shape {spec['output_shape']} "
                f"hold different numbers of values"
            )
    return None


def _signature(spec: dict) -> str:
    """A checked spec as the constructor call it stands for, as in the layer's repr."""
    kind = spec["type"]
    if kind == "Linear":
        return f"Linear({spec['input_size']}, {spec['output_size']})"
    if kind == "Convolution":
        return (
            f"Convolution({tuple(spec['input_shape'])}, {spec['filter_size']}, "
            f"{spec['filter_count']})"
        )
    if kind == "Reshape":
        return f"Reshape({tuple(spec['input_shape'])}, {tuple(spec['output_shape'])})"
    entry = ACTIVATIONS[spec["activation"]]
    return f"Activation({entry.function.__name__}, {entry.derivative.__name__})"
