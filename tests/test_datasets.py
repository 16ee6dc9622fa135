"""Tests for fastcnn.datasets: IDX reading, lookup order, verified downloads, the real files.

Network tests talk only to servers on 127.0.0.1 started here (or to file:// dirs); an autouse fixture
points the default mirrors at a closed local port, so nothing can reach the internet by accident.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fastcnn import datasets
from fastcnn.datasets import FILES, DataFileError, DataNotFoundError

REAL_FASHION_DIR = Path(datasets.FASHION_MNIST_SYSTEM_DIR)
# SHA-256 of the decompressed files in ../shared/data/mnist, copied from its README.md; the train
# files there are the first 10,000 official items, the t10k files the official test set.
README_SHA256 = {
    "train-images-idx3-ubyte": "2889698e6bc3614913e76901316712919d1998fc2b44512451bfe65bc1e668b1",
    "train-labels-idx1-ubyte": "651e38e2ac0632f5113ec18f1df4977117f953197819034009971a6675a0df78",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


# ---------------------------------------------------------------------------------------------------
# helpers


def closed_port_url() -> str:
    # bind then close: nothing listens there afterwards, so connecting is refused at once
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "FASTCNN_DATA",
        "FASTCNN_FASHION_DATA",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(datasets, "MNIST_MIRRORS", (closed_port_url(),))
    monkeypatch.setattr(datasets, "FASHION_MNIST_MIRRORS", (closed_port_url(),))
    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "no-system-dir"))


def idx_bytes(a: np.ndarray) -> bytes:
    a = np.asarray(a, dtype=np.uint8)
    return bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.tobytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.suffix == ".gz" else data)
    return path


def make_set(
    directory: Path, n_train: int = 6, n_test: int = 4, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write the four files with random content; return the arrays by file name."""
    rng = np.random.default_rng(seed)
    arrays = {
        FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write(directory / (name + ".gz" if gz else name), idx_bytes(a))
    return arrays


def digests(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: hashlib.sha256(idx_bytes(a)).hexdigest() for name, a in arrays.items()}


def check_loaded(loaded, arrays: dict[str, np.ndarray]) -> None:
    (train_x, train_y), (test_x, test_y) = loaded
    for got, name in zip((train_x, train_y, test_x, test_y), FILES, strict=True):
        assert got.dtype == np.uint8, name
        np.testing.assert_array_equal(got, arrays[name], err_msg=name)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class TruncatingHandler(QuietHandler):
    """Announces the full Content-Length, sends half the body, then closes the connection."""

    def do_GET(self) -> None:
        body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])


