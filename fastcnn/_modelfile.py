"""Model files: a network's architecture and parameters in one ``.npz``; no pickle, no code.

This module reads and writes lists of layers; :mod:`fastcnn.io` makes them a ``Network`` (so
that ``network.py`` can save without importing the module that builds networks).

A model file is an ordinary NumPy ``.npz`` (a zip of ``.npy`` members):

* ``architecture.json``: a uint8 array of UTF-8 JSON, ``{"format": "fastcnn-model", "version": 1,
  "layers": [...]}``, one object per layer with its type and constructor arguments, for instance
  ``{"type": "Linear", "input_size": 3380, "output_size": 100, "dtype": "float64", "backend":
  "numba"}`` or ``{"type": "Activation", "activation": "sigmoid", "backend": "numba"}``;
* ``layer{i}.{name}``: each parameter array of layer ``i`` (0-based), ``filters``/``biases`` for a
  Convolution, ``weights``/``biases`` for a Linear layer, stored bit for bit;
* optionally, where training stood (written by ``Network.train``'s checkpoints, read by its
  ``resume``): ``training.json`` (UTF-8 JSON: the epoch, the optimizer and schedule as
  ``fastcnn.optim.serialize`` gives them, the optimizer's step, the shuffling generator's state)
  and ``training.{name}`` arrays (the optimizer's state buffers). Files without them load as ever.

``load`` trusts nothing in the file: layer types come from an allow-list, every field, member name,
shape and dtype is checked against the architecture before any parameter data is read, and arrays
are read with ``allow_pickle=False``. Nothing in a file is ever executed. The architecture's
parameter count (at most ``max_parameters``, default ``MAX_PARAMETERS``) and every member's declared
size are checked before anything is decompressed or allocated; every zip or ``.npy`` parse failure
is a ``ModelFileError``; only regular files are opened; non-finite parameters are refused.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import glob
import json
import math
import numbers
import os
import stat
import struct
import tempfile
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no flock; stale temporary files are then left alone
    fcntl = None  # type: ignore[assignment]

from ._files import open_regular
from .layers import LAYERS, Layer

PathLike = Union[str, "os.PathLike[str]"]

FORMAT = "fastcnn-model"
VERSION = 1
ARCHITECTURE = "architecture.json"
TRAINING = "training.json"

# The only layer types a file may name are the registry's (fastcnn.registry.LAYERS); the JSON
# fields each one must have (no more, no fewer) are the keys of its get_config(), CONFIG_FIELDS,
# except that a field of its CONFIG_DEFAULTS (added after files were first written, and left out
# by get_config at its default) may be absent: it then has its default.
_MAX_ARCHITECTURE_BYTES = 1 << 20  # a real one is a few hundred bytes; refuse to parse megabytes
# The default budget of ``load``: 10**8 parameters, 800 MB as float64, some 300 times the notebook's
# MNIST network (338,655). ``load(path, max_parameters=None)`` lifts it.
MAX_PARAMETERS = 10**8
_MAX_NPY_HEADER = (
    1 << 16
)  # a member may exceed its data by at most this (numpy's header is < 10 kB)
# Everything zipfile and numpy's .npy reader raise on damaged or hostile bytes (found by a fuzzer):
# RuntimeError for an encrypted member, NotImplementedError for a zip version or compression,
# SyntaxError/TokenError for a bad header dict, OverflowError/MemoryError for forged sizes, ...
_PARSE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    SyntaxError,
    tokenize.TokenError,
    OverflowError,
    MemoryError,
    struct.error,
    KeyError,
    IndexError,
    TypeError,
)


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, or not a valid fastcnn model; the message names the file
    and the fault."""


# ---------------------------------------------------------------------------------------------------
# save


