"""The one decorator every kernel wears: ``@jit`` is ``numba.njit(cache=True)``, made safe.

Three things go wrong with a bare ``njit(cache=True)`` in an installed library:

* Numba raises ``RuntimeError`` at decoration time when it finds no writable cache directory (a
  read-only installation with no ``NUMBA_CACHE_DIR``), so ``import fastcnn`` would fail. We then
  compile without a cache instead.
* Numba invalidates a cached function only when *its own* source file changes. A kernel that calls a
  kernel from another module would keep running the callee's old machine code after the callee is
  edited. We stamp every kernel's cache with a digest of all of ``kernels/``, so any edit there
  invalidates every kernel's cache.
* Numba's cache is one index file per function mapping signatures to numbered data files. Two
  processes compiling different signatures of one function at once can each pick the same number,
  and the index of one can end up naming the other's machine code: a float32 call then runs float64
  code and crashes (seen here, with tests running in parallel). We hold a lock file around every
  cache read (shared) and write (exclusive), so an index and its data files change together.

And one thing Numba does not do: use a cache it can read but not write. Its locator for
``NUMBA_CACHE_DIR`` checks that it can create a file there, and otherwise passes on to another
locator (``__pycache__``, ``~/.cache``; empty, so every process recompiles, ~23 s) or none. A
read-only but warm ``NUMBA_CACHE_DIR`` (a container image, a shared install) is used here for
loading: :class:`_ReadOnlyCache` finds the same files and never writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

import numba
from numba.core import config as numba_config
from numba.core.caching import CompileResultCacheImpl, FunctionCache, UserProvidedCacheLocator

fcntl: Any
try:
    import fcntl
except ImportError:  # Windows: no flock, and the race above stays possible there
    fcntl = None

_HERE = Path(__file__).resolve().parent


# Numba settings that change the machine code a kernel compiles to but that Numba's cache index
# does not key on (it keys on the CPU only). Without them in the stamp, code compiled once under
# NUMBA_BOUNDSCHECK=1, NUMBA_OPT=0 or NUMBA_ENABLE_PROFILING=1 keeps being loaded after the setting
# is gone (seen here: one profiling run left float32 training 40 % slower in every later process).
CODEGEN_SETTINGS = (
    "OPT",
    "LOOP_VECTORIZE",
    "SLP_VECTORIZE",
    "ENABLE_AVX",
    "BOUNDSCHECK",
    "DEBUGINFO_DEFAULT",
    "ENABLE_PROFILING",
)


def _package_digest() -> str:
    """Digest of every kernel source and of Numba's code-generation settings."""
    sha = hashlib.sha256()
    for source in sorted(_HERE.glob("*.py")):
        sha.update(source.name.encode())
        sha.update(source.read_bytes())
    settings = [(name, str(getattr(numba_config, name, None))) for name in CODEGEN_SETTINGS]
    sha.update(repr(settings).encode())
    return sha.hexdigest()


_STAMP = ("fastcnn.kernels", _package_digest())


# The only fast-math flags any kernel may use. "reassoc", only on a sum whose order does not matter
# to us: it lets LLVM split a dot product across vector lanes (several times faster) at the price of a
# different but equally accurate rounding. "contract", only where a result is not meant to match the
# seed's roundings bit for bit (the exp polynomial, already within 1 ulp of np.exp, not equal to
# it): it fuses a * b + c into one FMA, which rounds once instead of twice. Never "nnan"/"ninf":
# those would let LLVM assume away the NaN that reveals a diverged run. tests/test_layout.py
# rejects any other `fastmath=` in kernels/.
REASSOCIATE = {"reassoc"}
CONTRACT = {"contract"}


