"""Optimizers and learning-rate schedules, defined as PyTorch 2.x's ``torch.optim`` defines them.

An optimizer is a pure description (its hyper-parameters); what changes while training lives in an
:class:`OptimizerState` that :meth:`Optimizer.init` makes and :meth:`Optimizer.step` updates, as
optax separates a transformation from its state. It works on a list of parameter arrays of one
float dtype: a compiled program's one flat ``params`` buffer, or the per-layer path's weights and
biases (each C-contiguous, updated in place through a flat view). The state keeps one flat buffer
per kind of state (``"momentum_buffer"``, ``"exp_avg"``, ``"exp_avg_sq"``), laid out as the
parameter arrays one after another, so a checkpoint holds the same arrays whichever path wrote it.

A schedule is a pure function of position: :meth:`Schedule.lr_at` gives the learning rate of a step
from the epoch and the step within it, so resuming needs only the position.

Example (one mini-batch step)::

    opt = Adam(lr=1e-3)
    state = opt.init([layer.weights, layer.biases])
    opt.step([layer.weights, layer.biases], [d_weights, d_biases], state)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from .kernels import optim as k_optim

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "OneCycleLR",
    "Optimizer",
    "OptimizerState",
    "Schedule",
    "StepLR",
    "deserialize",
    "serialize",
]

_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _real(owner: str, name: str, value: Any) -> float:
    """A finite real number (not a bool), as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner}: {name} must be a real number, got {value!r} of type {type(value).__name__}."
        )
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}.")
    return float(value)


