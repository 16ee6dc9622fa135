"""The kernels' on-disk cache (kernels/_jit.py): no crash without a writable cache, no stale
machine code after an edit, and a warm cache that is actually used.

The subprocess tests run a copy of the package laid out as an installed one (site/fastcnn/...,
site/fastcnn/kernels/...), with their own NUMBA_CACHE_DIR; nothing here reads or writes the
repository's caches.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numba
import numpy as np
import pytest
from numba.core.caching import NullCache

from fastcnn.kernels import _jit

from .support import TWO_TERM

ROOT = Path(__file__).resolve().parents[1]
NO_JIT = pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") != "0",
    reason="NUMBA_DISABLE_JIT is set: nothing is compiled or cached",
)


def _add_one(x, out):
    for i in range(x.size):
        out[i] = x[i] + 1.0


# --------------------------------------------------------------------------------------------------
# in process: the decorator's fallbacks


@NO_JIT
@pytest.mark.parametrize("options", [{}, {"reassociate": True}], ids=["plain", "reassociate"])
def test_jit_without_cache_locator_still_compiles(monkeypatch, options):
    # Catches `import fastcnn` failing where numba.njit(cache=True) finds no cache directory.
    real = numba.njit

    def njit(*args, **kwargs):
        if kwargs.get("cache"):

            def refuse(function):
                raise RuntimeError(
                    f"cannot cache function {function.__name__!r}: no locator "
                    f"available for file '/read-only/site-packages/x.py'"
                )

            return refuse
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    kernel = _jit.jit(_add_one, **options)
    out = np.empty(3)
    kernel(np.arange(3.0), out)
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    assert isinstance(kernel._cache, NullCache)


@NO_JIT
def test_jit_unknown_cache_layout_disables_cache(monkeypatch):
    # Catches jit keeping a cache it cannot stamp (a future Numba without `_source_stamp`).
    real = numba.njit

    def njit(*args, **kwargs):
        decorate = real(*args, **kwargs)
        if not kwargs.get("cache"):
            return decorate

        def unstampable(function):
            dispatcher = decorate(function)
            del dispatcher._cache._cache_file._source_stamp
            return dispatcher

        return unstampable

    monkeypatch.setattr(numba, "njit", njit)
    kernel = _jit.jit(_add_one)
    assert isinstance(kernel._cache, NullCache)
    out = np.empty(2)
    kernel(np.zeros(2), out)
    np.testing.assert_array_equal(out, [1.0, 1.0])


@NO_JIT
def test_jit_stamps_cache_with_package_digest():
    # Catches a kernel cache keyed only on its own file, Numba's default.
    kernel = _jit.jit(_add_one)
    stamp = kernel._cache._cache_file._source_stamp
    assert stamp == _jit._STAMP
    assert stamp[1] == _jit._package_digest()  # content of kernels/*.py, not an import-time fluke


@pytest.mark.parametrize(
    "name, value",
    [("BOUNDSCHECK", 1), ("OPT", 0), ("ENABLE_PROFILING", 1), ("DEBUGINFO_DEFAULT", 1)],
)
def test_cache_stamp_follows_numba_codegen_settings(monkeypatch, name, value):
    # Catches machine code compiled under a debugging setting (bounds checks, no optimisation,
    # profiling) being loaded from the cache by later runs without it: Numba's own index does not
    # tell them apart, so the package stamp must.
    before = _jit._package_digest()
    monkeypatch.setattr(_jit.numba_config, name, value)
    assert _jit._package_digest() != before
    monkeypatch.undo()
    assert _jit._package_digest() == before


# --------------------------------------------------------------------------------------------------
# subprocesses on a copy of the package


def copy_package(site):
    """fastcnn/ and kernels/ as pip installs them: site/fastcnn and site/fastcnn/kernels."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    shutil.copytree(ROOT / "fastcnn", site / "fastcnn", ignore=ignore)
    shutil.copytree(ROOT / "kernels", site / "fastcnn" / "kernels", ignore=ignore)
    return site / "fastcnn" / "kernels"


def clean_env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NUMBA_", "PYTHON", "COV_", "COVERAGE"))
    }
    # No stale .pyc either: Python trusts mtime + size, and an edit can keep both.
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_json(args, cwd, env, **kwargs):
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs
    )
    assert result.returncode == 0, f"subprocess failed ({result.returncode}):\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


