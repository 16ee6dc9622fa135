"""The registry: the checked-in loops are what the registry generates, and a new kind is one module
plus one registration.

This module is that module for two kinds fastcnn does not have: an activation (``softsign``, with
its two kernels) and a parameter-free layer (``Flip``, a column vector reversed), each registered
by :func:`register` from here, outside the package. Nothing in ``fastcnn/`` or ``kernels/`` knows
them (a test checks the sources), and both train on the compiled per-sample and mini-batch loops
with the per-layer path's numbers.
"""

import re
from pathlib import Path

import numba
import numpy as np
import pytest

from fastcnn import Activation, Layer, Linear, Network, _codegen, _compiled, d_mse, mse, registry
from fastcnn.kernels import _loops
from fastcnn.layers.base import Compiled

from .support import tolerance

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------------
# the new kinds: everything each needs, in this one module


def softsign(x):
    """``x / (1 + |x|)``."""
    return x / (1 + np.abs(x))


def d_softsign(x):
    return 1 / (1 + np.abs(x)) ** 2


@numba.njit
def softsign_kernel(x, out):
    xf, of = x.reshape(-1), out.reshape(-1)
    for i in range(xf.size):
        of[i] = xf[i] / (1 + abs(xf[i]))


@numba.njit
def softsign_backward_kernel(x, y, d_output, out):
    xf, gf, of = x.reshape(-1), d_output.reshape(-1), out.reshape(-1)
    for i in range(xf.size):
        a = 1 + abs(xf[i])
        of[i] = gf[i] * (1 / a**2)


class Flip(Layer):
    """A column vector in reverse order: ``y[i] = x[n - 1 - i]``; no parameters."""

    CONFIG_FIELDS = ("size",)

    def __init__(self, size):
        super().__init__()
        self.size = size
        self.input_shape = self.output_shape = (size, 1)

    def __repr__(self):
        return f"Flip({self.size})"

    def get_config(self):
        return {"size": self.size}

    def forward_prop(self, input):
        self.input = np.asarray(input)
        return self.input[::-1].copy()

    def gradient(self, d_output):
        return np.asarray(d_output)[::-1].copy(), ()

    def backward_prop(self, d_output, rate):
        return self.gradient(d_output)[0]

    def _compiled(self):
        return Compiled("flip", self.size, self.size)


@numba.njit(inline="always")
def _reverse(x, y):
    n = x.size
    for i in range(n):
        y[i] = x[n - 1 - i]


@numba.njit(inline="always")
def flip_forward(L, params, acts, scratch, partial):
    _reverse(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size])


@numba.njit(inline="always")
def flip_backward(L, params, gparams, acts, grads, scratch, rate, partial):
    _reverse(grads[L.y : L.y + L.out_size], grads[L.x : L.x + L.in_size])


@numba.njit(inline="always")
def flip_forward_batch(L, params, acts, scratch, capacity, n):
    for b in range(n):
        x = acts[L.x * capacity + b * L.in_size : L.x * capacity + (b + 1) * L.in_size]
        _reverse(x, acts[L.y * capacity + b * L.out_size : L.y * capacity + (b + 1) * L.out_size])


@numba.njit(inline="always")
def flip_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    for b in range(n):
        g = grads[L.y * capacity + b * L.out_size : L.y * capacity + (b + 1) * L.out_size]
        _reverse(g, grads[L.x * capacity + b * L.in_size : L.x * capacity + (b + 1) * L.in_size])


def register():
    """The two registrations: all either kind needs beyond this module."""
    registry.register_activation(
        "softsign", softsign, d_softsign, softsign_kernel, softsign_backward_kernel
    )
    registry.register_layer(Flip)
    registry.register_kind(
        "flip",
        forward=flip_forward,
        backward=flip_backward,
        forward_batch=flip_forward_batch,
        backward_batch=flip_backward_batch,
    )


# --------------------------------------------------------------------------------------------------
# the tests