def save(layers: Sequence[Layer], path: PathLike, training: dict | None = None) -> None:
    """Write a network's ``layers`` to ``path`` as a model file (see the module docstring).

    The file is written under a temporary name in the same directory and then renamed over
    ``path``, so an interrupted or failed save leaves the previous file intact, never a half-written
    one. ``path`` is used as given (no ``.npz`` is appended).

    Raises
    ------
    ValueError
        A layer that a model file cannot describe (an unregistered type or a subclass, a
        user-defined activation), or a parameter whose shape or dtype no longer matches its layer;
        the message names the layer.

    ``training``: ``{"json": JSON object, "arrays": {name: ndarray}}``, where training stands
    (see the module docstring), or None.
    """
    specs, arrays = [], {}
    for i, layer in enumerate(layers):
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
    if training is not None:
        text = json.dumps(training["json"], allow_nan=False)
        arrays[TRAINING] = np.frombuffer(text.encode("utf-8"), np.uint8)
        for name, value in training["arrays"].items():
            arrays[f"training.{name}"] = np.asarray(value)
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
    """Write ``arrays`` to a temporary file beside ``path`` and rename it over ``path``.

    The temporary file, ``.NAME.XXXXXXXX.tmp``, is flock-ed by its writer until the rename, so a
    later save can tell a killed save's leftover (unlocked) from a save in progress, and removes
    the leftovers (:func:`_remove_stale_temporaries`)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Cannot save the model to {path}: directory {directory} does not exist."
        )
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a model file", path)
    _remove_stale_temporaries(path)
    fd, tmp = _locked_temporary(directory, f".{os.path.basename(path)}.")
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the model
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)  # releases the lock, after the rename


def _locked_temporary(directory: str, prefix: str) -> tuple[int, str]:
    """mkstemp in ``directory`` (same file system as the target, so os.replace is an atomic
    rename), holding an exclusive flock on it. Another process's cleanup may take the file between
    its creation and our lock; it is then unlinked, and we start over with a new one."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd, tmp
        os.close(fd)


def _remove_stale_temporaries(path: str) -> None:
    """Delete the ``.NAME.*.tmp`` files beside ``path`` that no writer holds locked: leftovers
    of a save that was killed (SIGKILL, power loss) before it could remove its temporary file. A
    save in progress holds its lock, so its file is left alone. Without flock (Windows) nothing is
    removed."""
    if fcntl is None:
        return
    directory, base = os.path.split(os.path.abspath(path))
    pattern = os.path.join(glob.escape(directory), glob.escape(f".{base}.") + "*.tmp")
    for tmp in glob.glob(pattern):
        with contextlib.suppress(OSError):  # gone meanwhile, not ours to open, locked: keep going
            if not stat.S_ISREG(os.lstat(tmp).st_mode):
                continue
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer
                os.unlink(tmp)
            finally:
                os.close(fd)


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


def load_layers(
    path: PathLike,
    *,
    max_parameters: int | None = MAX_PARAMETERS,
    allow_nonfinite: bool = False,
) -> list[Layer]:
    """The layers of a model file written by :func:`save` (``fastcnn.load`` makes them a
    ``Network``).

    Parameters are restored bit for bit, so ``load(p).predict(x)`` equals the saved network's
    ``predict(x)``. Loading draws nothing from NumPy's global random state.

    A file cannot make ``load`` use much more memory than the network it describes: the parameter
    count is computed from the architecture and checked against ``max_parameters``, and every
    member's declared size and ``.npy`` header against that architecture, before any parameter data
    is decompressed or allocated. Only regular files are read (a FIFO or device is refused without
    blocking).

    Parameters
    ----------
    path : str or path-like
    max_parameters : int or None, default ``MAX_PARAMETERS`` (10**8, 800 MB as float64)
        Refuse an architecture with more parameters than this; None lifts the limit, for a file
        you trust. The command line's ``--max-parameters`` sets it.
    allow_nonfinite : bool, default False
        Load parameters that are nan or inf (a diverged training run). By default such a file is
        refused, since every prediction of that network would be nan.

    Returns
    -------
    list of Layer

    Raises
    ------
    ModelFileError
        Not a zip/npz file, truncated or corrupt data, an unknown format version, an unknown layer
        type or field, missing or unexpected members, a parameter of the wrong shape or dtype,
        pickled (object) data, more parameters than ``max_parameters``, non-finite parameters, or
        not a regular file. The message names the file, the layer and the fault.
    FileNotFoundError, PermissionError, IsADirectoryError
        The file cannot be opened.
    """
    name = os.fspath(path)
    if max_parameters is not None and (
        not isinstance(max_parameters, numbers.Integral)
        or isinstance(max_parameters, bool)
        or max_parameters < 0
    ):
        raise ValueError(
            f"max_parameters must be a non-negative integer or None, got {max_parameters!r}."
        )
    return _read(name, max_parameters, allow_nonfinite, lambda reader: reader.layers())


