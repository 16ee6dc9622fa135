"""MNIST and Fashion-MNIST: find, download, verify and read the four IDX files.

``load_mnist()`` returns what keras' ``mnist.load_data()`` returns; ``scale_images`` and ``one_hot``
turn it into the seed notebook's network inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._files import open_regular

PathLike = Union[str, "os.PathLike[str]"]
Split = tuple[NDArray[np.uint8], NDArray[np.uint8]]

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the *decompressed* official files: mirrors recompress, so only the IDX bytes are stable.
# t10k: from ../shared/data/README.md, recomputed from those copies of the official test set (their .gz
# hashes differently from the official archive; the content does not). train: written offline, so
# taken from several public projects that pin the official 60,000-image files and the same t10k
# digests; they agree, and their sizes (47,040,016 / 60,008 bytes) fit 60,000 items.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Computed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (upstream's files,
# recompressed); a public project that downloads from the upstream mirror pins the same four digests.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# plain http is acceptable only because every file is checked against FASHION_MNIST_SHA256
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
# Sizes of the official (decompressed) files, the same for MNIST and Fashion-MNIST: downloads and
# their decompression stop past these, so a hostile mirror cannot fill the disk or memory.
IDX_SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
MAX_IDX_BYTES = 1 << 30  # read_idx's default limit on the data a header may promise
_Stream = IO[bytes] | gzip.GzipFile
_TIMEOUT = 60.0  # seconds per connection attempt; a stalled mirror must not hang a training script


class DataFileError(ValueError):
    """A data file is corrupt, inconsistent or fails its checksum; the message names the file."""


class DataNotFoundError(DataFileError, FileNotFoundError):
    """The files are in none of the searched directories and could not be downloaded."""


def read_idx(
    path: PathLike, *, ndim: int | None = None, max_bytes: int | None = MAX_IDX_BYTES
) -> NDArray[np.uint8]:
    """Read an unsigned-byte IDX file, gzipped (name ends in ``.gz``) or raw.

    The file is read as a stream: the header first, then exactly the bytes it promises, and one
    more to detect trailing data. So neither a forged header nor a gzip bomb (a small ``.gz``
    inflating to gigabytes) makes it read or allocate more than the header promised.

    Parameters
    ----------
    path : str or path-like
        For example ``train-images-idx3-ubyte.gz``.
    ndim : int, optional
        Dimension count the file must declare: 3 for images, 1 for labels. Any if None.
    max_bytes : int or None, default ``MAX_IDX_BYTES`` (1 GiB; MNIST's largest file is 47 MB)
        Refuse a header promising more data than this; None lifts the limit.

    Returns
    -------
    ndarray of shape (n,) for labels or (n, rows, cols) for images, dtype uint8

    Raises
    ------
    DataFileError
        Bad gzip, bad magic number, wrong dimension count, a header promising more than
        ``max_bytes``, or a byte count that does not match the dimensions (truncated file or
        trailing bytes).
    FileNotFoundError, PermissionError
        The file cannot be opened.
    """
    path = Path(path)
    # OSError (missing file...) propagates unchanged; a FIFO or device is refused without blocking
    with open_regular(path, DataFileError, "an IDX file is a file on disk.") as raw:
        if path.suffix != ".gz":
            return _read_idx_stream(raw, path, ndim, max_bytes, os.fstat(raw.fileno()).st_size)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_idx_stream(stream, path, ndim, max_bytes, None)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise DataFileError(f"{path}: not a valid gzip file ({exc})") from None


def _read_up_to(stream: _Stream, count: int) -> bytearray:
    """Up to ``count`` bytes (fewer only at the end of the stream), read in bounded chunks, so
    memory follows the bytes that really arrive, not the count a header promised."""
    data = bytearray()
    while len(data) < count:
        chunk = stream.read(min(count - len(data), 1 << 22))
        if not chunk:
            break
        data += chunk
    return data


def _read_idx_stream(
    stream: _Stream, path: Path, ndim: int | None, max_bytes: int | None, file_size: int | None
) -> NDArray[np.uint8]:
    """``file_size``: the raw file's size (None for a gzip stream, whose size is unknown)."""
    head = _read_up_to(stream, 4)
    if len(head) < 4:
        raise DataFileError(f"{path}: {len(head)} bytes, too short for the 4-byte IDX magic number")
    magic = int.from_bytes(bytes(head), "big")
    expected = f"0x{0x800 | ndim:08X}" if ndim is not None else "0x000008NN"
    # 0x08 is IDX's unsigned-byte type code; the low byte counts the dimensions.
    if magic >> 8 != 0x08 or magic & 0xFF == 0 or (ndim is not None and magic & 0xFF != ndim):
        raise DataFileError(
            f"{path}: bad magic number 0x{magic:08X}, expected {expected} "
            f"(unsigned-byte IDX with {ndim or 'N'} dimensions)"
        )
    header = 4 + 4 * (magic & 0xFF)
    dim_bytes = _read_up_to(stream, header - 4)
    if len(dim_bytes) < header - 4:
        raise DataFileError(
            f"{path}: {4 + len(dim_bytes)} bytes, too short for a {header}-byte IDX header"
        )
    dims = tuple(int(d) for d in np.frombuffer(dim_bytes, ">u4"))
    size = header + math.prod(dims)
    what = (
        f"{dims[0]} labels"
        if len(dims) == 1
        else f"{dims[0]} images of {dims[1]}x{dims[2]}"
        if len(dims) == 3
        else f"shape {dims}"
    )
    if max_bytes is not None and size - header > max_bytes:
        raise DataFileError(
            f"{path}: the header promises {what}, {size - header:,} bytes, more than the limit "
            f"of {max_bytes:,} (max_bytes); the file is corrupt or forged"
        )
    if file_size is not None and file_size != size:  # a raw file: its size is known up front
        hint = "file truncated?" if file_size < size else "trailing bytes?"
        raise DataFileError(f"{path}: expected {size} bytes for {what}, found {file_size} ({hint})")
    data = _read_up_to(stream, size - header)
    if len(data) < size - header:
        found = header + len(data)
        raise DataFileError(
            f"{path}: expected {size} bytes for {what}, found {found} (file truncated?)"
        )
    if stream.read(1):  # one byte past the promise, never the rest of a bomb
        raise DataFileError(
            f"{path}: expected {size} bytes for {what}, found more (trailing bytes?)"
        )
    # over a bytearray, frombuffer gives a writable array, as keras hands them out
    return np.frombuffer(data, np.uint8).reshape(dims)


def load_mnist(
    path: PathLike | None = None,
    *,
    cache_dir: PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    download: bool = True,
) -> tuple[Split, Split]:
    """Load MNIST as keras' ``mnist.load_data()`` does, from local IDX files or a verified download.

    Looks in ``path``, then ``$FASTCNN_DATA``, then the cache (``cache_dir``, default
    ``$XDG_CACHE_HOME/fastcnn/mnist`` or ``~/.cache/fastcnn/mnist``); the first directory holding all
    four files (``FILES``, raw or ``.gz``) wins. Otherwise the missing files are downloaded into the
    cache and their decompressed bytes checked against ``MNIST_SHA256``. Shorter files (fewer items,
    same format) load unchanged.

    Returns
    -------
    (train_x, train_y), (test_x, test_y)
        Images of shape (n, 28, 28) and labels 0..9 of shape (n,), all uint8; n = 60000 and 10000
        for the official files.

    Raises
    ------
    DataNotFoundError
        Files missing everywhere and not downloadable; lists what is missing and where to put it.
    DataFileError
        A corrupt file, or a download whose digest does not match.
    """
    spec = _Spec("MNIST", "FASTCNN_DATA", (), "mnist", MNIST_MIRRORS, MNIST_SHA256)
    return _load(spec, path, cache_dir, mirrors, download)


def load_fashion_mnist(
    path: PathLike | None = None,
    *,
    cache_dir: PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    download: bool = True,
) -> tuple[Split, Split]:
    """Load Fashion-MNIST (same files, shapes and label range as ``load_mnist``).

    Looks in ``path``, then ``$FASTCNN_FASHION_DATA`` (not ``FASTCNN_DATA``, which holds MNIST
    digits), then ``FASHION_MNIST_SYSTEM_DIR``, then the cache (default ``.../fastcnn/fashion-mnist``);
    downloads are checked against ``FASHION_MNIST_SHA256``. See ``load_mnist``.
    """
    spec = _Spec(
        "Fashion-MNIST",
        "FASTCNN_FASHION_DATA",
        (FASHION_MNIST_SYSTEM_DIR,),
        "fashion-mnist",
        FASHION_MNIST_MIRRORS,
        FASHION_MNIST_SHA256,
    )
    return _load(spec, path, cache_dir, mirrors, download)


def scale_images(x: ArrayLike, *, dtype: DTypeLike = np.float32) -> NDArray[np.floating]:
    """The seed's ``x.reshape(len(x), 1, 28, 28).astype("float32") / 255``, bit for bit.

    Parameters
    ----------
    x : ndarray of shape (n, 28, 28) or (n, 784), integer pixels 0..255
    dtype : float32 (the seed's) or float64

    Returns
    -------
    ndarray of shape (n, 1, 28, 28), values in [0, 1]
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(
            f"scale_images expects integer pixels 0..255 (uint8 from load_mnist), got "
            f"dtype {x.dtype}; if the images are already scaled, skip this step"
        )
    if x.ndim < 2 or x.size != len(x) * 784:
        raise ValueError(
            f"scale_images expects n images of 28x28 = 784 pixels, shape (n, 28, 28), "
            f"got shape {x.shape}"
        )
    return x.reshape(len(x), 1, 28, 28).astype(dtype) / 255


def one_hot(
    labels: ArrayLike, num_classes: int = 10, *, dtype: DTypeLike = np.float32
) -> NDArray[np.floating]:
    """The seed's ``to_categorical(y, 10).reshape(len(y), 10, 1)`` (keras' float32 by default).

    Parameters
    ----------
    labels : ndarray of shape (n,), integers 0..num_classes-1

    Returns
    -------
    ndarray of shape (n, num_classes, 1), 1 at each label and 0 elsewhere
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(
            f"one_hot expects a 1-D integer array of labels, got shape {y.shape} "
            f"and dtype {y.dtype}"
        )
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise ValueError(
            f"one_hot: label {y[bad[0]]} at index {bad[0]} is outside "
            f"0..{num_classes - 1} (num_classes={num_classes})"
        )
    out = np.zeros((len(y), num_classes, 1), dtype=dtype)
    out[np.arange(len(y)), y, 0] = 1
    return out