@pytest.fixture
def new_kinds():
    register()
    yield
    for name in ("softsign", "Flip", "flip"):
        registry.unregister(name)


def test_checked_in_loops_are_the_registrys():
    # Catches a kind added, renamed or changed in the package without regenerating
    # kernels/_loops.py (python -m fastcnn._codegen): its branches would be missing or stale.
    assert _codegen.LOOPS_FILE.read_text() == _codegen.builtin_source()
    assert set(_loops.KINDS) == {k for k, v in registry.KINDS.items() if _codegen.is_builtin(v)}


def test_every_builtin_kind_has_every_branch():
    # Catches a kind that registers without a hook a loop calls: registration refuses it, so no
    # loop can meet an op without a branch (the old loops fell through to sigmoid).
    with pytest.raises(ValueError, match="kind 'half' has no backward or backward_sgd hook"):
        registry.register_kind("half", forward=flip_forward, forward_batch=flip_forward_batch)
    assert "half" not in registry.KINDS
    with pytest.raises(ValueError, match="unknown hook 'backwards'"):
        registry.register_kind("typo", forward=flip_forward, backwards=flip_backward)


def make_network(dtype=np.float64):
    rng = np.random.RandomState(4)
    return Network(
        [
            Linear(6, 5, rng=rng, dtype=dtype, init="xavier"),
            Activation(softsign, d_softsign),
            Flip(5),
            Linear(5, 3, rng=rng, dtype=dtype, init="xavier"),
            Activation(softsign, d_softsign),
        ]
    )


def per_layer_mse(predicted, actual):
    # Not `fastcnn.mse` itself, so Network.train takes the per-layer path with the same numbers.
    return mse(predicted, actual)


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 4])
def test_kinds_from_outside_train_on_the_compiled_loops(new_kinds, batch_size):
    # Catches a registry that needs an edit elsewhere for a new kind (the network would fall back
    # to the per-layer path, or fail), and generated branches that call the wrong hook.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (24, 6, 1))
    y = rng.uniform(0, 1, (24, 3, 1))
    compiled, per_layer = make_network(), make_network()
    program = _compiled.program(compiled.layers, padded=batch_size == 1)
    assert program is not None and program.loops is not _loops  # generated for the new kinds
    assert {"softsign", "flip"} <= set(program.loops.KINDS)
    a = compiled.train(x, y, mse, d_mse, 3, 0.3, verbose=False, batch_size=batch_size)
    b = per_layer.train(x, y, per_layer_mse, d_mse, 3, 0.3, verbose=False, batch_size=batch_size)
    np.testing.assert_allclose(a, b, **tolerance(np.float64))
    for la, lb in zip(compiled.layers, per_layer.layers, strict=True):
        for p, q in zip(la.parameters(), lb.parameters(), strict=True):
            np.testing.assert_allclose(p, q, **tolerance(np.float64))
    xs = rng.uniform(-1, 1, (7, 6, 1))
    expected = np.stack([per_layer.predict(v).ravel() for v in xs])
    np.testing.assert_allclose(compiled.predict_batch(xs), expected, **tolerance(np.float64))


def test_new_kinds_touch_no_file_of_the_package(new_kinds):
    # Catches the claim above going false: a new kind that needed a line in fastcnn/ or kernels/.
    sources = [*(ROOT / "fastcnn").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")]
    assert len(sources) > 10
    for path in sources:
        text = path.read_text()
        assert not re.search(r"softsign|\bflip\b", text, re.IGNORECASE), path
    # And a model file can hold the new layer, through its registration alone.
    assert registry.LAYERS["Flip"] is Flip


def test_model_file_holds_a_registered_layer(new_kinds, tmp_path):
    # Catches io.py branching per layer type again: a registered layer saves and loads by its
    # get_config() and CONFIG_FIELDS alone.
    import fastcnn

    net = make_network()
    net.save(tmp_path / "m.npz")
    loaded = fastcnn.load(tmp_path / "m.npz")
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in net.layers]
    x = np.linspace(-1, 1, 6).reshape(6, 1)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
