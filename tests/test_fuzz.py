"""Fuzzing the readers of untrusted files: fastcnn.io.load, fastcnn.datasets.read_idx and
fastcnn.images.load_digit.

Byte flips, overwritten runs and truncations of real files (a small model saved here, stored and
deflated; MNIST's t10k label file when the shared data is present, else a generated one; a
generated IDX image file; a digit drawn and saved in seven image formats), a few hundred seeded
cases each. Every outcome must be either the reader's
documented one-line error naming the file, or a correct result; and no case may allocate much
(tracemalloc peak, which sees NumPy's and Python's allocations).
"""

from __future__ import annotations

import gzip
import io as stdio
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fastcnn import Activation, Convolution, Linear, Network, Reshape, d_sigmoid, io, sigmoid
from fastcnn.datasets import DataFileError, read_idx
from fastcnn.io import ModelFileError

from .mnist import find_mnist
from .support import parameters

CASES = 300
PEAK = 32 << 20  # bytes; the files are a few kB, so a reader honouring their headers needs ~nothing


def small_model() -> Network:
    return Network(
        [
            Convolution((1, 6, 6), 3, 2, rng=0),
            Activation(sigmoid, d_sigmoid),
            Reshape((2, 4, 4), (32, 1)),
            Linear(32, 4, rng=1),
            Activation(sigmoid, d_sigmoid),
        ]
    )


INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xC8, 0xFF, ord("}"), ord("("), ord(","), ord("9"))