def jit(
    function=None, *, reassociate=False, contract=False, parallel=False, cache=True, inline=False
):
    """``numba.njit(cache=True)`` with a package-wide cache stamp; no cache where none can be written.

    ``reassociate=True`` adds the :data:`REASSOCIATE` flag, for kernels whose hot loop is a sum;
    ``contract=True`` the :data:`CONTRACT` flag, for arithmetic that may round as FMA does;
    ``parallel=True`` lets ``numba.prange`` loops run on ``numba.get_num_threads()`` threads.
    ``cache=False`` compiles in every process; ``inline=True`` inlines the function into its
    callers (``numba.njit(inline="always")``), which then compile it as part of themselves. Parallel kernels, and any kernel that calls one, are
    never cached: a process that loads such a function from the cache and then compiles another
    signature of it leaves a cache entry that crashes the next process to load it (numba#10128,
    reproduced here; pynndescent stopped caching its parallel functions for the same reason).
    """
    if function is None:
        return lambda f: jit(
            f,
            reassociate=reassociate,
            contract=contract,
            parallel=parallel,
            cache=cache,
            inline=inline,
        )
    # NumPy's error model: 1 / 0 is inf, as in the reference path, instead of Python's
    # ZeroDivisionError, whose check in every division also stops LLVM from vectorising a loop.
    options: dict[str, Any] = {"error_model": "numpy"}
    fastmath = (REASSOCIATE if reassociate else set()) | (CONTRACT if contract else set())
    if fastmath:
        options["fastmath"] = fastmath
    if parallel:
        options["parallel"] = True
    if inline:
        # Inlined into each caller at Numba-IR level and never compiled on its own: a helper
        # that is its own function makes LLVM optimise everything it calls once more.
        options["inline"] = "always"
    if parallel or not cache or inline:
        return numba.njit(**options)(function)
    read_only = _read_only_cache(function)
    if read_only is not None:
        dispatcher = numba.njit(**options)(function)
        dispatcher._cache = read_only  # what enable_caching does, read-only
    else:
        try:
            dispatcher = numba.njit(cache=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**options)(function)
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_source_stamp"):
        # A Numba whose cache layout we don't know: stale code is worse than a slow first call.
        return numba.njit(**options)(function)
    cache_file._source_stamp = _STAMP
    if fcntl is not None:
        lock_path = os.path.join(cache_file._cache_path, "fastcnn-kernels.lock")
        cache_file.load = _locked(cache_file.load, lock_path, fcntl.LOCK_SH)
        cache_file.save = _locked(cache_file.save, lock_path, fcntl.LOCK_EX)
    return dispatcher


def is_cached(dispatcher, *signature_texts: str) -> bool:
    """Whether ``dispatcher`` would load machine code from its on-disk cache for a signature whose
    text contains every one of ``signature_texts`` (say ``"float32"``) instead of compiling it: a
    current entry (right package stamp) exists. False for a kernel with no cache. Lets the command
    line say that a first run is compiling before the seconds it takes, instead of seeming to
    hang."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is None or not hasattr(cache_file, "_load_index"):
        return False
    try:
        index = cache_file._load_index()  # {} when missing or stamped by other sources
    except Exception:  # a damaged or foreign index: the call would compile too
        return False
    return any(all(text in str(key[0]) for text in signature_texts) for key in index)


def _locked(method, lock_path, operation):
    """``method`` run while holding ``flock(lock_path, operation)``, or unlocked when the lock file
    cannot be opened (a read-only cache, which nobody can be writing either)."""

    def call(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError:
                return method(*args, **kwargs)
            stack.callback(os.close, fd)  # closing the descriptor releases the lock
            fcntl.flock(fd, operation)
            return method(*args, **kwargs)

    return call


def _read_only_cache(function) -> _ReadOnlyCache | None:
    """A cache that loads ``function`` from ``NUMBA_CACHE_DIR`` when Numba refuses that directory
    because it cannot write there (its locator tries to create a file in it) but the directory
    holds an index for ``function``; None otherwise, for Numba's usual choice (a kernel the
    read-only cache lacks is then cached in a writable place, not recompiled in every process)."""
    if not getattr(numba_config, "CACHE_DIR", ""):
        return None
    try:
        source = inspect.getfile(function)
    except TypeError:
        return None
    if UserProvidedCacheLocator.from_function(function, source) is not None:
        return None  # writable: Numba's usual cache
    if _ReadOnlyLocator.from_function(function, source) is None:
        return None
    try:
        cache = _ReadOnlyCache(function)
    except RuntimeError:  # the directory went away meanwhile
        return None
    return cache if os.path.isfile(cache._cache_file._index_path) else None


class _ReadOnlyLocator(UserProvidedCacheLocator):
    """Numba's ``NUMBA_CACHE_DIR`` locator (same directory, same file names, same source stamp)
    for a cache directory that exists and can be read but not written."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if not getattr(numba_config, "CACHE_DIR", "") or not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file)
        path = self.get_cache_path()
        return self if os.path.isdir(path) and os.access(path, os.R_OK | os.X_OK) else None

    def ensure_cache_path(self):
        raise PermissionError(f"read-only Numba cache {self.get_cache_path()}")


class _ReadOnlyCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_ReadOnlyLocator]  # noqa: RUF012 - Numba's own attribute, not ours


class _ReadOnlyCache(FunctionCache):
    """Loads compiled kernels from a read-only cache; a kernel missing there is compiled in
    memory and not saved."""

    _impl_class = _ReadOnlyCacheImpl

    def save_overload(self, sig, data):
        pass