class _Spec(NamedTuple):
    title: str
    env: str
    system_dirs: tuple[str, ...]
    cache_subdir: str
    mirrors: Sequence[str]
    sha256: Mapping[str, str]


def _load(
    spec: _Spec,
    path: PathLike | None,
    cache_dir: PathLike | None,
    mirrors: Sequence[str] | None,
    download: bool,
) -> tuple[Split, Split]:
    if cache_dir is None:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
        cache_dir = base / "fastcnn" / spec.cache_subdir
    cache = Path(cache_dir)
    env = os.environ.get(spec.env)
    # a lone string would be iterated per character; an empty list means "no mirrors", not defaults
    urls = (mirrors,) if isinstance(mirrors, str) else spec.mirrors if mirrors is None else mirrors
    searched = (
        ([(Path(path), "path")] if path is not None else [])
        + ([(Path(env), spec.env)] if env else [])
        + [(Path(d), "system") for d in spec.system_dirs]
        + [(cache, "cache")]
    )
    for directory, _ in searched:
        found = [_existing(directory / name) for name in FILES]
        if all(found):
            break
    else:
        found = [_existing(cache / name) for name in FILES]
        failures: list[str] = []
        for i, name in enumerate(FILES):
            if download and not found[i]:
                found[i] = _download(name, cache, urls, spec.sha256, failures)
                if not found[i]:
                    break  # offline: one file failing on every mirror is enough to know
        if not all(found):
            raise DataNotFoundError(_not_found(spec, searched, failures if download else None))
    paths = [p for p in found if p is not None]  # all four, as checked above
    return _split(paths[0], paths[1]), _split(paths[2], paths[3])