CACHED_SCRIPT = """\
import json, sys
import numpy as np
from fastcnn.kernels import _jit, dense

w, x, b, out = np.ones((2, 3)), np.ones((3, 1)), np.ones((2, 1)), np.empty((2, 1))
before = _jit.is_cached(dense.dense_forward, "float64")
if sys.argv[1] == "call":
    dense.dense_forward(w, x, b, out)
print(json.dumps({"before": before, "float32": _jit.is_cached(dense.dense_forward, "float32")}))
"""


@NO_JIT
def test_is_cached_tells_a_cold_cache_from_a_warm_one(tmp_path):
    # Catches the command line's "compiling kernels (first run only)" line being printed on every
    # run, or never: is_cached must be False on an empty cache, True once a process has compiled
    # and saved that signature, and stay False for a signature that was never compiled.
    copy_package(tmp_path / "site")
    env = clean_env(NUMBA_CACHE_DIR=tmp_path / "cache", PYTHONPATH=tmp_path / "site")
    runs = [
        run_json([sys.executable, "-c", CACHED_SCRIPT, step], cwd=tmp_path, env=env)
        for step in ("call", "look")
    ]
    assert runs == [{"before": False, "float32": False}, {"before": True, "float32": False}]


PROBE = '''\
"""Test-only kernel whose machine code includes another module's kernel."""

from ._jit import jit
from .dense import dense_forward


@jit
def probe(weights, x, biases, out):
    dense_forward(weights, x, biases, out)
'''

STALE_SCRIPT = """\
import json
import numpy as np
import fastcnn
from fastcnn.kernels import dense, probe

w, x, b = np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]), np.array([[0.5]])
direct, via_probe = np.empty((1, 1)), np.empty((1, 1))
# The probe first: once this process has compiled dense_forward itself, a stale cached probe may
# link against the fresh symbol and hide its staleness.
probe.probe(w, x, b, via_probe)
dense.dense_forward(w, x, b, direct)

def stats(kernel):
    s = kernel.stats
    return {"hits": sum(s.cache_hits.values()), "misses": sum(s.cache_misses.values()),
            "path": s.cache_path}

print(json.dumps({"file": fastcnn.__file__, "direct": direct[0, 0], "probe": via_probe[0, 0],
                  "dense": stats(dense.dense_forward), "probe_stats": stats(probe.probe)}))
"""


@NO_JIT
@pytest.mark.slow
def test_no_stale_cache_after_editing_a_callee(tmp_path):
    # Catches stale machine code of another module's kernel after it is edited, and an unused cache.
    # Numba re-validates a cached function only against its own file, so a caller would keep the
    # callee's old code after an upgrade or a developer's edit.
    kernels = copy_package(tmp_path / "site")
    (kernels / "probe.py").write_text(PROBE)
    cache = tmp_path / "numba-cache"
    env = clean_env(PYTHONPATH=tmp_path / "site", NUMBA_CACHE_DIR=cache)

    def run():
        return run_json([sys.executable, "-c", STALE_SCRIPT], cwd=tmp_path, env=env)

    first = run()
    assert first["file"].startswith(str(tmp_path / "site" / "fastcnn")), first["file"]
    assert first["direct"] == first["probe"] == 1 * 3 + 2 * 4 + 0.5
    for key in ("dense", "probe_stats"):
        assert first[key]["misses"] >= 1 and first[key]["path"].startswith(str(cache)), first[key]

    warm = run()  # unchanged sources: everything comes from the cache
    assert warm["probe"] == first["probe"]
    for key in ("dense", "probe_stats"):
        assert warm[key]["hits"] >= 1 and warm[key]["misses"] == 0, (key, warm[key])

    dense = kernels / "dense.py"
    source = dense.read_text()
    old, new = "out[o, 0] = acc + biases[o, 0]", "out[o, 0] = acc + 2 * biases[o, 0]"
    assert source.count(old) >= 1, f"update this test: {old!r} is no longer in kernels/dense.py"
    dense.write_text(source.replace(old, new))

    edited = run()
    assert edited["direct"] == 1 * 3 + 2 * 4 + 2 * 0.5, "dense_forward itself was not recompiled"
    assert edited["probe"] == edited["direct"], (
        "the probe kernel ran its stale cached copy of dense_forward"
    )
    assert edited["probe_stats"]["misses"] >= 1


READ_ONLY_SCRIPT = """\
import json
import numpy as np
import fastcnn
from fastcnn import Linear
from fastcnn.kernels import dense

layer = Linear(2, 1, rng=0)
x = np.array([[3.0], [4.0]])
out = layer.forward_prop(x)
print(json.dumps({"file": fastcnn.__file__, "cache": type(dense.dense_forward._cache).__name__,
                  "out": out.tolist(), "expected": (layer.weights @ x + layer.biases).tolist()}))
"""
NOBODY = 65534


