"""The base classes every layer kind builds on, and what a layer tells the rest of fastcnn.

A layer knows its own facts; model files (:mod:`fastcnn.io`), the compiled loops
(:mod:`fastcnn._compiled`), the checks at the door and the tests ask it instead of branching on its
type:

* ``get_config()`` / ``from_config(config)``: the constructor arguments, as JSON values; the class
  methods ``config_fault(config)`` (what is wrong with a model file's config, or None),
  ``shapes_for(config)`` (its parameters' shapes) and ``signature(config)`` (the constructor call,
  for messages) answer for a config before any layer is built;
* ``parameters()`` (the seed's order), ``named_parameters()``, ``parameter_shapes()``;
* ``input_shape`` / ``output_shape`` where the layer knows them, ``_KEEPS_SHAPE`` (an element-wise
  layer) and ``_INPUT_BY_SIZE`` (takes any input holding the right number of values);
* ``gradient(d_output)`` -> ``(d_input, grads)`` without an update, and ``apply_gradient(grads,
  rate)``; ``backward_prop(d_output, rate)`` is the two in one, as in the seed;
* ``_compiled()``: its kind and record on the compiled loops (:class:`Compiled`), or None.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .. import _validation as check
from .. import reference
from ..kernels import sgd as k_sgd

Shape = tuple[int, ...]
Grads = tuple[NDArray, ...]


@dataclass(frozen=True)
class Compiled:
    """What a layer is on the compiled loops.

    ``kind`` names its entry in :data:`fastcnn.registry.KINDS` (None: nothing to do on flat
    buffers, as a Reshape); ``in_size``/``out_size`` count values; ``dims`` fills the kind's own
    slots of its record (at most :data:`DIMS`); ``params`` names its parameter arrays in the order
    they lie in the flat buffer; ``rows`` names one of them, a matrix whose rows the per-sample
    path pads to whole cache lines (the record's ``p0_stride``; it must be the first); and it
    needs ``scratch`` zeroed values of scratch, plus ``scratch_per_sample`` for each sample of a
    mini-batch.
    """

    kind: str | None
    in_size: int
    out_size: int
    dims: tuple[int, ...] = ()
    params: tuple[str, ...] = ()
    rows: str | None = None
    scratch: int = 0
    scratch_per_sample: int = 0


DIMS = 8  # a record's kind-specific integers


def positive_int_fault(config: dict[str, Any], *fields: str) -> str | None:
    """The first of ``fields`` that is not a positive integer in ``config``, as a message."""
    for name in fields:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            return f"{name} must be a positive integer, found {value!r}"
    return None


def shape_fault(config: dict[str, Any], name: str, ndim: int | None = None) -> str | None:
    """What is wrong with the shape ``config[name]`` (a JSON list of positive integers)."""
    value = config[name]
    if (
        not isinstance(value, list)
        or not value
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in value)
        or (ndim is not None and len(value) != ndim)
    ):
        dims = f"{ndim} " if ndim else ""
        return f"{name} must be a list of {dims}positive integers, found {value!r}"
    return None


def options_fault(config: dict[str, Any]) -> str | None:
    """The ``dtype`` and ``backend`` fields of a compute layer's config."""
    names = tuple(d.name for d in check.DTYPES)
    if "dtype" in config and config["dtype"] not in names:
        return f"dtype must be one of {names}, found {config['dtype']!r}"
    if "backend" in config and config["backend"] not in check.BACKENDS:
        return f"backend must be one of {check.BACKENDS}, found {config['backend']!r}"
    return None


class Layer:
    """Base class: ``forward_prop`` maps an input to an output; ``backward_prop(d_output, rate)``
    takes the loss gradient of the output, updates the layer's parameters in place by SGD with step
    ``rate`` and returns the loss gradient of the input."""

    # Names of the arrays SGD updates, in the order of ``parameters()``.
    _PARAMETERS: ClassVar[tuple[str, ...]] = ()
    # An element-wise layer keeps its input's shape; a network's shape checks look through it.
    _KEEPS_SHAPE: ClassVar[bool] = False
    # The keys of get_config(), in its order (a model file's fields for this layer type).
    CONFIG_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Fields added to CONFIG_FIELDS after model files were first written, with the value that
    # stands for their absence. get_config leaves such a field out while it has that value
    # (:meth:`_without_defaults`), so a layer that does not use a newer option describes itself,
    # to model files and converters alike, exactly as before the option existed; the model-file
    # reader fills the absent fields back in.
    CONFIG_DEFAULTS: ClassVar[dict[str, Any]] = {}
    input_shape: Shape | None = None
    output_shape: Shape | None = None

    def __init__(self) -> None:
        self.input: Any = None

    def forward_prop(self, input: Any) -> NDArray:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_prop.")

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward_prop.")

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(d_input, grads)``: the input gradient and the parameter gradients in the order of
        :meth:`parameters`, from the current parameters; changes nothing."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement gradient (needed to compute gradients "
            f"apart from updates, as mini-batch training does)."
        )

    def apply_gradient(self, grads: Grads, rate: float) -> None:
        """``p -= g * rate`` for each parameter ``p`` and its gradient ``g``, as the seed rounds."""
        if tuple(grads) != ():
            raise ValueError(f"layer {self!r} has no parameters, but received {len(grads)} grads.")

    def parameters(self) -> tuple[NDArray, ...]:
        """The arrays SGD updates in place; none for this layer."""
        return ()

    def named_parameters(self) -> dict[str, NDArray]:
        """``{name: array}`` of :meth:`parameters`, in the same order."""
        return dict(zip(self._PARAMETERS, self.parameters(), strict=True))

    def parameter_shapes(self) -> dict[str, Shape]:
        """``{name: shape}`` the parameters must have."""
        return {}

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as JSON values (what a model file stores)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config.")

    @classmethod
    def _without_defaults(cls, config: dict[str, Any]) -> dict[str, Any]:
        """``config`` without the :attr:`CONFIG_DEFAULTS` fields that have their default value."""
        defaults = cls.CONFIG_DEFAULTS
        return {
            k: v
            for k, v in config.items()
            if k not in defaults or type(v) is not type(defaults[k]) or v != defaults[k]
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], **options: Any) -> Layer:
        """The layer ``get_config`` describes; ``options`` adds keyword arguments (e.g. ``rng``)."""
        return cls(**config, **options)

    # A layer that takes any input holding input_shape's number of values (a Reshape).
    _INPUT_BY_SIZE: ClassVar[bool] = False

    @classmethod
    def config_fault(cls, config: dict[str, Any]) -> str | None:
        """What is wrong with the values of ``config`` (whose keys are :attr:`CONFIG_FIELDS`),
        as a phrase for a model file's error message, or None."""
        return None

    @classmethod
    def signature(cls, config: dict[str, Any]) -> str:
        """The constructor call ``config`` stands for, as the layer's ``repr`` writes it."""
        args = ", ".join(repr(tuple(v) if isinstance(v, list) else v) for v in config.values())
        return f"{cls.__name__}({args})"

    def input_fault(self, shape: tuple[int, ...]) -> str | None:
        """For a layer that takes whatever shape comes (``input_shape`` None): what is wrong with
        an input of ``shape`` (a phrase naming the layer and what it takes), or None. A network
        asks before it runs."""
        return None

    def _compiled(self) -> Compiled | None:
        """What this layer is on the compiled loops, or None when it cannot run there (a custom
        activation, the scipy backend). Asked only of a registered type, never of a subclass,
        which may change what a method does."""
        return None

    def _check_forwarded(self) -> None:
        if self.input is None:
            raise RuntimeError(f"backward_prop of layer {self!r} was called before forward_prop.")