def _integer(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{owner}: {name} must be an integer, got {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be at least {minimum}, got {value}.")
    return int(value)


def _flag(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}.")
    return bool(value)


# --------------------------------------------------------------------------------------------------
# optimizer state


@dataclass
class OptimizerState:
    """What an optimizer changes while it trains: the number of steps taken and its buffers.

    Attributes
    ----------
    step : int
        Steps taken so far (torch's ``state["step"]``; 0 before the first).
    sizes : tuple of int
        The number of values of each parameter array, in order.
    dtype : numpy.dtype
        float64 or float32, the parameters' dtype.
    buffers : dict of str to ndarray of shape (sum(sizes),)
        One flat buffer per kind of state, the parameter arrays' values one after another.
    """

    step: int
    sizes: tuple[int, ...]
    dtype: np.dtype
    buffers: dict[str, NDArray[Any]] = field(default_factory=dict)
    # The views of each buffer, made once (slicing on every step cost more than a small kernel).
    _views: dict[str, tuple[NDArray[Any], list[NDArray[Any]]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def views(self, name: str) -> list[NDArray[Any]]:
        """Buffer ``name`` cut into one flat view per parameter array."""
        flat = self.buffers[name]
        cached = self._views.get(name)
        if cached is None or cached[0] is not flat:  # a buffer replaced since: cut it anew
            views, start = [], 0
            for size in self.sizes:
                views.append(flat[start : start + size])
                start += size
            cached = self._views[name] = (flat, views)
        return cached[1]


def _arrays(owner: str, what: str, arrays: Any) -> list[NDArray[Any]]:
    if isinstance(arrays, np.ndarray):
        return [arrays]
    if not isinstance(arrays, Sequence) or isinstance(arrays, (str, bytes)):
        raise TypeError(
            f"{owner}: {what} must be an array or a list of arrays, got {type(arrays).__name__}."
        )
    for k, a in enumerate(arrays):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{owner}: {what}[{k}] must be a NumPy array, got {type(a).__name__}.")
    return list(arrays)


def _flat_views(
    owner: str, what: str, arrays: list[NDArray[Any]], state: OptimizerState, writeable: bool
) -> list[NDArray[Any]]:
    """``arrays`` as 1-D views, checked against the state (count, sizes, dtype, layout)."""
    if len(arrays) != len(state.sizes):
        raise ValueError(
            f"{owner}: {what} has {len(arrays)} arrays, the optimizer state was made for "
            f"{len(state.sizes)}."
        )
    views = []
    for k, (a, size) in enumerate(zip(arrays, state.sizes, strict=True)):
        if a.dtype != state.dtype:
            raise TypeError(
                f"{owner}: {what}[{k}] is {a.dtype.name}, the optimizer state is "
                f"{state.dtype.name}; pass arrays of one dtype (.astype({state.dtype.name}))."
            )
        if a.size != size:
            raise ValueError(
                f"{owner}: {what}[{k}] has {a.size} values, the optimizer state was made for {size}."
            )
        if not a.flags.c_contiguous:
            raise ValueError(
                f"{owner}: {what}[{k}] must be C-contiguous, so that it is updated in place "
                f"through a flat view; got a strided array of shape {a.shape}."
            )
        if writeable and not a.flags.writeable:
            raise ValueError(f"{owner}: {what}[{k}] is read-only; parameters are updated in place.")
        views.append(a.reshape(-1))
    return views


# --------------------------------------------------------------------------------------------------
# optimizers


class Optimizer:
    """The interface every optimizer answers (see the module docstring).

    Subclasses set :attr:`buffer_names` and implement ``_kernel_step`` and ``_reference_step``.
    """

    #: The names of the state's flat buffers, in the order the kernels take them.
    buffer_names: ClassVar[tuple[str, ...]] = ()
    lr: float | None

    def buffers(self) -> tuple[str, ...]:
        """The state buffers this optimizer keeps (may depend on its hyper-parameters)."""
        return self.buffer_names

    # ---- configuration -------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as JSON values."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        """The optimizer ``get_config`` describes."""
        return cls(**config)

    def __repr__(self) -> str:
        defaults = type(self)().get_config()
        parts = [
            f"{name}={_repr_value(value)}"
            for name, value in self.get_config().items()
            if value != defaults.get(name)
        ]
        return f"{type(self).__name__}({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking objects compared by value

    # ---- state ---------------------------------------------------------------------------------

    def init(self, params: Any, dtype: Any = None) -> OptimizerState:
        """A fresh state (step 0, zero buffers) for ``params``.

        Parameters
        ----------
        params : ndarray, or list of ndarrays, ints or shape tuples
            The parameter arrays (their sizes and dtype are taken), or their shapes.
        dtype : float64 or float32, optional
            Required with shapes (default float64); with arrays, must agree with them if given.
        """
        owner = f"{type(self).__name__}.init"
        sizes, found = _sizes_and_dtype(owner, params)
        dtype = _resolve_dtype(owner, found, dtype)
        total = int(sum(sizes))
        buffers = {name: np.zeros(total, dtype=dtype) for name in self.buffers()}
        return OptimizerState(step=0, sizes=sizes, dtype=dtype, buffers=buffers)

    def state_dict(self, state: OptimizerState) -> dict[str, Any]:
        """``state`` as JSON values plus named arrays (copies): what a checkpoint holds.

        Returns
        -------
        dict
            ``{"optimizer": class name, "config": get_config(), "step": int, "dtype": str,
            "sizes": [int, ...], "arrays": {name: ndarray of shape (sum(sizes),)}}``.
        """
        return {
            "optimizer": type(self).__name__,
            "config": self.get_config(),
            "step": int(state.step),
            "dtype": state.dtype.name,
            "sizes": [int(s) for s in state.sizes],
            "arrays": {name: np.array(buf, copy=True) for name, buf in state.buffers.items()},
        }

    def load_state_dict(self, saved: Any, params: Any, dtype: Any = None) -> OptimizerState:
        """The state ``state_dict`` exported, checked against this optimizer and ``params``
        (arrays or shapes, as for :meth:`init`); the arrays are copied."""
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(saved, dict):
            raise TypeError(
                f"{owner}: expected a dict from state_dict(), got {type(saved).__name__}."
            )
        missing = [
            k for k in ("optimizer", "config", "step", "dtype", "sizes", "arrays") if k not in saved
        ]
        if missing:
            raise ValueError(f"{owner}: the saved state lacks {missing}.")
        if saved["optimizer"] != type(self).__name__:
            raise ValueError(
                f"{owner}: the saved state is of a {saved['optimizer']} optimizer, this one is "
                f"{type(self).__name__}."
            )
        config = self.get_config()
        if not isinstance(saved["config"], dict):
            raise TypeError(
                f"{owner}: config must be a dict, got {type(saved['config']).__name__}."
            )
        changed = sorted(
            k for k in set(config) | set(saved["config"]) if config.get(k) != saved["config"].get(k)
        )
        if changed:
            diffs = ", ".join(
                f"{k}={saved['config'].get(k)!r} saved, {config.get(k)!r} here" for k in changed
            )
            raise ValueError(f"{owner}: the saved state's hyper-parameters differ: {diffs}.")
        step = saved["step"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"{owner}: step must be a non-negative integer, got {step!r}.")
        sizes, found = _sizes_and_dtype(owner, params)
        dtype = _resolve_dtype(owner, found, dtype)
        if saved["dtype"] != dtype.name:
            raise ValueError(
                f"{owner}: the saved state is {saved['dtype']}, the parameters are {dtype.name}."
            )
        if list(saved["sizes"]) != list(sizes):
            raise ValueError(
                f"{owner}: the saved state is for parameter arrays of sizes {list(saved['sizes'])}, "
                f"these have sizes {list(sizes)}."
            )
        arrays = saved["arrays"]
        if not isinstance(arrays, dict):
            raise TypeError(f"{owner}: arrays must be a dict, got {type(arrays).__name__}.")
        expected = set(self.buffers())
        if set(arrays) != expected:
            raise ValueError(
                f"{owner}: the saved state holds arrays {sorted(arrays)}, "
                f"{type(self).__name__} with these hyper-parameters keeps {sorted(expected)}."
            )
        total = int(sum(sizes))
        buffers = {}
        for name in self.buffers():
            a = arrays[name]
            if not isinstance(a, np.ndarray):
                raise TypeError(
                    f"{owner}: array {name!r} must be a NumPy array, got {type(a).__name__}."
                )
            if a.dtype != dtype:
                raise ValueError(f"{owner}: array {name!r} is {a.dtype}, expected {dtype.name}.")
            if a.shape != (total,):
                raise ValueError(
                    f"{owner}: array {name!r} has shape {a.shape}, expected ({total},)."
                )
            buffers[name] = np.array(a, dtype=dtype, copy=True, order="C")
        return OptimizerState(step=int(step), sizes=sizes, dtype=dtype, buffers=buffers)

    # ---- stepping ------------------------------------------------------------------------------

    def rate(self, lr: Any = None) -> float:
        """The learning rate of a step: ``lr`` when given (a schedule's value, or ``train``'s
        rate), else the optimizer's own."""
        if lr is None:
            lr = self.lr
        if lr is None:
            raise ValueError(
                f"{type(self).__name__} has no learning rate of its own (lr=None); pass lr to step()."
            )
        lr = _real(type(self).__name__, "lr", lr)
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: Invalid learning rate: {lr}.")
        return lr

    def step(self, params: Any, grads: Any, state: OptimizerState, lr: Any = None) -> None:
        """Update ``params`` in place from ``grads`` (same sizes, same dtype) and advance
        ``state``, with the Numba kernels of :mod:`fastcnn.kernels.optim`."""
        rate, p, g, buffers = self._checked("step", params, grads, state, lr)
        for k in range(len(p)):
            self._kernel_step(p[k], g[k], [b[k] for b in buffers], state.step, rate)
        state.step += 1

    def reference_step(
        self, params: Any, grads: Any, state: OptimizerState, lr: Any = None
    ) -> None:
        """:meth:`step` in plain NumPy (the oracle; never calls a kernel)."""
        rate, p, g, buffers = self._checked("reference_step", params, grads, state, lr)
        for k in range(len(p)):
            self._reference_step(p[k], g[k], [b[k] for b in buffers], state.step, rate)
        state.step += 1

    def _checked(self, method, params, grads, state, lr):
        """The rate, the flat views of params and grads, and the state's buffer views."""
        owner = f"{type(self).__name__}.{method}"
        if not isinstance(state, OptimizerState):
            raise TypeError(
                f"{owner}: state must be the OptimizerState that init() or load_state_dict() "
                f"returned, got {type(state).__name__}."
            )
        if set(state.buffers) != set(self.buffers()):
            raise ValueError(
                f"{owner}: the state holds buffers {sorted(state.buffers)}, this optimizer keeps "
                f"{sorted(self.buffers())}; it was made by another optimizer."
            )
        rate = self.rate(lr)
        p = _flat_views(owner, "params", _arrays(owner, "params", params), state, True)
        g = _flat_views(owner, "grads", _arrays(owner, "grads", grads), state, False)
        return rate, p, g, [state.views(name) for name in self.buffers()]

    def program(self) -> tuple[int, NDArray[np.float64]]:
        """``(code, hyper)``: this optimizer as the compiled loops take it (see
        :func:`fastcnn.kernels.optim.optimizer_step`)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _kernel_step(self, p, g, buffers, taken, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    def _reference_step(self, p, g, buffers, taken, lr):  # pragma: no cover - abstract
        raise NotImplementedError


def _repr_value(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_repr_value(v) for v in value) + ")"
    if isinstance(value, float):
        return repr(value)
    return repr(value)


def _sizes_and_dtype(owner: str, params: Any) -> tuple[tuple[int, ...], np.dtype | None]:
    items = [params] if isinstance(params, np.ndarray) else params
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise TypeError(
            f"{owner}: expected an array or a list of arrays or shapes, got {type(params).__name__}."
        )
    sizes, dtypes = [], set()
    for k, item in enumerate(items):
        if isinstance(item, np.ndarray):
            sizes.append(int(item.size))
            dtypes.add(item.dtype)
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            sizes.append(_integer(owner, f"params[{k}]", item, 0))
        elif isinstance(item, (tuple, list)):
            dims = [_integer(owner, f"params[{k}] (a shape)", d, 0) for d in item]
            sizes.append(int(np.prod(dims, dtype=np.int64)))
        else:
            raise TypeError(
                f"{owner}: params[{k}] must be an array, a size or a shape, got {type(item).__name__}."
            )
    if len(dtypes) > 1:
        raise TypeError(
            f"{owner}: the parameter arrays mix dtypes {sorted(d.name for d in dtypes)}; "
            "one optimizer state holds one dtype."
        )
    return tuple(sizes), (dtypes.pop() if dtypes else None)


def _resolve_dtype(owner: str, found: np.dtype | None, dtype: Any) -> np.dtype:
    if dtype is not None:
        try:
            wanted = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"{owner}: dtype must be float64 or float32, got {dtype!r}.") from None
        if found is not None and found != wanted:
            raise TypeError(f"{owner}: dtype={wanted.name} given, but the arrays are {found.name}.")
        found = wanted
    found = np.dtype(np.float64) if found is None else found
    if found not in _DTYPES:
        raise TypeError(f"{owner}: parameters must be float64 or float32, got {found.name}.")
    return found


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's momentum, dampening, Nesterov momentum and
    L2 weight decay (``torch.optim.SGD``)::

        g = g + weight_decay * p                     (if weight_decay)
        b = g (first step) else momentum * b + (1 - dampening) * g      (if momentum)
        g = g + momentum * b (nesterov) else b                          (if momentum)
        p = p - lr * g

    With ``momentum=0`` and ``weight_decay=0`` this is the notebook's ``p - g * lr``, bit for bit
    (torch rounds ``p + (-lr) * g`` as one fused multiply-add, a last-bit difference); otherwise
    torch's own roundings, bit for bit (see :mod:`fastcnn.kernels.optim`).

    Parameters
    ----------
    lr : float or None
        The learning rate; None takes the rate given to ``step`` (``train``'s ``rate``).
    momentum, dampening, weight_decay : float, >= 0
    nesterov : bool
        Needs ``momentum > 0`` and ``dampening == 0``.
    """

    def __init__(
        self,
        lr: float | None = None,
        momentum: float = 0,
        dampening: float = 0,
        nesterov: bool = False,
        weight_decay: float = 0,
    ) -> None:
        name = "SGD"
        if lr is not None:
            lr = _real(name, "lr", lr)
            if lr < 0:
                raise ValueError(f"SGD: Invalid learning rate: {lr} (must be >= 0).")
        self.lr = lr
        self.momentum = _real(name, "momentum", momentum)
        if self.momentum < 0:
            raise ValueError(f"SGD: Invalid momentum value: {momentum} (must be >= 0).")
        self.dampening = _real(name, "dampening", dampening)
        self.weight_decay = _real(name, "weight_decay", weight_decay)
        if self.weight_decay < 0:
            raise ValueError(f"SGD: Invalid weight_decay value: {weight_decay} (must be >= 0).")
        self.nesterov = _flag(name, "nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                "SGD: Nesterov momentum requires a momentum and zero dampening; got "
                f"momentum={momentum}, dampening={dampening}."
            )

    def buffers(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum != 0 else ()

    @property
    def plain(self) -> bool:
        """True when this is the notebook's update (no momentum, no weight decay)."""
        return self.momentum == 0 and self.weight_decay == 0

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    def program(self) -> tuple[int, NDArray[np.float64]]:
        code = k_optim.PLAIN if self.plain else k_optim.MOMENTUM
        hyper = [self.momentum, self.dampening, self.weight_decay, float(self.nesterov)]
        return code, np.array(hyper + [0.0] * 4)

    def _kernel_step(self, p, g, buffers, taken, lr):
        if self.plain:
            k_optim.plain_sgd_step(p, g, lr)
            return
        buf = buffers[0] if buffers else p[:0]  # unread when momentum is 0
        k_optim.sgd_momentum_step(
            p,
            g,
            buf,
            lr,
            self.momentum,
            self.dampening,
            self.weight_decay,
            self.nesterov,
            taken == 0,
        )

    def _reference_step(self, p, g, buffers, taken, lr):
        t = p.dtype.type
        if self.plain:
            p[...] = p - g * t(lr)  # the notebook's update
            return
        if self.weight_decay != 0:
            g = g + t(self.weight_decay) * p
        if self.momentum != 0:
            b = buffers[0]
            if taken == 0:
                b[...] = g
            else:
                b[...] = t(self.momentum) * b + t(1 - self.dampening) * g
            g = g + t(self.momentum) * b if self.nesterov else b
        p[...] = p - t(lr) * g


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``, no amsgrad), with L2 weight decay added to the gradient::

        g = g + weight_decay * p                    (if weight_decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    torch's roundings, bit for bit, except its CPU ``sqrt`` (MKL's, within 1 ulp), for which this
    uses the correctly rounded one (see :mod:`fastcnn.kernels.optim`).

    Parameters
    ----------
    lr : float, >= 0
    betas : (float, float), each in [0, 1)
    eps : float, >= 0
    weight_decay : float, >= 0
    """

    buffer_names = ("exp_avg", "exp_avg_sq")
    decoupled = False

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
    ) -> None:
        name = type(self).__name__
        self.lr = _real(name, "lr", lr)
        if self.lr < 0:
            raise ValueError(f"{name}: Invalid learning rate: {lr} (must be >= 0).")
        self.eps = _real(name, "eps", eps)
        if self.eps < 0:
            raise ValueError(f"{name}: Invalid epsilon value: {eps} (must be >= 0).")
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
            raise TypeError(
                f"{name}: betas must be a pair of numbers (beta1, beta2), got {betas!r}."
            )
        for k, beta in enumerate(betas):
            value = _real(name, f"betas[{k}]", beta)
            if not 0.0 <= value < 1.0:
                raise ValueError(
                    f"{name}: Invalid beta parameter at index {k}: {beta} (must be in [0, 1))."
                )
        self.betas = (float(betas[0]), float(betas[1]))
        self.weight_decay = _real(name, "weight_decay", weight_decay)
        if self.weight_decay < 0:
            raise ValueError(f"{name}: Invalid weight_decay value: {weight_decay} (must be >= 0).")

    def get_config(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("betas"), list):
            config["betas"] = tuple(config["betas"])
        return cls(**config)

    def program(self) -> tuple[int, NDArray[np.float64]]:
        beta1, beta2 = self.betas
        hyper = [0.0, 0.0, self.weight_decay, 0.0, beta1, beta2, self.eps, float(self.decoupled)]
        return k_optim.ADAM, np.array(hyper)

    def _kernel_step(self, p, g, buffers, taken, lr):
        m, v = buffers
        beta1, beta2 = self.betas
        k_optim.adam_step(
            p, g, m, v, taken + 1, lr, beta1, beta2, self.eps, self.weight_decay, self.decoupled
        )

    def _reference_step(self, p, g, buffers, taken, lr):
        t = p.dtype.type
        m, v = buffers
        beta1, beta2 = self.betas
        step = taken + 1
        if self.weight_decay != 0:
            if self.decoupled:
                p[...] = p * t(1 - lr * self.weight_decay)
            else:
                g = g + t(self.weight_decay) * p
        m[...] = m + t(1 - beta1) * (g - m)  # torch's lerp_(grad, 1 - beta1)
        v[...] = v * t(beta2) + t(1 - beta2) * g * g
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        step_size = lr / bias_correction1
        denom = np.sqrt(v) / t(math.sqrt(bias_correction2)) + t(self.eps)
        p[...] = p - t(step_size) * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (``torch.optim.AdamW``): ``p = p * (1 - lr *
    weight_decay)`` before Adam's update, instead of adding ``weight_decay * p`` to the gradient.
    Same parameters as :class:`Adam`; ``weight_decay`` defaults to 1e-2."""

    decoupled = True

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# --------------------------------------------------------------------------------------------------
# schedules


class Schedule:
    """A learning rate as a pure function of position.

    :meth:`lr_at` is the rate for the update made at step ``step_in_epoch`` (0-based) of epoch
    ``epoch`` (0-based), equal to the ``lr`` torch's optimizer holds then: after ``epoch`` calls of
    ``scheduler.step()`` for a per-epoch schedule (``per_step = False``, called once after each
    epoch as torch's examples do), after ``epoch * steps_per_epoch + step_in_epoch`` calls for a
    per-step one (``per_step = True``, called after each optimizer step).
    """

    per_step: ClassVar[bool] = False

    def lr_at(
        self, base_lr: float, epoch: int, step_in_epoch: int = 0, steps_per_epoch: int = 1
    ) -> float:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Schedule:
        return cls(**config)

    def __repr__(self) -> str:
        config = self.get_config()
        required = self._required
        parts = [_repr_value(config[name]) for name in required]
        defaults = self._defaults()
        parts += [
            f"{name}={_repr_value(value)}"
            for name, value in config.items()
            if name not in required and value != defaults.get(name)
        ]
        return f"{type(self).__name__}({', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    __hash__ = None  # type: ignore[assignment]

    _required: ClassVar[tuple[str, ...]] = ()

    def _defaults(self) -> dict[str, Any]:
        return {}

    def _position(
        self, epoch: Any, step_in_epoch: Any, steps_per_epoch: Any
    ) -> tuple[int, int, int]:
        owner = f"{type(self).__name__}.lr_at"
        epoch = _integer(owner, "epoch", epoch, 0)
        steps_per_epoch = _integer(owner, "steps_per_epoch", steps_per_epoch, 1)
        step_in_epoch = _integer(owner, "step_in_epoch", step_in_epoch, 0)
        if step_in_epoch >= steps_per_epoch:
            raise ValueError(
                f"{owner}: step_in_epoch must be below steps_per_epoch={steps_per_epoch}, "
                f"got {step_in_epoch}."
            )
        return epoch, step_in_epoch, steps_per_epoch


class StepLR(Schedule):
    """``torch.optim.lr_scheduler.StepLR``: the rate times ``gamma`` every ``step_size`` epochs.

    As torch's ``step()`` does, the rate is multiplied once per ``step_size`` epochs
    (``((base * gamma) * gamma) ...``), which can differ from ``base * gamma ** k`` in the last bit.
    """

    per_step = False
    _required = ("step_size",)

    def __init__(self, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _integer("StepLR", "step_size", step_size, 1)
        self.gamma = _real("StepLR", "gamma", gamma)

    def _defaults(self) -> dict[str, Any]:
        return {"gamma": 0.1}

    def get_config(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def lr_at(
        self, base_lr: float, epoch: int, step_in_epoch: int = 0, steps_per_epoch: int = 1
    ) -> float:
        epoch, _, _ = self._position(epoch, step_in_epoch, steps_per_epoch)
        lr = _real("StepLR.lr_at", "base_lr", base_lr)
        for _ in range(epoch // self.step_size):
            lr = lr * self.gamma
        return lr


class CosineAnnealingLR(Schedule):
    """``torch.optim.lr_scheduler.CosineAnnealingLR``: from ``base_lr`` down to ``eta_min`` over
    ``T_max`` epochs along half a cosine, then back up (a period of ``2 * T_max``).

    The value is torch's recursive form, step by step (what ``scheduler.step()`` produces), not
    its closed form ``eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2``, from which it
    differs in the last bits.
    """

    per_step = False
    _required = ("T_max",)

    def __init__(self, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = _integer("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _real("CosineAnnealingLR", "eta_min", eta_min)

    def _defaults(self) -> dict[str, Any]:
        return {"eta_min": 0.0}

    def get_config(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}

    def lr_at(
        self, base_lr: float, epoch: int, step_in_epoch: int = 0, steps_per_epoch: int = 1
    ) -> float:
        epoch, _, _ = self._position(epoch, step_in_epoch, steps_per_epoch)
        base = _real("CosineAnnealingLR.lr_at", "base_lr", base_lr)
        t_max, eta_min = self.T_max, self.eta_min
        lr = base
        # torch's get_lr, once per epoch: the same expressions in the same order.
        for e in range(1, epoch + 1):
            if (e - 1 - t_max) % (2 * t_max) == 0:
                lr = lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
            else:
                lr = (1 + math.cos(math.pi * e / t_max)) / (
                    1 + math.cos(math.pi * (e - 1) / t_max)
                ) * (lr - eta_min) + eta_min
        return lr


class OneCycleLR(Schedule):
    """``torch.optim.lr_scheduler.OneCycleLR``, per step: from ``max_lr / div_factor`` up to
    ``max_lr`` over the first ``pct_start`` of the steps, then down to ``max_lr / div_factor /
    final_div_factor`` (``three_phase``: down to the initial rate first, then to the minimum).

    ``base_lr`` is ignored, as torch overwrites the optimizer's rate. The number of steps is
    ``total_steps``, or ``epochs * steps_per_epoch``. Momentum is not cycled: torch cycles SGD's
    momentum or Adam's beta1 by default (``cycle_momentum=True``); here ``cycle_momentum`` must be
    False, and a comparison with torch must pass ``cycle_momentum=False`` to it.
    """

    per_step = True
    _required = ("max_lr",)

    def __init__(
        self,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        cycle_momentum: bool = False,
    ) -> None:
        name = "OneCycleLR"
        self.max_lr = _real(name, "max_lr", max_lr)
        if self.max_lr < 0:
            raise ValueError(f"{name}: max_lr must be >= 0, got {max_lr}.")
        self.epochs = None if epochs is None else _integer(name, "epochs", epochs, 1)
        self.steps_per_epoch = (
            None
            if steps_per_epoch is None
            else _integer(name, "steps_per_epoch", steps_per_epoch, 1)
        )
        if total_steps is not None:
            self.total_steps = _integer(name, "total_steps", total_steps, 1)
        elif self.epochs is not None and self.steps_per_epoch is not None:
            self.total_steps = self.epochs * self.steps_per_epoch
        else:
            raise ValueError(
                f"{name}: You must define either total_steps OR (epochs AND steps_per_epoch); "
                f"got total_steps={total_steps}, epochs={epochs}, steps_per_epoch={steps_per_epoch}."
            )
        self._total_given = total_steps is not None
        self.pct_start = _real(name, "pct_start", pct_start)
        if not 0 <= self.pct_start <= 1:
            raise ValueError(
                f"{name}: Expected float between 0 and 1 pct_start, but got {pct_start}."
            )
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"{name}: anneal_strategy must be one of 'cos' or 'linear', instead got "
                f"{anneal_strategy!r}."
            )
        self.anneal_strategy = anneal_strategy
        self.div_factor = _real(name, "div_factor", div_factor)
        self.final_div_factor = _real(name, "final_div_factor", final_div_factor)
        for label, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if value <= 0:
                raise ValueError(f"{name}: {label} must be > 0, got {value}.")
        self.three_phase = _flag(name, "three_phase", three_phase)
        if _flag(name, "cycle_momentum", cycle_momentum):
            raise ValueError(
                f"{name}: cycle_momentum=True is not supported (momentum and beta1 stay as the "
                "optimizer sets them); pass cycle_momentum=False."
            )
        initial = self.max_lr / self.div_factor
        minimum = initial / self.final_div_factor
        total = self.total_steps
        pct = self.pct_start
        # (end_step, start_lr, end_lr) per phase, as torch's _schedule_phases.
        if self.three_phase:
            self._phases = [
                (float(pct * total) - 1, initial, self.max_lr),
                (float(2 * pct * total) - 2, self.max_lr, initial),
                (total - 1, initial, minimum),
            ]
        else:
            self._phases = [
                (float(pct * total) - 1, initial, self.max_lr),
                (total - 1, self.max_lr, minimum),
            ]

    def _defaults(self) -> dict[str, Any]:
        return {
            "total_steps": None,
            "epochs": None,
            "steps_per_epoch": None,
            "pct_start": 0.3,
            "anneal_strategy": "cos",
            "div_factor": 25.0,
            "final_div_factor": 1e4,
            "three_phase": False,
            "cycle_momentum": False,
        }

    def get_config(self) -> dict[str, Any]:
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps if self._total_given else None,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
            "cycle_momentum": False,
        }

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            cos_out = math.cos(math.pi * pct) + 1
            return end + (start - end) / 2.0 * cos_out
        return (end - start) * pct + start

    def lr_at(
        self, base_lr: float, epoch: int, step_in_epoch: int = 0, steps_per_epoch: int = 1
    ) -> float:
        epoch, step_in_epoch, steps_per_epoch = self._position(
            epoch, step_in_epoch, steps_per_epoch
        )
        if self.steps_per_epoch is not None and steps_per_epoch != self.steps_per_epoch:
            raise ValueError(
                f"OneCycleLR.lr_at: steps_per_epoch={steps_per_epoch}, but the schedule was made "
                f"for steps_per_epoch={self.steps_per_epoch}."
            )
        step_num = epoch * steps_per_epoch + step_in_epoch
        if step_num >= self.total_steps:
            raise ValueError(
                f"OneCycleLR.lr_at: Tried to step {step_num + 1} times. The specified number of "
                f"total steps is {self.total_steps}."
            )
        start_step = 0.0
        last = len(self._phases) - 1
        for i, phase in enumerate(self._phases):
            if step_num <= phase[0] or i == last:
                break
            start_step = phase[0]
        end_step, start_lr, end_lr = phase
        span = end_step - start_step
        # A phase of no length is never chosen for a step below total_steps (torch would divide
        # by zero there); the guard only keeps the arithmetic total.
        pct = (step_num - start_step) / span if span != 0 else 1.0
        return self._anneal(start_lr, end_lr, pct)


# --------------------------------------------------------------------------------------------------
# (de)serialisation

_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (SGD, Adam, AdamW, StepLR, CosineAnnealingLR, OneCycleLR)
}


def serialize(obj: Optimizer | Schedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": ...}`` (JSON values) for an optimizer or a schedule."""
    if type(obj).__name__ not in _CLASSES or not isinstance(obj, (Optimizer, Schedule)):
        raise TypeError(f"serialize: expected a fastcnn.optim optimizer or schedule, got {obj!r}.")
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def deserialize(data: Any) -> Any:
    """The optimizer or schedule :func:`serialize` described."""
    if not isinstance(data, dict) or set(data) != {"class_name", "config"}:
        raise ValueError(
            f"deserialize: expected {{'class_name': ..., 'config': {{...}}}}, got {data!r}."
        )
    cls = _CLASSES.get(data["class_name"])
    if cls is None:
        raise ValueError(
            f"deserialize: unknown class_name {data['class_name']!r}; expected one of "
            f"{sorted(_CLASSES)}."
        )
    if not isinstance(data["config"], dict):
        raise TypeError(f"deserialize: config must be a dict, got {type(data['config']).__name__}.")
    try:
        return cls.from_config(data["config"])  # type: ignore[attr-defined]
    except TypeError as error:
        raise ValueError(f"deserialize: bad config for {data['class_name']}: {error}") from None