def _become_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _nobody_can_run_python():
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import numba"],
            cwd="/",
            preexec_fn=_become_nobody,
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _private_read_only_mount_works(directory):
    if shutil.which("unshare") is None:
        return False
    script = 'mount --bind -o ro "$0" "$0" && ! touch "$0/probe" 2>/dev/null'
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--", "sh", "-c", script, str(directory)],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _set_tree_mode(root, writable):
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = 0o755 if path.is_dir() else 0o644
        path.chmod(mode if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@NO_JIT
@pytest.mark.slow
def test_import_and_run_from_read_only_install():
    # Catches fastcnn crashing when no cache directory is writable (system or container install).
    # Numba raises "no locator available" for cache=True there when NUMBA_CACHE_DIR is unset.
    root = Path(tempfile.mkdtemp(prefix="fastcnn-read-only-"))  # not under pytest's 0700 tmp
    try:
        site, home = root / "site", root / "home"
        copy_package(site)
        home.mkdir()
        env = clean_env(PYTHONPATH=site, HOME=home, XDG_CACHE_HOME=home / ".cache")
        args, preexec = [sys.executable, "-c", READ_ONLY_SCRIPT], None
        if os.geteuid() != 0:
            _set_tree_mode(root, writable=False)
        else:  # root writes anywhere: run as nobody, or inside a private read-only mount
            _set_tree_mode(root, writable=True)  # readable (and only readable) for nobody
            if _nobody_can_run_python():
                preexec = _become_nobody
            elif _private_read_only_mount_works(root):
                args = [
                    "unshare",
                    "--mount",
                    "--",
                    "sh",
                    "-c",
                    'mount --bind -o ro "$0" "$0" && exec "$@"',
                    str(root),
                    *args,
                ]
            else:
                pytest.skip(
                    f"running as root, and neither can user nobody run {sys.executable} "
                    f"nor can `unshare --mount` make a private read-only mount"
                )
        data = run_json(args, cwd=root, env=env, preexec_fn=preexec)
        assert data["file"].startswith(str(site)), data["file"]
        assert data["cache"] == "NullCache", "the cache was writable after all: test is vacuous"
        np.testing.assert_allclose(data["out"], data["expected"], **TWO_TERM)
        assert not list(root.rglob("*.nbi")), "a cache index was written into the read-only tree"
    finally:
        _set_tree_mode(root, writable=True)
        shutil.rmtree(root)


# The repository goes last on sys.path, for tests.support only: `fastcnn` still resolves to the
# copy in site/ (PYTHONPATH, first), so tests.support builds its networks from that copy.
CACHED_THEN_NEW = f"""\
import json, sys
sys.path.append({str(ROOT)!r})
import numpy as np
import fastcnn as F
from fastcnn.models import mnist_cnn
from tests.support import XOR_X, XOR_Y, xor_network

assert not F.__file__.startswith({str(ROOT)!r}), F.__file__  # the copy, not the repository

def mnist_like():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 28, 28)); y = np.eye(10)[rng.integers(0, 10, 4)].reshape(4, 10, 1)
    net = mnist_cnn(rng=0)
    return float(net.train(x, y, F.mse, F.d_mse, 1, 0.1, verbose=False)[0])

def xor():
    net = xor_network(rng=1)
    return float(net.train(XOR_X, XOR_Y, F.mse, F.d_mse, 20, 0.1, verbose=False)[-1])

print(json.dumps([{{"mnist": mnist_like, "xor": xor}}[name]() for name in sys.argv[1:]]))
"""


@NO_JIT
@pytest.mark.slow
def test_cache_entry_written_after_a_cached_load_is_sound(tmp_path):
    # Catches numba#10128 coming back: with a parallel kernel anywhere in the cached training
    # loop's call graph, a process that loaded one network's loop from the cache and then compiled
    # another's left an entry that crashed (SIGSEGV) the next process to load it.
    site = tmp_path / "site"
    copy_package(site)
    script = tmp_path / "train.py"
    script.write_text(CACHED_THEN_NEW)
    env = clean_env(NUMBA_CACHE_DIR=tmp_path / "cache", PYTHONPATH=site)
    [mnist] = run_json([sys.executable, str(script), "mnist"], tmp_path, env)
    assert run_json([sys.executable, str(script), "mnist", "xor"], tmp_path, env)[0] == mnist
    [xor] = run_json([sys.executable, str(script), "xor"], tmp_path, env)
    assert np.isfinite(xor)