def _existing(stem: Path) -> Path | None:
    # raw first: a user who gunzipped the files wants them read without decompressing again
    return next((p for p in (stem, stem.with_name(stem.name + ".gz")) if p.is_file()), None)


def _split(images_path: Path, labels_path: Path) -> Split:
    images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise DataFileError(
            f"{images_path}: images of {images.shape[1]}x{images.shape[2]}, expected 28x28"
        )
    if len(images) != len(labels):
        raise DataFileError(
            f"{labels_path}: {len(labels)} labels, but {images_path} holds "
            f"{len(images)} images; the two files must come from the same set"
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataFileError(
            f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is outside "
            f"0..9 ({bad.size} such labels)"
        )
    return images, labels


def _download(
    name: str, cache: Path, mirrors: Sequence[str], sha256: Mapping[str, str], failures: list[str]
) -> Path | None:
    """Fetch ``name.gz`` into ``cache`` from the first mirror that answers; None if none does."""
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{name}.gz"
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{name}.gz"
        # Same directory as the target, so os.replace is an atomic rename: an interrupted
        # download leaves a stray temp file at worst (removed below), never a half-written target.
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{name}.gz.", suffix=".part")
        try:
            fault = _fetch(url, fd, name)
            if fault:
                failures.append(f"{url}: {fault}")
                continue
            actual = _gunzip_sha256(Path(tmp), url, IDX_SIZES.get(name))
            expected = sha256.get(name)  # None: no pinned digest, nothing to compare against
            if expected is not None and actual != expected:
                raise DataFileError(
                    f"{target} (from {url}): SHA-256 of the decompressed file is "
                    f"{actual}, expected {expected}; the download was deleted"
                )
            os.replace(tmp, target)
            return target
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            failures.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return None


def _download_limit(name: str) -> int | None:
    """The most bytes a gzip of the official file ``name`` can take: deflate's stored blocks add
    5 bytes per 64 KiB, the gzip header and trailer some more. None for an unknown file."""
    size = IDX_SIZES.get(name)
    return None if size is None else size + size // 1000 + (1 << 16)


def _fetch(url: str, fd: int, name: str) -> str | None:
    """Stream ``url`` into the file ``fd`` (closed here), stopping past ``_download_limit(name)``;
    the fault as a phrase, or None when the whole file arrived."""
    limit = _download_limit(name)
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT) as resp:
        length, received = resp.headers.get("Content-Length"), 0
        too_big = f"more than the {limit} bytes a gzip of {name} can take; download stopped"
        if limit is not None and length is not None and length.isdigit() and int(length) > limit:
            return f"the server announces {length} bytes, {too_big}"
        while chunk := resp.read(1 << 20):
            out.write(chunk)
            received += len(chunk)
            if limit is not None and received > limit:
                return f"received {received} bytes, {too_big}"
    # read(n) returns b"" when the server closes early, without raising
    if length is not None and received != int(length):
        return f"connection closed after {received} of {length} bytes"
    return None