@contextlib.contextmanager
def serve(directory: Path, handler: type = QuietHandler) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` on 127.0.0.1; yield the base URL and the list of requested paths."""
    requested: list[str] = []

    class Recording(handler):  # type: ignore[misc, valid-type]
        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Recording, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---------------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("shape", [(3, 28, 28), (5,), (2, 3, 4)])
def test_read_idx_roundtrip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    # Catches a wrong header length, byte order of the dims, gzip detection, or a read-only result.
    a = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = write(tmp_path / f"x-idx{len(shape)}-ubyte{suffix}", idx_bytes(a))
    got = datasets.read_idx(path, ndim=len(shape))
    assert got.dtype == np.uint8 and got.shape == shape and got.flags.writeable
    np.testing.assert_array_equal(got, a)
    np.testing.assert_array_equal(datasets.read_idx(str(path)), a)  # ndim=None accepts any


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    # Catches reading a non-IDX or non-uint8 (type code 0x09) file as if it were pixels.
    data = bytearray(idx_bytes(np.zeros((2, 28, 28))))
    data[2] = 0x09
    path = write(tmp_path / "train-images-idx3-ubyte.gz", bytes(data))
    msg = (
        f"{path}: bad magic number 0x00000903, expected 0x00000803 "
        f"(unsigned-byte IDX with 3 dimensions)"
    )
    with pytest.raises(DataFileError, match=re.escape(msg)):
        datasets.read_idx(path, ndim=3)


def test_read_idx_wrong_ndim(tmp_path: Path) -> None:
    # Catches a labels file (1 dim) given where images (3 dims) belong, or a magic of 0 dims.
    path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros(7)))
    with pytest.raises(
        DataFileError, match=re.escape(f"{path}: bad magic number 0x00000801, expected 0x00000803")
    ):
        datasets.read_idx(path, ndim=3)
    path = write(tmp_path / "empty", bytes([0, 0, 8, 0]))
    with pytest.raises(DataFileError, match=re.escape(f"{path}: bad magic number 0x00000800")):
        datasets.read_idx(path)


def test_read_idx_truncated(tmp_path: Path) -> None:
    # Catches a short file being reshaped silently (or crashing numpy) instead of a clear error.
    data = idx_bytes(np.zeros((10000, 28, 28)))
    path = write(tmp_path / "t10k-images-idx3-ubyte.gz", data[:7000016])
    msg = (
        f"{path}: expected 7840016 bytes for 10000 images of 28x28, found 7000016 (file truncated?)"
    )
    with pytest.raises(DataFileError, match=re.escape(msg)):
        datasets.read_idx(path, ndim=3)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    # Catches extra bytes being ignored, e.g. two label files concatenated.
    path = write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(5)) + b"\0\0\0")
    msg = f"{path}: expected 13 bytes for 5 labels, found 16 (trailing bytes?)"
    with pytest.raises(DataFileError, match=re.escape(msg)):
        datasets.read_idx(path, ndim=1)


@pytest.mark.parametrize(
    "data, fault",
    [
        (b"\0\0", "2 bytes, too short for the 4-byte IDX magic number"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "8 bytes, too short for a 16-byte IDX header"),
    ],
)
def test_read_idx_truncated_header(tmp_path: Path, data: bytes, fault: str) -> None:
    # Catches an IndexError / numpy error escaping when the header itself is cut short.
    path = write(tmp_path / "train-images-idx3-ubyte", data)
    with pytest.raises(DataFileError, match=re.escape(f"{path}: {fault}")):
        datasets.read_idx(path)


@pytest.mark.parametrize("content", ["not gzip", "cut gzip stream"])
def test_read_idx_bad_gzip(tmp_path: Path, content: str) -> None:
    # Catches gzip's OSError/EOFError escaping without the file name (or a raw file named .gz).
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    good = gzip.compress(idx_bytes(np.zeros(100)))
    path.write_bytes(idx_bytes(np.zeros(3)) if content == "not gzip" else good[: len(good) // 2])
    with pytest.raises(DataFileError, match=re.escape(f"{path}: not a valid gzip file (")):
        datasets.read_idx(path)


# ---------------------------------------------------------------------------------------------------
# load_mnist: consistency checks across the files


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    # Catches images and labels of different lengths being zipped together silently.
    make_set(tmp_path, n_train=6)
    labels = write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(5)))
    msg = (
        f"{labels}: 5 labels, but {tmp_path / 'train-images-idx3-ubyte.gz'} holds 6 images; "
        f"the two files must come from the same set"
    )
    with pytest.raises(DataFileError, match=re.escape(msg)):
        datasets.load_mnist(tmp_path, download=False)


def test_load_mnist_label_out_of_range(tmp_path: Path) -> None:
    # Catches labels >= 10 reaching one_hot / the loss (e.g. a swapped or corrupted labels file).
    make_set(tmp_path, n_test=4)
    labels = write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes([1, 2, 10, 255]))
    msg = f"{labels}: label 10 at index 2 is outside 0..9 (2 such labels)"
    with pytest.raises(DataFileError, match=re.escape(msg)):
        datasets.load_mnist(tmp_path, download=False)


def test_load_mnist_wrong_image_size(tmp_path: Path) -> None:
    # Catches images that are not 28x28 (another dataset) reaching scale_images' reshape.
    make_set(tmp_path)
    images = write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((6, 27, 27))))
    with pytest.raises(
        DataFileError, match=re.escape(f"{images}: images of 27x27, expected 28x28")
    ):
        datasets.load_mnist(tmp_path, download=False)


# ---------------------------------------------------------------------------------------------------
# load_mnist: where the files are looked for


def test_load_mnist_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches a wrong priority between explicit path, $FASTCNN_DATA and the cache, and an
    # incomplete directory being used instead of skipped.
    explicit = make_set(tmp_path / "explicit", n_train=3, seed=1)
    env = make_set(tmp_path / "env", n_train=4, seed=2, gz=False)
    cache = make_set(tmp_path / "cache", n_train=5, seed=3)
    monkeypatch.setenv("FASTCNN_DATA", str(tmp_path / "env"))
    kw = {"cache_dir": tmp_path / "cache", "download": False}
    check_loaded(datasets.load_mnist(tmp_path / "explicit", **kw), explicit)
    check_loaded(datasets.load_mnist(**kw), env)
    (tmp_path / "explicit" / "t10k-labels-idx1-ubyte.gz").unlink()
    check_loaded(datasets.load_mnist(tmp_path / "explicit", **kw), env)
    monkeypatch.delenv("FASTCNN_DATA")
    check_loaded(datasets.load_mnist(**kw), cache)


def test_load_mnist_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches the default cache ignoring $XDG_CACHE_HOME, or not falling back to ~/.cache.
    xdg = make_set(tmp_path / "xdg" / "fastcnn" / "mnist", seed=4)
    home = make_set(tmp_path / "home" / ".cache" / "fastcnn" / "mnist", seed=5)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    check_loaded(datasets.load_mnist(download=False), xdg)
    monkeypatch.delenv("XDG_CACHE_HOME")
    check_loaded(datasets.load_mnist(download=False), home)


@pytest.mark.parametrize("mirror", ["closed port", "empty file:// dir", "download=False"])
def test_load_mnist_offline_error_lists_missing(tmp_path: Path, mirror: str) -> None:
    # Catches an unhelpful offline error: it must name the missing files, every searched dir,
    # FASTCNN_DATA, and why the download failed.
    (tmp_path / "empty").mkdir()
    make_set(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-images-idx3-ubyte.gz").unlink()
    url = closed_port_url() if mirror == "closed port" else (tmp_path / "empty").as_uri()
    with pytest.raises(DataNotFoundError) as info:
        datasets.load_mnist(
            tmp_path / "partial",
            cache_dir=tmp_path / "cache",
            mirrors=[url],
            download=mirror != "download=False",
        )
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "MNIST files not found. Searched:" in msg
    assert f"{tmp_path / 'partial'} (path): missing t10k-images-idx3-ubyte\n" in msg
    assert f"{tmp_path / 'cache'} (cache): missing all four files" in msg
    assert "$FASTCNN_DATA: not set" in msg
    assert "or set FASTCNN_DATA to the directory holding them" in msg
    if mirror == "download=False":
        assert "Not downloaded (download=False)." in msg
    else:
        assert f"Download failed: {url.rstrip('/')}/train-images-idx3-ubyte.gz: " in msg
    assert not [p for p in (tmp_path / "cache").glob("*") if p.is_file()]


# ---------------------------------------------------------------------------------------------------
# load_mnist: downloads from a local server


def test_load_mnist_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches a broken download: wrong URL, no fallback to the next mirror, re-downloading files
    # already cached, leftover temp files, or a cache that the next call cannot read.
    arrays = make_set(tmp_path / "mirror")
    monkeypatch.setattr(datasets, "MNIST_SHA256", digests(arrays))
    cache = tmp_path / "cache"
    for name in FILES[:2]:  # a previous run got the training files already
        write(cache / f"{name}.gz", idx_bytes(arrays[name]))
    with serve(tmp_path / "mirror") as (url, requested):
        loaded = datasets.load_mnist(cache_dir=cache, mirrors=[closed_port_url(), url])
    check_loaded(loaded, arrays)
    assert requested == [f"/{name}.gz" for name in FILES[2:]]
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    check_loaded(datasets.load_mnist(cache_dir=cache, download=False), arrays)


def test_load_mnist_download_digest_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Catches a tampered or wrong download being kept (in the cache or as a temp file).
    arrays = make_set(tmp_path / "mirror")
    pinned = digests(arrays)
    actual = pinned[FILES[0]]
    pinned[FILES[0]] = "0" * 64
    monkeypatch.setattr(datasets, "MNIST_SHA256", pinned)
    cache = tmp_path / "cache"
    with serve(tmp_path / "mirror") as (url, _):
        msg = (
            f"{cache / 'train-images-idx3-ubyte.gz'} (from {url}train-images-idx3-ubyte.gz): "
            f"SHA-256 of the decompressed file is {actual}, expected {'0' * 64}; "
            f"the download was deleted"
        )
        with pytest.raises(DataFileError, match=re.escape(msg)):
            datasets.load_mnist(cache_dir=cache, mirrors=[url])
    assert list(cache.iterdir()) == []


def test_load_mnist_download_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches a connection closed mid-file being taken for a complete (short) download.
    arrays = make_set(tmp_path / "mirror")
    monkeypatch.setattr(datasets, "MNIST_SHA256", digests(arrays))
    size = (tmp_path / "mirror" / "train-images-idx3-ubyte.gz").stat().st_size
    cache = tmp_path / "cache"
    with (
        serve(tmp_path / "mirror", TruncatingHandler) as (url, _),
        pytest.raises(
            DataNotFoundError,
            match=re.escape(
                f"{url}train-images-idx3-ubyte.gz: connection closed after {size // 2} of {size} "
                "bytes"
            ),
        ),
    ):
        datasets.load_mnist(cache_dir=cache, mirrors=[url])
    assert list(cache.iterdir()) == []


def test_load_mnist_download_not_gzip(tmp_path: Path) -> None:
    # Catches a mirror's error page (HTTP 200, not gzip) being cached as data.
    (tmp_path / "mirror").mkdir()
    for name in FILES:
        (tmp_path / "mirror" / f"{name}.gz").write_text("<html>moved</html>")
    cache = tmp_path / "cache"
    with (
        serve(tmp_path / "mirror") as (url, _),
        pytest.raises(
            DataFileError,
            match=re.escape(
                f"{url}train-images-idx3-ubyte.gz: download is not a valid gzip file ("
            ),
        ),
    ):
        datasets.load_mnist(cache_dir=cache, mirrors=[url])
    assert list(cache.iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# real data (../shared/data/mnist or $FASTCNN_TEST_MNIST)


def test_pinned_test_digests_match_readme() -> None:
    # Catches a typo in the pinned official t10k digests (the shared t10k files are the official ones).
    for name in FILES[2:]:
        assert datasets.MNIST_SHA256[name] == README_SHA256[name], name
    for name in FILES[:2]:  # the shared train files are shorter, so their digests must differ
        assert datasets.MNIST_SHA256[name] != README_SHA256[name], name


@pytest.mark.mnist
def test_real_files_sha256_match_readme(mnist_dir: Path) -> None:
    # Catches a damaged or substituted copy of the shared data, which would void the other real tests.
    real_dir = mnist_dir  # the conftest fixture: skips, or fails under FASTCNN_REQUIRE_DATA=1
    for name in FILES:
        path = real_dir / name if (real_dir / name).is_file() else real_dir / f"{name}.gz"
        data = path.read_bytes()
        data = gzip.decompress(data) if path.suffix == ".gz" else data
        assert hashlib.sha256(data).hexdigest() == README_SHA256[name], path


@pytest.mark.mnist
def test_load_mnist_real_shapes(mnist_dir: Path) -> None:
    # Catches a loader that only works on synthetic files, or breaks on the 10,000-item train files.
    real_dir = mnist_dir  # the conftest fixture: skips, or fails under FASTCNN_REQUIRE_DATA=1
    (train_x, train_y), (test_x, test_y) = datasets.load_mnist(real_dir, download=False)
    assert train_x.shape == (10000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y.shape == (10000,) and test_y.shape == (10000,)
    for a in (train_x, train_y, test_x, test_y):
        assert a.dtype == np.uint8
    assert set(np.unique(train_y)) == set(range(10)) == set(np.unique(test_y))
    assert train_x.max() == 255 and train_x.min() == 0
    assert train_y[:5].tolist() == [5, 0, 4, 1, 9]  # the official training set starts 5 0 4 1 9


@pytest.mark.mnist
def test_load_mnist_download_real_t10k(tmp_path: Path, mnist_dir: Path) -> None:
    # Catches the pinned official digests or the decompress-then-hash step being wrong: the shared
    # t10k files are recompressed official files, so only the decompressed bytes match the pins.
    real_dir = mnist_dir  # the conftest fixture: skips, or fails under FASTCNN_REQUIRE_DATA=1
    cache, mirror = tmp_path / "cache", tmp_path / "mirror"
    for name in FILES:  # the train files go straight to the cache, the t10k files to the mirror
        raw = real_dir / name
        data = (
            raw.read_bytes()
            if raw.is_file()
            else gzip.decompress((real_dir / f"{name}.gz").read_bytes())
        )
        write((cache if name.startswith("train") else mirror) / f"{name}.gz", data)
    (_, _), (test_x, test_y) = datasets.load_mnist(cache_dir=cache, mirrors=[mirror.as_uri()])
    assert test_x.shape == (10000, 28, 28) and test_y.shape == (10000,)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in FILES)


def test_load_fashion_mnist_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches Fashion-MNIST reading MNIST digits from $FASTCNN_DATA or the MNIST cache, and the
    # system directory or $FASTCNN_FASHION_DATA being ignored.
    make_set(tmp_path / "digits", seed=6)
    make_set(tmp_path / "xdg-cache" / "fastcnn" / "mnist", seed=7)
    monkeypatch.setenv("FASTCNN_DATA", str(tmp_path / "digits"))
    with pytest.raises(DataNotFoundError, match="Fashion-MNIST files not found") as info:
        datasets.load_fashion_mnist(download=False)
    assert f"{tmp_path / 'xdg-cache' / 'fastcnn' / 'fashion-mnist'} (cache)" in str(info.value)
    assert "$FASTCNN_FASHION_DATA: not set" in str(info.value)
    system = make_set(Path(datasets.FASHION_MNIST_SYSTEM_DIR), seed=8)
    check_loaded(datasets.load_fashion_mnist(download=False), system)
    env = make_set(tmp_path / "fashion", seed=9)
    monkeypatch.setenv("FASTCNN_FASHION_DATA", str(tmp_path / "fashion"))
    check_loaded(datasets.load_fashion_mnist(download=False), env)


def test_load_fashion_mnist_real() -> None:
    # Catches the loader failing on full-size 60,000-image files (Debian's dataset-fashion-mnist).
    if not all((REAL_FASHION_DIR / f"{name}.gz").is_file() for name in FILES):
        pytest.skip(f"{REAL_FASHION_DIR} not installed (apt-get install dataset-fashion-mnist)")
    (train_x, train_y), (test_x, test_y) = datasets.load_fashion_mnist(
        REAL_FASHION_DIR, download=False
    )
    assert train_x.shape == (60000, 28, 28) and train_y.shape == (60000,)
    assert test_x.shape == (10000, 28, 28) and test_y.shape == (10000,)
    assert set(np.unique(train_y)) == set(range(10))
    digest = hashlib.sha256(idx_bytes(test_y)).hexdigest()
    assert digest == datasets.FASHION_MNIST_SHA256["t10k-labels-idx1-ubyte"]


# ---------------------------------------------------------------------------------------------------
# preprocessing: the seed notebook's expressions


def seed_to_categorical(y: np.ndarray, num_classes: int) -> np.ndarray:
    """keras.utils.to_categorical as the seed calls it (keras' own code, dtype float32)."""
    y = np.array(y, dtype="int64").reshape(-1)
    categorical = np.zeros((y.shape[0], num_classes), dtype="float32")
    categorical[np.arange(y.shape[0]), y] = 1
    return categorical


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scale_images_matches_seed(dtype: str) -> None:
    # Catches any change to the seed's numbers: a multiply by 1/255, a float64 default, a wrong shape.
    x = np.arange(7 * 28 * 28, dtype=np.int64).reshape(7, 28, 28) % 256
    x = x.astype(np.uint8)
    expected = x.reshape(len(x), 1, 28, 28).astype(dtype) / 255
    got = datasets.scale_images(x) if dtype == "float32" else datasets.scale_images(x, dtype=dtype)
    assert got.dtype == expected.dtype == np.dtype(dtype)
    assert got.shape == (7, 1, 28, 28)
    np.testing.assert_array_equal(got, expected, strict=True)


def test_one_hot_matches_seed() -> None:
    # Catches a different layout or dtype than the seed's to_categorical(y, 10).reshape(len(y), 10, 1).
    y = np.array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9], dtype=np.uint8)
    expected = seed_to_categorical(y, 10).reshape(len(y), 10, 1)
    np.testing.assert_array_equal(datasets.one_hot(y), expected, strict=True)
    got64 = datasets.one_hot(y, dtype=np.float64)
    assert got64.dtype == np.float64 and np.array_equal(got64, expected)


def test_preprocessing_rejects_bad_input() -> None:
    # Catches already-scaled images being divided by 255 again, and labels silently wrapping or
    # indexing out of range.
    with pytest.raises(
        TypeError,
        match=re.escape(
            "scale_images expects integer pixels 0..255 (uint8 from load_mnist), got dtype float32"
        ),
    ):
        datasets.scale_images(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "scale_images expects n images of 28x28 = 784 pixels, shape (n, 28, 28), "
            "got shape (2, 27, 27)"
        ),
    ):
        datasets.scale_images(np.zeros((2, 27, 27), np.uint8))
    with pytest.raises(
        ValueError, match=re.escape("one_hot: label -1 at index 1 is outside 0..9 (num_classes=10)")
    ):
        datasets.one_hot(np.array([3, -1, 12]))
    with pytest.raises(
        TypeError,
        match=re.escape(
            "one_hot expects a 1-D integer array of labels, got shape (2,) and dtype float64"
        ),
    ):
        datasets.one_hot(np.array([1.0, 2.0]))