def load_training(path: PathLike) -> dict | None:
    """Where training stood in model file ``path``: ``{"json": ..., "arrays": {...}}`` as
    :func:`save` took it, or None for a file without (an older one, or a plain ``save``). The
    file is checked as :func:`load_layers` checks it."""

    def training(reader: _Reader) -> dict | None:
        reader.layers()
        return reader.training()

    return _read(os.fspath(path), MAX_PARAMETERS, False, training)


def load_parameters(path: PathLike, layers: Sequence[Layer]) -> None:
    """Copy the parameters of model file ``path`` into ``layers``, which must have its
    architecture (same layer types, parameter shapes and dtypes)."""
    name = os.fspath(path)
    saved = load_layers(name)
    mine = [_describe(i, layer) for i, layer in enumerate(layers)]
    theirs = [_describe(i, layer) for i, layer in enumerate(saved)]
    if mine != theirs:
        raise ValueError(
            f"{name}: the model file's architecture {[_signature(s) for s in theirs]} is not this "
            f"network's {[_signature(s) for s in mine]}."
        )
    for layer, source in zip(layers, saved, strict=True):
        for array, value in zip(layer.parameters(), source.parameters(), strict=True):
            array[...] = value


def _read(name: str, max_parameters: int | None, allow_nonfinite: bool, what: Any) -> Any:
    # OSError (missing file...) propagates unchanged; a FIFO or device is refused without blocking
    with open_regular(name, ModelFileError, "a model file is a .npz file.") as f:
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
        f.seek(0)
        try:
            archive = zipfile.ZipFile(f)
        except _PARSE_ERRORS as exc:
            raise ModelFileError(
                f"{name}: truncated or corrupt model file (the zip archive cannot be read: "
                f"{_describe_error(exc)})."
            ) from None
        with archive:
            reader = _Reader(name, archive)
            reader.max_parameters, reader.allow_nonfinite = max_parameters, allow_nonfinite
            return what(reader)


