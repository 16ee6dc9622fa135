"""The registry: every layer type, activation, loss and compiled kind fastcnn knows, each entered
once, by the module that defines it. Everything else (model files, the compiled loops and the code
that generates them, the checks at the door, the tests) iterates these tables and branches on no
type.

* :data:`LAYERS`: layer type name -> class (:func:`register_layer`). A model file may name these.
* :data:`KINDS`: the compiled loops' kinds of layer, by name (:func:`register_kind`): each kind's
  hooks, Numba functions of one layer record and the flat buffers, which ``fastcnn._codegen``
  writes a branch of every loop for.
* :data:`ACTIVATIONS`: a function pair -> its two kernels (:func:`register_activation`); each is
  also a compiled kind, whose hooks the generator writes from the kernels.
* :data:`LOSSES`: a loss function pair -> its kernel (:func:`register_loss`).

A layer's own facts (its config, its parameters' shapes, its reference maths, which kind and
which record it has on the compiled loops) stay on its class; see :class:`fastcnn.layers.Layer`.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .layers.base import Layer

# The hooks a kind may give, and what each does (the signatures are kernels/_loops.py's):
#   forward(L, params, acts, scratch, partial)                        one sample
#   backward(L, params, gparams, acts, grads, scratch, rate, partial) input gradient, and the
#       parameters' gradients into gparams (laid out as params; the loop then steps them)
#   backward_first(...)      the same for a first layer: its input gradient is never read
#   backward_sgd(...)        backward with the SGD step fused in (a fast path); gparams unused
#   backward_first_sgd(...)  backward_first with the step fused in
#   forward_batch(L, params, acts, scratch, capacity, n)              n samples at once
#   backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate), and
#   backward_first_batch, backward_sgd_batch, backward_first_sgd_batch likewise
# A kind with no backward_first* hook has nothing to do as a first layer (no parameters).
HOOKS = (
    "forward",
    "backward",
    "backward_first",
    "backward_sgd",
    "backward_first_sgd",
    "forward_batch",
    "backward_batch",
    "backward_first_batch",
    "backward_sgd_batch",
    "backward_first_sgd_batch",
)


@dataclass(frozen=True)
class Kind:
    """A kind of layer on the compiled loops: its name (an identifier) and its hooks, or, for an
    activation, its ``forward(x, out)`` / ``backward(x, y, d_output, out)`` kernels, from which
    the generator writes the hooks. ``fused`` names the parameters a ``*_sgd`` hook updates itself,
    per path (``"sample"``, ``"batch"``); the loop steps the rest."""

    name: str
    hooks: dict[str, Any] = field(default_factory=dict)
    activation: tuple[Any, Any] | None = None
    fused: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def hook(self, name: str, sgd: bool = True) -> Any:
        """The hook the plain-SGD loops call for ``name`` (the fused one when there is one)."""
        return (self.hooks.get(name + "_sgd") if sgd else None) or self.hooks.get(name)

    @property
    def has_first(self) -> bool:
        """Whether a first layer of this kind has work to do in the backward pass."""
        return self.activation is None and any(
            self.hooks.get(h) for h in ("backward_first", "backward_first_sgd")
        )


@dataclass(frozen=True)
class Activation:
    """A registered element-wise activation: the seed-style function pair (the reference path)
    and its two kernels, ``forward(x, out)`` and ``backward(x, y, d_output, out)``."""

    name: str
    function: Any
    derivative: Any
    forward: Any
    backward: Any


@dataclass(frozen=True)
class Loss:
    """A registered loss: the seed-style pair ``loss(predicted, actual)`` / ``d_loss(predicted,
    actual)`` and its kernel ``kernel(predicted, actual, d_predicted) -> loss`` on one sample's
    flat output.

    ``fused`` maps a kind to a kernel that computes this loss from the input of a last layer of
    that kind, ``kernel(x, actual, y, d_x) -> loss``: it writes the layer's output ``y`` and the
    gradient of its input ``d_x`` itself, and the backward pass starts at the layer before (the
    cross-entropy of a softmax's logits, by log-sum-exp). ``targets(data_y)`` says what is wrong
    with a training set's targets for this loss, or None; ``Network.train`` asks before any
    update."""

    name: str
    function: Any
    derivative: Any
    kernel: Any
    fused: dict[str, Any] = field(default_factory=dict)
    targets: Any = None


LAYERS: dict[str, type[Layer]] = {}
KINDS: dict[str, Kind] = {}
ACTIVATIONS: dict[str, Activation] = {}
LOSSES: dict[str, Loss] = {}


def _check_name(table: str, name: str, entries: dict) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"a {table} name must be a Python identifier, got {name!r}.")
    if name in entries:
        raise ValueError(f"{table} {name!r} is registered already.")


def register_layer(cls: Any) -> Any:
    """Class decorator: ``cls`` may be named in model files (by its class name)."""
    _check_name("layer type", cls.__name__, LAYERS)
    LAYERS[cls.__name__] = cls
    return cls


def register_kind(
    name: str, *, fused: dict[str, tuple[str, ...]] | None = None, **hooks: Any
) -> Kind:
    """Enter a compiled kind of layer with its hooks (see :data:`HOOKS`). It needs a forward and a
    backward hook on both paths (per sample and batch); the ``*_first`` hooks are optional."""
    _check_name("kind", name, KINDS)
    unknown = sorted(set(hooks) - set(HOOKS))
    if unknown:
        raise ValueError(f"kind {name!r}: unknown hook {unknown[0]!r}; the hooks are {HOOKS}.")
    for path in ("", "_batch"):
        needed = [f"forward{path}"], [f"backward{path}", f"backward_sgd{path}"]
        for options in needed:
            if not any(hooks.get(h) is not None for h in options):
                raise ValueError(f"kind {name!r} has no {' or '.join(options)} hook.")
    kind = Kind(name, {k: v for k, v in hooks.items() if v is not None}, fused=dict(fused or {}))
    KINDS[name] = kind
    return kind


def register_activation(
    name: str, function: Any, derivative: Any, forward: Any, backward: Any
) -> Activation:
    """Enter an element-wise activation: ``Activation(function, derivative)`` layers then run its
    kernels, on the compiled loops too, and model files can name it."""
    _check_name("activation", name, ACTIVATIONS)
    _check_name("kind", name, KINDS)
    if not all(map(callable, (function, derivative))):
        raise TypeError(f"activation {name!r}: function and derivative must be callables.")
    entry = Activation(name, function, derivative, forward, backward)
    ACTIVATIONS[name] = entry
    KINDS[name] = Kind(name, activation=(forward, backward))
    return entry


def register_loss(
    name: str,
    function: Any,
    derivative: Any,
    kernel: Any,
    *,
    fused: dict[str, Any] | None = None,
    targets: Any = None,
) -> Loss:
    """Enter a loss pair with its kernel: ``Network.train(..., function, derivative, ...)`` then
    runs on the compiled loops. ``fused`` and ``targets`` as :class:`Loss` has them."""
    _check_name("loss", name, LOSSES)
    for kind in fused or {}:
        _check_name("kind", kind, {})
    entry = Loss(name, function, derivative, kernel, dict(fused or {}), targets)
    LOSSES[name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove every entry called ``name`` (a test's temporary kinds)."""
    for table in (LAYERS, KINDS, ACTIVATIONS, LOSSES):
        table.pop(name, None)


def activation_of(function: Any, derivative: Any) -> Activation | None:
    """The registered activation with exactly this function pair, or None."""
    for entry in ACTIVATIONS.values():
        if entry.function is function and entry.derivative is derivative:
            return entry
    return None


def loss_entries(loss: Loss) -> list[str]:
    """The names of a loss's entries in the compiled loops: its own, then ``{name}__{kind}`` for
    each kind it fuses with."""
    return [loss.name, *(f"{loss.name}__{kind}" for kind in loss.fused)]


def loss_of(function: Any, derivative: Any) -> Loss | None:
    """The registered loss with exactly this function pair, or None."""
    for entry in LOSSES.values():
        if entry.function is function and entry.derivative is derivative:
            return entry
    return None
