"""The compiled path of ``Network``: a network made only of fastcnn's own layers, all on the Numba
backend with one dtype, trained with ``mse``/``d_mse``, runs its whole per-sample loop in
:mod:`fastcnn.kernels.network` instead of calling each layer from Python. Same arithmetic, same
numbers (the tests compare both paths); anything else takes the per-layer path.
"""

import contextlib

import numba
import numpy as np

from .functions import d_mse, mse
from .kernels import network as k_network
from .layers import Activation, Convolution, Linear, Reshape


class Program:
    """A network as ``kernels.network`` takes it: op codes, sizes, flat parameter views, buffers."""

    def __init__(self, layers, num_threads=1):
        ops, dims, self.params = [], [], []
        self.dtype = self.input_shape = None
        shape = None
        widest = 1
        for layer in layers:
            kind = type(layer)  # exact types: a subclass may change what a method does
            if kind is Reshape:
                in_shape, out_shape = layer.input_shape, layer.output_shape
            elif kind is Activation and layer._kernel():
                in_shape = out_shape = shape
                ops.append(k_network.SIGMOID)
                dims.append((0,) * 5)
            elif kind in (Convolution, Linear) and layer.backend == "numba":
                # Not `self.dtype in (None, ...)`: NumPy reads None as float64 in that comparison.
                if self.dtype is not None and self.dtype != layer.dtype:
                    raise _Unsupported
                self.dtype = layer.dtype
                if kind is Convolution:
                    in_shape, out_shape = layer.input_shape, layer.output_shape
                    ops.append(k_network.CONV)
                    dims.append((*layer.input_shape, layer.filter_size, layer.filter_count))
                    widest = max(widest, out_shape[2])
                else:
                    in_shape, out_shape = (layer.input_size, 1), (layer.output_size, 1)
                    ops.append(k_network.LINEAR)
                    dims.append((layer.input_size, layer.output_size, 0, 0, 0))
                layer._check_parameters()  # a flat view of a wrong array would be a copy, or worse
                self.params.extend(p.reshape(-1) for p in layer.parameters())
            else:
                raise _Unsupported
            if in_shape is None or (shape is not None and np.prod(in_shape) != np.prod(shape)):
                raise _Unsupported  # the per-layer path will say what is wrong
            if self.input_shape is None:
                self.input_shape = tuple(in_shape)
            shape = out_shape
        if self.dtype is None or not self.params:
            raise _Unsupported
        self.output_shape = tuple(shape)
        self.ops = np.array(ops, np.int64)
        self.dims = np.array(dims, np.int64).reshape(len(ops), 5)
        self.params = tuple(self.params)
        sizes = [int(np.prod(self.input_shape))] + [
            _out_size(o, d) for o, d in zip(ops, dims, strict=True)
        ]
        for k, op in enumerate(ops):  # a sigmoid keeps its input's size
            if op == k_network.SIGMOID:
                sizes[k + 1] = sizes[k]
        self.acts = tuple(np.empty(n, self.dtype) for n in sizes)
        self.grads = tuple(np.empty(n, self.dtype) for n in sizes)
        self.row = np.empty(widest, self.dtype)
        self.num_threads = num_threads
        self.partial = np.empty((num_threads, max(sizes)), self.dtype)

    def samples(self, data, shape):
        """``data`` as an (N, size) array in the program's dtype, or None if it does not fit."""
        data = np.asarray(data)
        if data.dtype.kind not in "biuf" or data.shape[1:] != shape:
            return None
        return np.ascontiguousarray(data, self.dtype).reshape(len(data), -1)

    def train(self, xs, ys, rate, losses):
        args = (
            self.ops,
            self.dims,
            self.params,
            self.acts,
            self.grads,
            xs,
            ys,
            self.dtype.type(rate),
            self.row,
        )
        if self.num_threads == 1:
            return k_network.train_mse_sgd(*args, losses)
        with _threads(self.num_threads):
            return k_network.train_mse_sgd_threads(*args, self.partial, losses)

    def predict(self, xs):
        out = np.empty((len(xs), self.acts[-1].size), self.dtype)
        # One thread: a prediction reads each weight once, too little work to share.
        k_network.predict_many(self.ops, self.dims, self.params, self.acts, xs, out)
        return out


@contextlib.contextmanager
def _threads(n):
    """Numba's thread count for this call only: ``set_num_threads`` is per calling thread, and a
    library must not leave it changed. More threads than Numba has are an error, not a wish."""
    if n == 1:
        yield
        return
    if n > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"num_threads={n}, but Numba runs at most {numba.config.NUMBA_NUM_THREADS} threads "
            f"here (NUMBA_NUM_THREADS / the number of cores)."
        )
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


class _Unsupported(Exception):
    pass


def _out_size(op, dims):
    if op == k_network.CONV:
        _d, h, w, s, c = dims
        return c * (h - s + 1) * (w - s + 1)
    return dims[1] if op == k_network.LINEAR else 0


def program(layers, loss=mse, d_loss=d_mse, num_threads=1):
    """A :class:`Program` for ``layers``, or None when the compiled path does not apply."""
    if loss is not mse or d_loss is not d_mse:
        return None
    try:
        return Program(layers, num_threads)
    except _Unsupported:
        return None
