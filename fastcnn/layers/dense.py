"""The fully connected layer, ``Y = W X + B``: its class, its reference maths (the seed's
``np.dot``, in :mod:`fastcnn.reference`), and its kind on the compiled loops, whose hooks are in
``kernels/dense.py`` (one pass over the weights per sample and direction; BLAS GEMMs for batches).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .. import _validation as check
from .. import reference, registry
from ..kernels import dense as k_dense
from .base import Compiled, ComputeLayer, Grads, Shape, options_fault, positive_int_fault


@registry.register_layer
class Linear(ComputeLayer):
    """Fully connected layer ``Y = W X + B``.

    Parameters
    ----------
    input_size, output_size : int
    backend : {"numba", "scipy"}, keyword-only
    dtype : float64 or float32, keyword-only
    rng : None, int, np.random.RandomState or np.random.Generator, keyword-only
        Source of the initial weights; None draws from NumPy's global state as the seed does.
    init : {"notebook", "xavier", "he"}, keyword-only
        ``"notebook"``: ``weights = randn(out, in)`` then ``biases = randn(out, 1)``, as the
        notebook does. ``"xavier"``: Glorot-normal weights, standard deviation
        ``sqrt(2 / (in + out))``, and zero biases. ``"he"``: Kaiming-normal weights (fan in, for
        ReLU), standard deviation ``sqrt(2 / in)``, and zero biases. ``"seed"`` is a deprecated
        name of ``"notebook"``.

    Attributes
    ----------
    weights : ndarray of shape (output_size, input_size)
    biases : ndarray of shape (output_size, 1)
    input : ndarray of shape (input_size, 1), the last input seen by ``forward_prop``
    """

    _PARAMETERS = ("weights", "biases")
    CONFIG_FIELDS = ("input_size", "output_size", "dtype", "backend")

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        backend: str = "numba",
        dtype: DTypeLike = np.float64,
        rng: Any = None,
        init: str = "notebook",
    ) -> None:
        self.input_size = check.check_size("input_size", input_size)
        self.output_size = check.check_size("output_size", output_size)
        super().__init__(backend, dtype)
        randn = check.random_normal(rng)
        init = check.check_init(init)
        if init == "notebook":
            weights = randn(output_size, input_size)
            biases = randn(output_size, 1)
        else:
            # Glorot: the mean of fan in and fan out; He (Kaiming, for ReLU): fan in alone.
            fans = input_size + output_size if init == "xavier" else input_size
            weights = randn(output_size, input_size) * np.sqrt(2 / fans)
            biases = np.zeros((output_size, 1))
        self.weights: NDArray = weights.astype(self.dtype)
        self.biases: NDArray = biases.astype(self.dtype)

    @property
    def input_shape(self) -> Shape:  # type: ignore[override]
        return (self.input_size, 1)

    @property
    def output_shape(self) -> Shape:  # type: ignore[override]
        return (self.output_size, 1)

    def get_config(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "output_size": self.output_size,
            "dtype": self.dtype.name,
            "backend": self.backend,
        }

    @classmethod
    def shapes_for(cls, config: dict[str, Any]) -> dict[str, Shape]:
        n, m = config["input_size"], config["output_size"]
        return {"weights": (m, n), "biases": (m, 1)}

    def __repr__(self) -> str:
        return f"Linear({self.input_size}, {self.output_size}{self._options()})"

    @classmethod
    def config_fault(cls, config: dict[str, Any]) -> str | None:
        return positive_int_fault(config, "input_size", "output_size") or options_fault(config)

    @classmethod
    def signature(cls, config: dict[str, Any]) -> str:
        return f"Linear({config['input_size']}, {config['output_size']})"

    def _compiled(self) -> Compiled | None:
        if self.backend != "numba":
            return None
        n, m = self.input_size, self.output_size
        # The mini-batch forward's GEMM writes (m, B) into scratch before adding the biases.
        return Compiled(
            "dense", n, m, params=self._PARAMETERS, rows="weights", scratch_per_sample=m
        )

    def forward_prop(self, input: Any) -> NDArray:
        """``weights @ input + biases``; input of shape (input_size, 1) -> (output_size, 1)."""
        self.input = check.as_array(self, "Input", input, (self.input_size, 1), self.dtype)
        if self.backend == "scipy":
            return reference.dense_forward(self.weights, self.input, self.biases)
        self._check_parameters()
        out = np.empty((self.output_size, 1), self.dtype)
        k_dense.dense_forward(self.weights, self.input, self.biases, out)
        return out

    def gradient(self, d_output: Any) -> tuple[NDArray, Grads]:
        """``(weights.T @ d_output, (d_output @ input.T, d_output))``; changes nothing."""
        self._check_input()
        d_output = check.as_array(self, "d_output", d_output, (self.output_size, 1), self.dtype)
        if self.backend == "scipy":
            d_input, d_weights = reference.dense_gradient(self.weights, self.input, d_output)
            return d_input, (d_weights, d_output.copy())
        self._check_parameters()
        d_weights = np.empty((self.output_size, self.input_size), self.dtype)
        d_input = np.empty((self.input_size, 1), self.dtype)
        k_dense.dense_gradient(self.weights, self.input, d_output, d_weights, d_input)
        return d_input, (d_weights, d_output.copy())

    def backward_prop(self, d_output: Any, rate: float) -> NDArray:
        """SGD step on weights and biases; returns ``weights.T @ d_output`` (weights before it)."""
        if self.backend == "scipy":
            return super().backward_prop(d_output, rate)
        self._check_input()
        d_output = check.as_array(self, "d_output", d_output, (self.output_size, 1), self.dtype)
        rate = self._rate(rate)
        self._check_parameters()
        d_input = np.empty((self.input_size, 1), self.dtype)
        k_dense.dense_backward_sgd(self.weights, self.biases, self.input, d_output, rate, d_input)
        return d_input


registry.register_kind(
    "dense",
    forward=k_dense.forward,
    backward=k_dense.backward,
    backward_first=k_dense.backward_first,
    backward_sgd=k_dense.backward_sgd,
    backward_first_sgd=k_dense.backward_first_sgd,
    forward_batch=k_dense.forward_batch,
    backward_batch=k_dense.backward_batch,
    backward_first_batch=k_dense.backward_first_batch,
    backward_sgd_batch=k_dense.backward_sgd_batch,
    backward_first_sgd_batch=k_dense.backward_first_sgd_batch,
    # The fast paths of plain SGD: per sample the one-pass backward moves weights and biases; per
    # batch the GEMM that sums the weights' gradient moves them, and the biases' sums are left to
    # the loop's step. (The gradient-only hooks write the weights' gradient out and read it back:
    # the README's Speed section has both measured.)
    fused={"sample": ("weights", "biases"), "batch": ("weights",)},
)