def _gunzip_sha256(path: Path, url: str, limit: int | None = None) -> str:
    """SHA-256 of the decompressed file, reading at most ``limit`` + 1 decompressed bytes."""
    digest, total = hashlib.sha256(), 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                total += len(chunk)
                if limit is not None and total > limit:
                    raise DataFileError(
                        f"{url}: the download decompresses to more than {limit} bytes, the size "
                        f"of the official file; the download was deleted"
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(
            f"{url}: download is not a valid gzip file ({exc}); the download was deleted"
        ) from None
    return digest.hexdigest()


def _not_found(spec: _Spec, searched: list[tuple[Path, str]], failures: list[str] | None) -> str:
    lines = [f"{spec.title} files not found. Searched:"]
    for directory, source in searched:
        missing = [n for n in FILES if not _existing(directory / n)]
        listed = "all four files" if len(missing) == len(FILES) else ", ".join(missing)
        lines.append(f"  {directory} ({source}): missing {listed}")
    if not os.environ.get(spec.env):
        lines.append(f"  ${spec.env}: not set")
    lines.append(
        "Not downloaded (download=False)."
        if failures is None
        else "Download failed: " + ("; ".join(failures) or "no mirrors given.")
    )
    lines.append(
        f"Put the four files ({', '.join(FILES)}; raw or .gz) in one of these directories, "
        f"or set {spec.env} to the directory holding them."
    )
    return "\n".join(lines)