class ComputeLayer(Layer):
    """A layer with parameters, a ``backend`` and a ``dtype``; both are checked whenever set."""

    dtype: np.dtype

    def __init__(self, backend: str, dtype: DTypeLike) -> None:
        super().__init__()
        self.backend = backend
        self.dtype = check.check_dtype(dtype)

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check.check_backend(value)

    @classmethod
    def shapes_for(cls, config: dict[str, Any]) -> dict[str, Shape]:
        """``{name: shape}`` of the parameters of the layer that ``config`` describes."""
        raise NotImplementedError

    def parameter_shapes(self) -> dict[str, Shape]:
        return dict(self._shapes)

    @property
    def _shapes(self) -> dict[str, Shape]:
        # Sizes never change after __init__; computed once, as the kernels' guard runs per call.
        shapes = self.__dict__.get("_shapes_cache")
        if shapes is None:
            shapes = self.__dict__["_shapes_cache"] = self.shapes_for(self.get_config())
        return shapes

    def parameters(self) -> tuple[NDArray, ...]:
        """The arrays SGD updates in place, in the seed's order."""
        return tuple(getattr(self, name) for name in self._PARAMETERS)

    def _options(self) -> str:
        """The keyword arguments of ``repr`` that differ from their defaults."""
        parts = []
        if self.backend != "numba":
            parts.append(f"backend={self.backend!r}")
        if self.dtype != np.float64:
            parts.append(f"dtype={self.dtype.name!r}")
        return "".join(", " + p for p in parts)

    def _check_parameters(self) -> None:
        """The kernels index the parameters without bounds checks: a user who assigned, say,
        ``layer.weights = something_else`` gets an error here instead of corrupted memory."""
        dtype = self.dtype
        for name, shape in self._shapes.items():
            array = getattr(self, name)
            if (
                type(array) is np.ndarray  # the fast path of check_array, without its message
                and array.shape == shape
                and (array.dtype is dtype or array.dtype == dtype)
                and (flags := array.flags).c_contiguous
                and flags.writeable
            ):
                continue
            check.check_array(
                self,
                name,
                array,
                shape,
                dtype,
                writeable=True,
                hint=f" Assign with layer.{name}[...] = values, or "
                f"np.ascontiguousarray(values, {dtype}).",
            )

    def _check_input(self) -> None:
        """``self.input`` as ``forward_prop`` left it; a reassigned one would be read out of bounds."""
        self._check_forwarded()
        check.check_array(
            self,
            "input",
            self.input,
            tuple(self.input_shape or ()),  # every parametrised layer knows it
            self.dtype,
            hint=" It was changed after forward_prop; call forward_prop again.",
        )

    def _rate(self, rate: Any) -> Any:
        # In the layer's dtype, so a float32 kernel stays in float32 (Numba would promote to float64).
        return self.dtype.type(check.check_rate(rate))

    def apply_gradient(self, grads: Grads, rate: float) -> None:
        rate = self._rate(rate)
        grads = tuple(grads)
        shapes = self.parameter_shapes()
        if len(grads) != len(shapes):
            raise ValueError(
                f"apply_gradient of layer {self!r} expects {len(shapes)} grads "
                f"({', '.join(shapes)}), but received {len(grads)}."
            )
        self._check_parameters()
        for (name, shape), grad in zip(shapes.items(), grads, strict=True):
            grad = check.as_array(self, f"gradient of {name}", grad, shape, self.dtype)
            reference.sgd_update(getattr(self, name), grad, rate)  # p -= g * rate, as the seed

    def _step(self, grads: Grads, rate: Any) -> None:
        """The SGD step on the Numba backend: ``p -= g * rate`` by the step kernel."""
        for name, grad in zip(self._PARAMETERS, grads, strict=True):
            k_sgd.sgd_step(getattr(self, name).reshape(-1), grad.reshape(-1), 1, rate)

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        """SGD step on the parameters; returns the input gradient (from the parameters before it)."""
        rate = self._rate(rate)
        d_input, grads = self.gradient(d_output)
        self.apply_gradient(grads, rate)
        return d_input


_ComputeLayer = ComputeLayer  # the name of earlier releases
