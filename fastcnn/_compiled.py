"""The compiled path of ``Network``: a network made only of fastcnn's own layers, all on the Numba
backend with one dtype, trained with ``mse``/``d_mse``, runs its whole per-sample loop in
:mod:`fastcnn.kernels.network` instead of calling each layer from Python. Same arithmetic, same
numbers (the tests compare both paths); anything else takes the per-layer path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from .functions import d_mse, mse
from .kernels import network as k_network
from .layers import Layer

# Every layer's activations, gradients and weights start on a 64-byte cache line (a whole number
# of LINE values, 64 bytes in float32, 128 in float64): a 64-byte vector load that straddles two
# lines costs two, and the dense kernels load x, d_input and the weights' rows a vector at a time.
LINE = 16


def _line(index: int) -> int:
    """``index`` rounded up to a multiple of :data:`LINE`."""
    return -(-index // LINE) * LINE


def _empty_lines(size: int, dtype: Any) -> NDArray:
    """``np.empty(size, dtype)`` starting on a 64-byte boundary (NumPy promises 16 bytes)."""
    itemsize = np.dtype(dtype).itemsize
    buffer = np.empty(size + 64 // itemsize, dtype)
    skip = (-buffer.ctypes.data % 64) // itemsize
    return buffer[skip : skip + size]


class Program:
    """A network as ``kernels.network`` takes it: one record per layer (``k_network.LAYER``,
    from each layer's ``_compiled_spec()``), and flat buffers for the parameters, activations and
    gradients, so one compiled function serves networks of every length.

    The parameters are copied into ``params`` when the program is made (and by :meth:`load`)
    and back into the layers' arrays by :meth:`store`: the layers' arrays are the model, the
    flat buffer a working copy while a chunk of samples runs. With ``padded``, each dense layer's
    rows there are padded to whole cache lines (:data:`LINE`; its record's ``stride``), for the
    per-sample loop; the mini-batch loop hands the weights to BLAS as stored and needs them
    compact (``padded=False``, stride = in_size).
    """

    def __init__(self, layers: Sequence[Layer], num_threads: int = 1, padded: bool = False) -> None:
        records: list[dict[str, Any]] = []
        self.arrays: list[NDArray] = []  # the layers' parameter arrays, in params order
        # Where each of them starts in params, and its row stride there (None: stored flat).
        self._places: list[tuple[int, int | None]] = []
        self.padded = padded
        self.dtype: np.dtype | None = None
        size: int | None = None  # values flowing between layers
        start = 0  # of the current layer's input in acts/grads
        offset = 0  # end of what acts/grads hold so far
        params = 0  # end of what params holds so far
        for layer in layers:
            spec = layer._compiled_spec()
            if spec is None:
                raise _Unsupported
            spec = dict(spec)
            parameters = layer.parameters()
            if parameters:
                dtype = getattr(layer, "dtype", None)
                # Not `self.dtype in (None, ...)`: NumPy reads None as float64 in that comparison.
                if self.dtype is not None and self.dtype != dtype:
                    raise _Unsupported
                self.dtype = dtype
                layer._check_parameters()  # type: ignore[attr-defined]
                params = _line(params)
                spec["weights"] = params
                stride = None
                if spec["op"] == k_network.LINEAR:
                    n = spec["in_size"]
                    stride = _line(n) if padded else n
                    spec["stride"] = stride
                    spec["biases"] = params + spec["out_size"] * stride
                else:
                    spec["biases"] = params + parameters[0].size
                for p, row in zip(parameters, (stride, None), strict=False):
                    self.arrays.append(p)
                    self._places.append((params, row))
                    params += p.size if row is None else p.shape[0] * row
            spec.setdefault("in_size", size)
            spec.setdefault("out_size", spec["in_size"])
            if spec["in_size"] is None:
                raise _Unsupported  # an activation first: no size to start from
            if size is None:
                size = spec["in_size"]
                offset = size  # the input, at 0
            if spec["in_size"] != size:
                raise _Unsupported  # the network's own check says what is wrong
            size = spec["out_size"]
            if spec["op"] is None:  # a Reshape: nothing to do on flat buffers
                continue
            spec["x"], spec["y"] = start, _line(offset)
            start = spec["y"]
            offset = start + spec["out_size"]
            records.append(spec)
        if self.dtype is None or not records or size is None:
            raise _Unsupported
        # A recarray, whose elements read fields as attributes (``spec[l].op``) in plain Python
        # too (NUMBA_DISABLE_JIT, the coverage run); Numba types it as the same record array.
        self.spec = np.zeros(len(records), k_network.LAYER).view(np.recarray)
        for record, spec in zip(self.spec, records, strict=True):
            for name, value in spec.items():
                record[name] = value
        self.kinds = kinds(self.spec)
        self.input_size = int(self.spec[0]["in_size"])
        self.output_size = int(size)
        self.params = _empty_lines(params, self.dtype)
        self.load()
        self.acts = _empty_lines(offset, self.dtype)
        self.grads = _empty_lines(offset, self.dtype)
        self.num_threads = num_threads
        widest_dense = max(
            [int(r["in_size"]) for r in self.spec if r["op"] == k_network.LINEAR] or [1]
        )
        self.partial = np.empty((num_threads, widest_dense), self.dtype)
        self._batch: tuple[int, NDArray, NDArray, NDArray] | None = None

    def _views(self) -> Iterator[tuple[NDArray, NDArray]]:
        """Each parameter array and its place in ``params`` (a view of the same shape)."""
        for array, (start, row) in zip(self.arrays, self._places, strict=True):
            if row is None:
                yield array.reshape(-1), self.params[start : start + array.size]
            else:
                rows, columns = array.shape
                place = self.params[start : start + rows * row].reshape(rows, row)
                yield array, place[:, :columns]

    def load(self) -> None:
        """Copy the layers' parameters into the flat buffer."""
        for array, place in self._views():
            place[...] = array

    def store(self) -> None:
        """Copy the flat buffer back into the layers' parameter arrays, in place."""
        for array, place in self._views():
            array[...] = place

    def samples(self, data: NDArray) -> NDArray:
        """Checked ``data`` (N, ...) as an (N, size) C-contiguous array in the program's dtype."""
        return np.ascontiguousarray(data, self.dtype).reshape(len(data), -1)

    def train(self, xs: NDArray, ys: NDArray, rate: float, losses: NDArray) -> int:
        """Train on ``xs``/``ys`` from the flat buffer; the layers' arrays are updated by
        :meth:`store` (the caller's job, once per chunk). Returns the samples done."""
        dtype = np.dtype(self.dtype)
        args = (
            self.spec,
            self.params,
            self.acts,
            self.grads,
            xs,
            ys,
            dtype.type(rate),
        )
        if self.num_threads == 1:
            return k_network.train_mse_sgd(*args, *self.kinds, losses)
        with _threads(self.num_threads):
            return k_network.train_mse_sgd_threads(*args, self.partial, *self.kinds, losses)

    def batch_buffers(self, capacity: int) -> tuple[NDArray, NDArray, NDArray]:
        """Activations, gradients (each ``capacity`` times the per-sample buffers) and gradient
        sums (as long as ``params``) for batches of up to ``capacity`` samples; made once per
        capacity and kept."""
        if self.padded:  # BLAS multiplies a dense layer's weights as stored, (m, k) contiguous
            raise RuntimeError("a Program with padded rows runs the per-sample loop only")
        if self._batch is None or self._batch[0] != capacity:
            size = capacity * self.acts.size
            buffers = (np.empty(size, self.dtype), np.empty(size, self.dtype))
            self._batch = (capacity, *buffers, np.empty_like(self.params))
        return self._batch[1:]

    def train_batch(
        self, xs: NDArray, ys: NDArray, batch_size: int, rate: float, losses: NDArray
    ) -> int:
        """Mini-batch SGD over ``xs``/``ys`` in consecutive batches of ``batch_size`` from the flat
        buffer (:meth:`store` is the caller's job); ``losses`` (N,) float64. Returns the samples
        done: N, or the first sample of the batch whose loss was not finite, before its update."""
        # num_threads > 1 gives BLAS (the dense layers' GEMMs, most of the work) that many
        # threads, set by Network.train for the whole call; the compiled loop itself stays on one.
        # Numba's parallel kernels beside OpenBLAS's threads ran 10x slower here (both pools
        # spinning on the same two cores; measured 1,100-1,300 vs 7,700-18,000 samples/s).
        acts, grads, sums = self.batch_buffers(batch_size)
        return int(
            k_network.train_mse_sgd_batch(
                self.spec,
                self.params,
                acts,
                grads,
                sums,
                xs,
                ys,
                batch_size,
                np.dtype(self.dtype).type(rate),
                losses,
            )
        )

    def predict_batch(self, xs: NDArray, batch_size: int = 128) -> NDArray:
        """:meth:`predict`, ``batch_size`` samples per pass: one GEMM per dense layer and batch."""
        out = np.empty((len(xs), self.output_size), self.dtype)
        capacity = max(1, min(batch_size, len(xs)))
        acts = self.batch_buffers(capacity)[0]
        k_network.predict_batch(self.spec, self.params, acts, xs, capacity, out)
        return out


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Numba's thread count for this call only: ``set_num_threads`` is per calling thread, and a
    library must not leave it changed. More threads than Numba has are an error, not a wish."""
    if n == 1:
        yield
        return
    limit: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if n > limit:
        raise ValueError(
            f"num_threads={n}, but Numba runs at most {limit} threads "
            f"here (NUMBA_NUM_THREADS / the number of cores)."
        )
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def kinds(spec: NDArray) -> tuple[bool | None, bool | None]:
    """The backward branches a program needs, as the training loops' arguments
    ``(inner_conv, first_dense)``: each True, or None when the program has no such layer (a
    convolution after the first layer, whose input gradient is needed; a dense first layer, whose
    input gradient is not).

    Numba removes an ``x is None`` branch whose ``x`` is typed None before it compiles anything
    in it, so a program compiles only the kernels it runs: the seed's CNN (a first convolution,
    dense layers after it) leaves out two of the four, 1.3 s of a 7 s cold start (measured). A
    network's length never changes ``kinds``: at most four compiles per dtype, whatever the depth.
    """
    ops = [int(op) for op in spec["op"]]
    inner_conv = True if k_network.CONV in ops[1:] else None
    first_dense = True if ops[0] == k_network.LINEAR else None
    return inner_conv, first_dense


class _Unsupported(Exception):
    pass


def program(
    layers: Sequence[Layer],
    loss: Any = mse,
    d_loss: Any = d_mse,
    num_threads: int = 1,
    padded: bool = False,
) -> Program | None:
    """A :class:`Program` for ``layers``, or None when the compiled path does not apply.
    ``padded``: dense rows padded to whole cache lines, for the per-sample loop only."""
    if loss is not mse or d_loss is not d_mse:
        return None
    try:
        return Program(layers, num_threads, padded)
    except _Unsupported:
        return None
