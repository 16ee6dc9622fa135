"""The compiled path of ``Network``: a network made only of registered layers that have a compiled
kind (all on the Numba backend, one dtype), trained with a registered loss, runs its whole loop in
one compiled call of the generated loops (``kernels/_loops.py``, see :mod:`fastcnn._codegen`)
instead of calling each layer from Python. Same arithmetic, same numbers (the tests compare both
paths); anything else takes the per-layer path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from . import _codegen, registry
from .functions import d_mse, mse
from .layers import Layer
from .layers.base import DIMS, Compiled

# Every layer's activations, gradients and weights start on a 64-byte cache line (a whole number
# of LINE values, 64 bytes in float32, 128 in float64): a 64-byte vector load that straddles two
# lines costs two, and the dense kernels load x, d_input and the weights' rows a vector at a time.
LINE = 16

# One layer of a program. Sizes count values; offsets index the flat buffers: x and y the layer's
# input and output in acts/grads; p0, p1 its first and second parameter arrays in params/gparams
# and p_end the end of its parameters; p0_stride the row stride of the first one when it is a
# matrix of rows (padded to whole lines on the per-sample path); scratch:scratch_end its scratch;
# step_start:step_stop the parameters the loop's SGD step moves (those no fused hook moved); dims
# the kind's own integers, named by the kind's kernels module.
LAYER = np.dtype(
    [
        ("op", np.int64),
        ("in_size", np.int64),
        ("out_size", np.int64),
        ("x", np.int64),
        ("y", np.int64),
        ("p0", np.int64),
        ("p1", np.int64),
        ("p_end", np.int64),
        ("p0_stride", np.int64),
        ("scratch", np.int64),
        ("scratch_end", np.int64),
        ("step_start", np.int64),
        ("step_stop", np.int64),
        ("dims", np.int64, (DIMS,)),
    ],
    align=True,
)


def _line(index: int) -> int:
    """``index`` rounded up to a multiple of :data:`LINE`."""
    return -(-index // LINE) * LINE


def _empty_lines(size: int, dtype: Any, zero: bool = False) -> NDArray:
    """``np.empty(size, dtype)`` (``np.zeros`` with ``zero``) starting on a 64-byte boundary
    (NumPy promises 16 bytes)."""
    itemsize = np.dtype(dtype).itemsize
    buffer = (np.zeros if zero else np.empty)(size + 64 // itemsize, dtype)
    skip = (-buffer.ctypes.data % 64) // itemsize
    return buffer[skip : skip + size]


class _Unsupported(Exception):
    pass


class Program:
    """A network as the generated loops take it: one record per layer (:data:`LAYER`, from each
    layer's ``_compiled()``), and flat buffers for the parameters, their gradients, activations,
    gradients and scratch, so one compiled function serves networks of every length.

    The parameters are copied into ``params`` when the program is made (and by :meth:`load`) and
    back into the layers' arrays by :meth:`store`: the layers' arrays are the model, the flat buffer
    a working copy while a chunk of samples runs. With ``padded``, each row-matrix parameter (a
    dense layer's weights) has its rows padded to whole cache lines there, for the per-sample loop;
    the mini-batch loop hands the weights to BLAS as stored and needs them compact.
    """

    spec: Any
    params: NDArray
    gparams: NDArray
    acts: NDArray
    grads: NDArray
    scratch: NDArray
    partial: NDArray | None
    flags: tuple[bool | None, ...]
    output_size: int

    def __init__(
        self,
        layers: Sequence[Layer],
        loss: registry.Loss,
        num_threads: int = 1,
        padded: bool = False,
        fused: bool = True,
        optimizer: bool = False,
    ) -> None:
        self.padded = padded
        self.fused = fused
        # An optimizer steps every parameter itself: the records leave every step to the loop.
        self.optimizer = optimizer
        self.num_threads = num_threads
        self.dtype: np.dtype | None = None
        self._layers = list(layers)
        compiled = [self._describe(layer) for layer in layers]
        kinds = [c.kind for c in compiled if c.kind is not None]
        self.loops: ModuleType = _codegen.loops(kinds, [loss.name], fused)
        missing = sorted(set(kinds) - set(self.loops.KINDS))
        if missing:  # cannot happen: the loops are generated from the registry
            raise RuntimeError(f"the compiled loops have no branch for kind {missing[0]!r}")
        # A loss that fuses with the last layer's kind (cross-entropy after a softmax) runs as one
        # kernel over that layer's input; its entry in the loops is its own.
        entry = loss.name
        if kinds and kinds[-1] in loss.fused:
            entry = f"{loss.name}__{kinds[-1]}"
        self.loss = self.loops.LOSSES.index(entry)
        # Where each parameter array lives: (layer, name, offset, row stride or None).
        self._places: list[tuple[Layer, str, int, int | None]] = []
        records: list[dict[str, Any]] = []
        size: int | None = None  # values flowing between layers
        start = 0  # of the current layer's input in acts/grads
        offset = 0  # end of what acts/grads hold so far
        params = 0  # end of what params holds so far
        self._scratch_sizes: list[tuple[int, int]] = []
        for layer, spec in zip(layers, compiled, strict=True):
            in_size = spec.in_size or size  # an activation takes whatever comes
            if in_size is None:
                raise _Unsupported  # an activation first: no size to start from
            if size is None:
                size = in_size
                offset = size  # the input, at 0
            if in_size != size:
                raise _Unsupported  # the network's own check says what is wrong
            out_size = spec.out_size or in_size
            size = out_size
            if spec.kind is None:  # nothing to do on flat buffers (a Reshape)
                continue
            record: dict[str, Any] = {
                "op": self.loops.KINDS.index(spec.kind),
                "in_size": in_size,
                "out_size": out_size,
                "x": start,
                "y": _line(offset),
            }
            start = record["y"]
            offset = start + out_size
            params = self._lay_out(layer, spec, record, params)
            self._scratch_sizes.append((spec.scratch, spec.scratch_per_sample))
            dims = list(spec.dims) + [0] * (DIMS - len(spec.dims))
            record["dims"] = dims
            records.append(record)
        if self.dtype is None or not records or size is None:
            raise _Unsupported
        # A recarray, whose elements read fields as attributes (``spec[l].op``) in plain Python
        # too (NUMBA_DISABLE_JIT, the coverage run); Numba types it as the same record array.
        self.spec = np.zeros(len(records), LAYER).view(np.recarray)
        for record, values in zip(self.spec, records, strict=True):
            for name, value in values.items():
                record[name] = value
        self.output_size = int(size)
        # Zeroed: an optimizer's step reads the row padding too (which then stays 0).
        self.params = _empty_lines(params, self.dtype, zero=True)
        self.gparams = _empty_lines(params, self.dtype, zero=True)
        self.load()
        self.acts = _empty_lines(offset, self.dtype)
        self.grads = _empty_lines(offset, self.dtype)
        self._scratch_capacity: int | None = None
        self._use_scratch(1)
        self.flags = flags(self.loops, self.spec, entry, fused=entry != loss.name)
        # The parallel dense kernels' per-block input gradients (none on one thread).
        widest = int(self.spec["in_size"].max())
        self.partial = np.empty((num_threads, widest), self.dtype) if num_threads > 1 else None
        self._batch: tuple[int, NDArray, NDArray] | None = None

    def _describe(self, layer: Layer) -> Compiled:
        if registry.LAYERS.get(type(layer).__name__) is not type(layer):
            raise _Unsupported  # a subclass may change what a method does
        spec = layer._compiled()
        if spec is None:
            raise _Unsupported
        return spec

    def _lay_out(self, layer: Layer, spec: Compiled, record: dict, params: int) -> int:
        """Give ``layer``'s parameters their places in ``params``; fill the record's offsets."""
        arrays = [getattr(layer, name) for name in spec.params]
        if arrays:
            dtype = layer.dtype  # type: ignore[attr-defined]
            # Not `self.dtype in (None, ...)`: NumPy reads None as float64 in that comparison.
            if self.dtype is not None and self.dtype != dtype:
                raise _Unsupported
            self.dtype = dtype
            layer._check_parameters()  # type: ignore[attr-defined]
        params = _line(params)
        offsets = []
        for name, array in zip(spec.params, arrays, strict=True):
            row = None
            if name == spec.rows:
                columns = array.shape[1]
                row = _line(columns) if self.padded else columns
                record["p0_stride"] = row
            offsets.append(params)
            self._places.append((layer, name, params, row))
            params += array.size if row is None else array.shape[0] * row
        record["p0"] = offsets[0] if offsets else params
        record["p1"] = offsets[1] if len(offsets) > 1 else params
        record["p_end"] = params
        # The loop's step moves what no fused hook moves; fused parameters come first.
        stepped = self.fused and not self.optimizer
        kind = registry.KINDS[spec.kind] if spec.kind is not None and stepped else None
        fused = kind.fused.get("sample" if self.padded else "batch", ()) if kind else ()
        unfused = [o for name, o in zip(spec.params, offsets, strict=True) if name not in fused]
        record["step_start"] = unfused[0] if unfused else params
        record["step_stop"] = params
        return params

    def _views(self, buffer: NDArray | None = None) -> Iterator[tuple[NDArray, NDArray]]:
        """Each parameter array and its place in ``params`` (or in ``buffer``, laid out alike):
        a view of the same shape."""
        buffer = self.params if buffer is None else buffer
        for layer, name, start, row in self._places:
            array = getattr(layer, name)
            if row is None:
                yield array.reshape(-1), buffer[start : start + array.size]
            else:
                rows, columns = array.shape
                place = buffer[start : start + rows * row].reshape(rows, row)
                yield array, place[:, :columns]

    def state_buffer(self) -> NDArray:
        """A zeroed buffer laid out as ``params``, for an optimizer's state."""
        return _empty_lines(self.params.size, self.dtype, zero=True)

    def scatter(self, flat: NDArray, buffer: NDArray) -> None:
        """``flat`` (the parameter arrays' values one after another, as an optimizer state keeps
        them) into ``buffer``, laid out as ``params``."""
        start = 0
        for array, place in self._views(buffer):
            place[...] = flat[start : start + array.size].reshape(place.shape)
            start += array.size

    def gather(self, buffer: NDArray, flat: NDArray) -> None:
        """The inverse of :meth:`scatter`."""
        start = 0
        for array, place in self._views(buffer):
            flat[start : start + array.size] = place.reshape(-1)
            start += array.size

    def load(self) -> None:
        """Copy the layers' parameters into the flat buffer (a callback may have replaced or
        changed them since: they are checked again)."""
        for layer in {id(layer): layer for layer, *_ in self._places}.values():
            layer._check_parameters()  # type: ignore[attr-defined]
        for array, place in self._views():
            place[...] = array

    def store(self) -> None:
        """Copy the flat buffer back into the layers' parameter arrays, in place."""
        for array, place in self._views():
            array[...] = place

    def samples(self, data: NDArray) -> NDArray:
        """Checked ``data`` (N, ...) as an (N, size) C-contiguous array in the program's dtype."""
        return np.ascontiguousarray(data, self.dtype).reshape(len(data), -1)

    def _rate(self, rate: float) -> Any:
        return np.dtype(self.dtype).type(rate)

    def train(self, xs: NDArray, ys: NDArray, rate: float, losses: NDArray, opt: Any = None) -> int:
        """Per-sample SGD on ``xs``/``ys`` from the flat buffer; the layers' arrays are updated by
        :meth:`store` (the caller's job, once per chunk). Returns the samples done. ``opt``: an
        optimizer's step instead of SGD's (the loops' ``(code, hyper, lrs, taken, s1, s2)``; the
        program must have been made with ``optimizer=True``)."""
        self._check_opt(opt)
        self._use_scratch(1)
        args = (self.spec, self.params, self.gparams, self.acts, self.grads, self.scratch)
        tail = (xs, ys, self._rate(rate), self.loss, losses, opt)
        if self.partial is None:
            return int(self.loops.train_sgd(*args, *tail, *self.flags))
        with _threads(self.num_threads):
            return int(self.loops.train_sgd_threads(*args, *tail, self.partial, *self.flags))

    def _check_opt(self, opt: Any) -> None:
        if (opt is not None) != self.optimizer:
            # The fused hooks' parameters have no step of their own in such a program's records.
            raise RuntimeError("a Program runs an optimizer exactly when made with optimizer=True")

    def _use_scratch(self, capacity: int) -> None:
        """Zeroed scratch for batches of up to ``capacity`` samples, and the records pointed at
        it: each record's fixed part plus its per-sample part times ``capacity``. Made again only
        when the capacity changes (a kind may rely on what it left zero staying zero)."""
        if self._scratch_capacity == capacity:
            return
        offset = 0
        for record, (fixed, per_sample) in zip(self.spec, self._scratch_sizes, strict=True):
            record["scratch"] = offset
            record["scratch_end"] = offset + fixed + per_sample * capacity
            offset = _line(int(record["scratch_end"]))
        self.scratch = _empty_lines(max(offset, 1), self.dtype, zero=True)
        self._scratch_capacity = capacity

    def batch_buffers(self, capacity: int) -> tuple[NDArray, NDArray]:
        """Activations and gradients, each ``capacity`` times the per-sample buffers, for batches
        of up to ``capacity`` samples; made once per capacity and kept."""
        if self.padded:  # BLAS multiplies a dense layer's weights as stored, (m, k) contiguous
            raise RuntimeError("a Program with padded rows runs the per-sample loop only")
        if self._batch is None or self._batch[0] != capacity:
            size = capacity * self.acts.size
            self._batch = (capacity, np.empty(size, self.dtype), np.empty(size, self.dtype))
        self._use_scratch(capacity)
        return self._batch[1], self._batch[2]

    def train_batch(
        self,
        xs: NDArray,
        ys: NDArray,
        batch_size: int,
        rate: float,
        losses: NDArray,
        opt: Any = None,
    ) -> int:
        """Mini-batch SGD over ``xs``/``ys`` in consecutive batches of ``batch_size`` from the flat
        buffer (:meth:`store` is the caller's job); ``losses`` (N,) float64. Returns the samples
        done: N, or the first sample of the batch whose loss was not finite, before its update."""
        # num_threads > 1 gives BLAS (the dense layers' GEMMs, most of the work) that many
        # threads, set by Network.train for the whole call; the compiled loop itself stays on one.
        # Numba's parallel kernels beside OpenBLAS's threads ran ten times slower (both pools
        # spinning on the same two cores).
        self._check_opt(opt)
        acts, grads = self.batch_buffers(batch_size)
        return int(
            self.loops.train_sgd_batch(
                self.spec,
                self.params,
                self.gparams,
                acts,
                grads,
                self.scratch,
                xs,
                ys,
                batch_size,
                self._rate(rate),
                self.loss,
                losses,
                opt,
                *self.flags,
            )
        )

    def predict_batch(self, xs: NDArray, batch_size: int = 128) -> NDArray:
        """The network's outputs, ``batch_size`` samples per pass: one GEMM per dense layer."""
        out = np.empty((len(xs), self.output_size), self.dtype)
        capacity = max(1, min(batch_size, len(xs)))
        acts = self.batch_buffers(capacity)[0]
        kind_flags = self.flags[: len(self.flags) - len(self.loops.LOSSES)]
        loops = self.loops
        loops.predict_batch(
            self.spec, self.params, acts, self.scratch, xs, capacity, out, *kind_flags
        )
        return out

    def entry(self, batch: bool) -> Any:
        """The loop this program's training calls (for ``_jit.is_cached``)."""
        return self.loops.train_sgd_batch if batch else self.loops.train_sgd

    def flag_text(self, predict: bool = False) -> str:
        """How the flags read at the end of a compiled training signature (``bool, none, ...)``),
        or of ``predict_batch``'s, which takes no loss flags."""
        flags = self.flags[: len(self.flags) - len(self.loops.LOSSES)] if predict else self.flags
        return ", ".join("none" if f is None else "bool" for f in flags) + ")"


def flags(
    loops: ModuleType, spec: NDArray, loss: str, fused: bool = False
) -> tuple[bool | None, ...]:
    """The generated loops' compile-time flags for a program: for each kind of ``loops.KINDS``,
    True or None for "has one", "has one as its first layer" (when the kind has work to do there)
    and "has one after the first"; then, for each loss, whether it is ``loss``. Numba removes
    the branches of a None flag before it compiles anything in them, so a network compiles only
    the kinds it has; its length never changes its flags. ``fused``: ``loss`` is fused with the
    last layer and the backward pass starts at the layer before, so that layer's backward
    branches are left out (a LeNet's Softmax: a cold start compiled its never-run gradient)."""
    ops = [int(op) for op in spec["op"]]
    backward = ops[:-1] if fused else ops
    out: list[bool | None] = []
    for op, name in enumerate(loops.KINDS):
        kind = registry.KINDS[name]
        out.append(True if op in ops else None)
        if kind.has_first:
            out.append(True if backward[:1] == [op] else None)
        out.append(True if op in backward[1:] else None)
    out += [True if name == loss else None for name in loops.LOSSES]
    return tuple(out)


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


def program(
    layers: Sequence[Layer],
    loss: Any = mse,
    d_loss: Any = d_mse,
    num_threads: int = 1,
    padded: bool = False,
    fused: bool = True,
    optimizer: bool = False,
) -> Program | None:
    """A :class:`Program` for ``layers``, or None when the compiled path does not apply (a layer
    or a loss pair with no compiled kind, mixed dtypes). ``padded``: dense rows padded to whole
    cache lines, for the per-sample loop only; ``fused=False``, loops without the fused SGD fast
    paths (every gradient written out, then stepped; for measurements); ``optimizer=True``, a
    program whose loops step every parameter with the optimizer passed to each call."""
    from . import losses as _  # noqa: F401  (registers the built-in losses)

    entry = registry.loss_of(loss, d_loss)
    if entry is None:
        return None
    try:
        return Program(layers, entry, num_threads, padded, fused, optimizer)
    except _Unsupported:
        return None