def mutations(data: bytes, seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` damaged copies of ``data``, in turn: a bit flipped, a byte set to a value that
    parsers trip on (0, 0xFF, 200 as a zip version, a ``}`` or digit in a .npy header dict), a
    run of 1-16 random bytes, a truncation. The first two aim at headers (zip records, .npy
    headers, the first bytes of the file) three times in four: random positions in a file of
    mostly data would rarely reach them."""
    rng = np.random.default_rng(seed)
    spans = [
        (i, 46) for sig in (b"PK\x01\x02", b"PK\x03\x04", b"PK\x05\x06") for i in _find(data, sig)
    ]
    spans += [(i, 128) for i in _find(data, b"\x93NUMPY")] + [(0, 32)]
    for case in range(count):
        buffer = bytearray(data)
        kind = case % 4
        if kind == 3:
            cut = int(rng.integers(0, len(data)))
            yield f"truncate at {cut}", bytes(buffer[:cut])
            continue
        if kind < 2 and rng.random() < 0.75:
            first, width = spans[int(rng.integers(0, len(spans)))]
            start = min(first + int(rng.integers(0, width)), len(data) - 1)
        else:
            start = int(rng.integers(0, len(data)))
        if kind == 0:
            bit = int(rng.integers(0, 8))
            buffer[start] ^= 1 << bit
            yield f"flip bit {bit} of byte {start}", bytes(buffer)
        elif kind == 1:
            value = int(rng.choice(INTERESTING))
            buffer[start] = value
            yield f"set byte {start} to {value:#04x}", bytes(buffer)
        else:
            run = int(rng.integers(1, 17))
            buffer[start : start + run] = rng.bytes(len(buffer[start : start + run]))
            yield f"overwrite {run} bytes at {start}", bytes(buffer)


def _find(data: bytes, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


def fuzz(
    tmp_path: Path,
    original: bytes,
    name: str,
    read: Callable[[Path], object],
    error: type[Exception],
    check: Callable[[object, bytes], None],
    seed: int,
    cases: int = CASES,
) -> dict[str, int]:
    path = tmp_path / name
    outcomes = {"error": 0, "loaded": 0}
    for what, damaged in mutations(original, seed, cases):
        path.write_bytes(damaged)
        tracemalloc.start()
        try:
            result = read(path)
        except error as exc:
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message, (what, message)
            outcomes["error"] += 1
        except BaseException as exc:
            pytest.fail(f"{what}: {type(exc).__name__} escaped: {exc}")
        else:
            check(result, damaged)
            outcomes["loaded"] += 1
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < PEAK, (what, peak)
    return outcomes


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_fuzz_model_reader(tmp_path, compressed):
    # Catches any damaged model file that escapes load() as another exception (a Traceback in
    # the CLI), loads into wrong parameters, or makes load allocate far more than the file holds.
    network = small_model()
    path = tmp_path / "model.npz"
    io.save(network, path)
    if compressed:  # the same members, deflated: reaches zlib's failure modes too
        with np.load(path, allow_pickle=False) as members:
            arrays = {k: members[k] for k in members.files}
        path.unlink()
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
    expected = list(parameters(network).values())

    def check(loaded, _damaged):
        got = list(parameters(loaded).values())
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)

    outcomes = fuzz(
        tmp_path, path.read_bytes(), "fuzzed.npz", io.load, ModelFileError, check, seed=10
    )
    assert outcomes["error"] > CASES // 2, outcomes


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _labels() -> bytes:
    where, _ = find_mnist()
    for real in (where / "t10k-labels-idx1-ubyte.gz", where / "t10k-labels-idx1-ubyte"):
        if real.is_file():
            data = real.read_bytes()
            return gzip.decompress(data) if real.suffix == ".gz" else data
    return idx_bytes(np.random.default_rng(3).integers(0, 10, 10000))


@pytest.mark.parametrize("source", ["labels", "images"])
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_fuzz_idx_reader(tmp_path, source, gz):
    # Catches any damaged IDX file that escapes read_idx as another exception, is read with a
    # shape its header does not state, or makes read_idx allocate more than the file could hold.
    raw = (
        _labels()
        if source == "labels"
        else idx_bytes(np.random.default_rng(4).integers(0, 256, (20, 28, 28)))
    )
    original = gzip.compress(raw, compresslevel=6, mtime=0) if gz else raw
    reference = read_idx_bytes(raw)

    def check(result, damaged):
        result = np.asarray(result)
        assert result.dtype == np.uint8
        if gz:  # gzip's CRC: a successful read is the original, bit for bit
            np.testing.assert_array_equal(result, reference)
        else:  # raw IDX has no checksum: the shape must match, a data byte may differ
            assert result.shape == reference.shape
            assert np.count_nonzero(result != reference) <= 16

    name = "fuzzed-idx-ubyte" + (".gz" if gz else "")
    seed = {"labels": 20, "images": 30}[source] + gz
    fuzz(tmp_path, original, name, read_idx, DataFileError, check, seed=seed)


def read_idx_bytes(raw: bytes) -> np.ndarray:
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


IMAGE_FORMATS = {
    # name: (Pillow format, mode, file suffix)
    "png-grey": ("PNG", "L", ".png"),
    "png-palette": ("PNG", "P", ".png"),
    "png-16-bit": ("PNG", "I;16", ".png"),
    "jpeg": ("JPEG", "L", ".jpg"),
    "gif": ("GIF", "L", ".gif"),
    "bmp": ("BMP", "RGB", ".bmp"),
    "tiff": ("TIFF", "L", ".tif"),
}


@pytest.mark.parametrize("kind", IMAGE_FORMATS)
def test_fuzz_image_reader(tmp_path, kind):
    # Catches a damaged image escaping load_digit as another exception (a Traceback in
    # `fastcnn predict`), a warning on stderr, or a decode larger than max_pixels allows.
    from PIL import Image

    from fastcnn.images import ImageFileError, load_digit

    from .test_images import draw_digit

    fmt, mode, suffix = IMAGE_FORMATS[kind]
    grey = draw_digit(size=(60, 48), box=(10, 6, 34, 42), width=5)
    image = (
        Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
        if mode == "I;16"
        else grey.convert(mode)
    )
    buffer = stdio.BytesIO()
    image.save(buffer, fmt)

    def check(digit, _damaged):
        digit = np.asarray(digit)
        assert digit.shape == (1, 28, 28) and np.isfinite(digit).all()
        assert digit.min() >= 0 and digit.max() <= 1

    def read(path):
        return load_digit(path, max_pixels=100_000)  # bounds what a forged header can decode

    seed = 40 + list(IMAGE_FORMATS).index(kind)
    fuzz(tmp_path, buffer.getvalue(), "fuzzed" + suffix, read, ImageFileError, check, seed, 120)