def _describe_error(exc: BaseException) -> str:
    """An exception from zipfile/numpy as one short phrase: its first line, after its type when
    the message alone would not say what failed (a MemoryError's is empty, a KeyError's a name)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    plain = isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError, OSError)) or (
        type(exc) is ValueError
    )
    return (
        text if text and plain else f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    )


class _Reader:
    """Reads and checks one open model archive; every fault becomes a ModelFileError."""

    max_parameters: int | None = MAX_PARAMETERS
    allow_nonfinite = False

    def __init__(self, name: str, archive: zipfile.ZipFile):
        self.name = name
        self.archive = archive

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: {message}")

    def layers(self) -> list[Layer]:
        try:
            entries = self.archive.namelist()
        except _PARSE_ERRORS as exc:  # pragma: no cover - namelist only lists parsed entries
            raise self.fail(f"the zip directory cannot be read ({_describe_error(exc)}).") from None
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
        shapes = [_param_shapes(spec) for spec in specs]  # the one use of the layers' sizes
        expected = {ARCHITECTURE}
        for i, layer_shapes in enumerate(shapes):
            expected |= {f"layer{i}.{p}" for p in layer_shapes}
        self.extra = {m for m in members if m == TRAINING or m.startswith("training.")}
        self.count = sum(math.prod(shape) for layer in shapes for shape in layer.values())
        missing, unknown = sorted(expected - members), sorted(members - expected - self.extra)
        if missing:
            raise self.fail(
                f"missing member {missing[0]!r}, which the architecture requires "
                f"({len(missing)} missing in all)."
            )
        if unknown:
            raise self.fail(
                f"unknown member {unknown[0]!r}; the architecture has no such parameter."
            )
        self.check_budget(specs, shapes)
        return [self.layer(i, spec) for i, spec in enumerate(specs)]

    def training(self) -> dict | None:
        """The training state's members (None without them); their sizes checked against the
        architecture's parameter count before they are read."""
        if TRAINING not in self.extra:
            if self.extra:
                raise self.fail(f"member {sorted(self.extra)[0]!r} without {TRAINING!r}.")
            return None
        size = self.archive.getinfo(TRAINING + ".npy").file_size
        if size > 10 * _MAX_ARCHITECTURE_BYTES:
            raise self.fail(f"{TRAINING} is {size} bytes; a real one is a few kilobytes.")
        data = self.read(TRAINING, None, np.dtype(np.uint8))
        try:
            doc = json.loads(data.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self.fail(f"{TRAINING} is not valid UTF-8 JSON ({exc}).") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("epoch"), int):
            raise self.fail(f'{TRAINING} lacks an integer "epoch".')
        state = doc.get("optimizer_state")
        dtype = np.dtype(state.get("dtype", "float64") if isinstance(state, dict) else "float64")
        if dtype.name not in ("float64", "float32"):
            raise self.fail(f"{TRAINING}: optimizer state dtype {dtype.name}.")
        arrays = {}
        for member in sorted(self.extra - {TRAINING}):
            limit = self.count * dtype.itemsize + _MAX_NPY_HEADER
            if self.archive.getinfo(member + ".npy").file_size > limit:
                raise self.fail(f"member {member} is larger than the network's parameters.")
            arrays[member[len("training.") :]] = self.read(member, None, dtype)
        return {"json": doc, "arrays": arrays}

    def check_budget(self, specs: list, shapes: list) -> None:
        """Before any parameter is read: the architecture's parameter count against
        ``max_parameters``, and each member's declared (uncompressed) size against its shape, so
        neither a forged architecture nor a zip bomb can make ``load`` allocate much."""
        count = sum(math.prod(shape) for layer in shapes for shape in layer.values())
        if self.max_parameters is not None and count > self.max_parameters:
            raise self.fail(
                f"the architecture has {count:,} parameters, more than the limit of "
                f"{self.max_parameters:,}; if you trust this file, load it with "
                f"max_parameters={count} (or None; fastcnn: --max-parameters {count})."
            )
        for i, (spec, layer) in enumerate(zip(specs, shapes, strict=True)):
            for param, shape in layer.items():
                info = self.archive.getinfo(f"layer{i}.{param}.npy")
                itemsize = np.dtype(spec.get("dtype", "float64")).itemsize
                limit = math.prod(shape) * itemsize + _MAX_NPY_HEADER
                if info.file_size > limit:
                    raise self.fail(
                        f"layer {i} ({_signature(spec)}): member {param} is {info.file_size:,} "
                        f"bytes uncompressed, but an array of shape {shape} needs "
                        f"at most {limit:,}; the file is corrupt or forged."
                    )

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
        except _PARSE_ERRORS as exc:
            raise self.fail(
                f"{prefix}{array_name} is truncated or corrupt ({_describe_error(exc)})."
            ) from None
        if dtype.kind == "f" and not self.allow_nonfinite:
            bad = np.flatnonzero(~np.isfinite(array))
            if bad.size:
                where_bad = np.unravel_index(bad[0], array.shape)
                raise self.fail(
                    f"{prefix}{array_name} holds {bad.size} non-finite values (nan or inf; the "
                    f"first at index {tuple(int(k) for k in where_bad)}), so every prediction "
                    f"would be nan; a diverged training run? Pass allow_nonfinite=True to load "
                    f"it anyway."
                )
        # Same values, in native byte order and C layout (say, a file from a big-endian machine).
        return np.ascontiguousarray(array, dtype=dtype)

    def architecture(self) -> list:
        size = self.archive.getinfo(ARCHITECTURE + ".npy").file_size  # namelist() had it
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
        if not isinstance(kind, str) or kind not in LAYERS:
            raise self.fail(
                f"layer {i}: unknown layer type {kind!r}; a model file may hold only "
                f"{', '.join(LAYERS)}."
            )
        fields = set(LAYERS[kind].CONFIG_FIELDS)
        # A file older than a layer's newer fields: they take the values that mean "absent".
        for name, value in LAYERS[kind].CONFIG_DEFAULTS.items():
            spec.setdefault(name, value)
        missing, unknown = sorted(fields - set(spec)), sorted(set(spec) - fields - {"type"})
        if missing:
            raise self.fail(f"layer {i} ({kind}): missing field {missing[0]!r}.")
        if unknown:
            raise self.fail(f"layer {i} ({kind}): unknown field {unknown[0]!r}.")
        fault = LAYERS[kind].config_fault({k: v for k, v in spec.items() if k != "type"})
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


def _signature(spec: dict) -> str:
    """A checked spec as the constructor call it stands for, as in the layer's repr."""
    return LAYERS[spec["type"]].signature({k: v for k, v in spec.items() if k != "type"})
