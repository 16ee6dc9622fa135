"""The inter-process lock that kernels/_jit.py holds around Numba's cache reads and writes."""

import os

import pytest

from fastcnn.kernels import _jit, dense

fcntl = pytest.importorskip("fcntl")


def _try_lock(path, operation):
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_cache_writes_exclude_everyone_and_reads_exclude_writers(tmp_path):
    # Catches a lock that is not held while Numba's index and data files change: two processes
    # could then pair one's index with the other's machine code (a crash, seen here).
    lock = str(tmp_path / "lock")
    seen = {}

    def save():
        seen["save: other reader"] = _try_lock(lock, fcntl.LOCK_SH)
        seen["save: other writer"] = _try_lock(lock, fcntl.LOCK_EX)

    def load():
        seen["load: other reader"] = _try_lock(lock, fcntl.LOCK_SH)
        seen["load: other writer"] = _try_lock(lock, fcntl.LOCK_EX)

    _jit._locked(save, lock, fcntl.LOCK_EX)()
    _jit._locked(load, lock, fcntl.LOCK_SH)()
    assert seen == {
        "save: other reader": False,
        "save: other writer": False,
        "load: other reader": True,
        "load: other writer": False,
    }
    assert _try_lock(lock, fcntl.LOCK_EX)  # released afterwards


def test_unopenable_lock_file_still_runs(tmp_path):
    # Catches a read-only cache directory turning every cache read into an error.
    assert _jit._locked(lambda: 42, str(tmp_path / "missing" / "lock"), fcntl.LOCK_SH)() == 42


def test_kernels_use_the_locked_cache():
    # Catches a kernel decorated in a way that bypasses the lock (or the package-wide stamp).
    cache_file = dense.dense_forward._cache._cache_file
    assert cache_file.save.__qualname__.startswith("_locked")
    assert cache_file.load.__qualname__.startswith("_locked")
    assert cache_file._source_stamp == _jit._STAMP
