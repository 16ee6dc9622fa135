"""The seed's ``Network``: a list of layers, per-sample prediction and per-sample SGD training."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _compiled, _modelfile, registry
from . import _validation as check
from . import optim as _optim
from ._threads import blas_threads
from ._validation import check_backend, check_size
from .layers import Layer

# Samples per compiled call: small enough that progress and Ctrl-C come every few tens of ms.
_CHUNK = 256


class ResumeError(ValueError):
    """``train(resume=PATH)`` cannot continue from that file (no training state in it, or one
    made with other settings)."""


class History(list):
    """Per-epoch training losses (a list, as the seed's epoch lines), plus ``accuracy``: per-epoch
    accuracy on the validation data, when ``train`` was given some."""

    def __init__(self, losses: Sequence[float] = (), accuracy: Sequence[float] = ()) -> None:
        super().__init__(losses)
        self.accuracy = list(accuracy)

    @property
    def loss(self) -> list[float]:
        return list(self)

    def __repr__(self) -> str:
        # A notebook cell ending in ``net.train(...)`` shows this line, not 10,000 floats.
        last = f", last loss {self[-1]}" if self else ""
        acc = f", last accuracy {self.accuracy[-1]}" if self.accuracy else ""
        return f"<History: {len(self)} epochs{last}{acc}>"


class Network:
    """A feed-forward network: ``predict`` runs the layers in order on one sample.

    Parameters
    ----------
    layers : list of Layer
    backend : {"numba", "scipy"} or None, keyword-only
        When given, sets ``backend`` on every layer that has one.
    num_threads : int, keyword-only
        Threads the compiled training path may use (default 1). Two threads split the large dense
        layers across two cores; their sums are combined in a fixed order, so a run is repeatable,
        but its last bits may differ from a one-thread run.
    """

    def __init__(
        self, layers: list[Layer], *, backend: str | None = None, num_threads: int = 1
    ) -> None:
        self.layers = layers
        self.num_threads = check_size("num_threads", num_threads)
        if backend is not None:
            check_backend(backend)
            for layer in layers:
                if hasattr(layer, "backend"):
                    layer.backend = backend

    def __repr__(self) -> str:
        inner = "".join(f"\n    {layer!r}," for layer in self.layers)
        return f"Network([{inner}\n])"

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """The shape of one sample, from the first layer that knows it (None if unknown)."""
        layer = self._input_layer()
        return None if layer is None else layer.input_shape

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        """The shape of the network's output, from the last layer that knows it (None if unknown)."""
        for layer in reversed(self.layers):
            if layer.output_shape is not None:
                return tuple(layer.output_shape)
            if not layer._KEEPS_SHAPE:
                return None
        return None

    def _input_layer(self) -> Layer | None:
        for layer in self.layers:
            if layer.input_shape is not None:
                return layer
            if not layer._KEEPS_SHAPE:
                return None
        return None

    def _check_chain(self) -> None:
        """Each layer's output fits the next layer's input (looking through activations)."""
        previous: tuple[int, Layer] | None = None
        for i, layer in enumerate(self.layers):
            if previous is not None and layer.input_shape is not None:
                j, before = previous
                have, want = tuple(before.output_shape or ()), tuple(layer.input_shape)
                fits = np.prod(have) == np.prod(want) if layer._INPUT_BY_SIZE else have == want
                if not fits:
                    raise ValueError(
                        f"layer {i} ({layer!r}) expects input of shape {want}, but layer {j} "
                        f"({before!r}) outputs shape {have}."
                    )
            if previous is not None and layer.input_shape is None:
                j, before = previous
                have = tuple(before.output_shape or ())
                fault = layer.input_fault(have)
                if fault:
                    raise ValueError(
                        f"layer {i} ({fault}) cannot follow layer {j} ({before!r}), which outputs "
                        f"shape {have}."
                    )
            if layer.output_shape is not None:
                previous = (i, layer)
            elif not layer._KEEPS_SHAPE:
                previous = None

    def _check_inputs(self, name: str, data: Any, finite: bool = True) -> NDArray:
        layer = self._input_layer()
        shape = None if layer is None else layer.input_shape
        return check.check_samples(
            name, data, shape, exact=not (layer is not None and layer._INPUT_BY_SIZE), finite=finite
        )

    def predict(self, input: Any) -> Any:
        """The network's output for one sample ``input``."""
        layer = self._input_layer()
        if layer is not None:
            shape = np.shape(input)
            want = tuple(layer.input_shape or ())
            if shape != want and (not layer._INPUT_BY_SIZE or np.prod(shape) != np.prod(want)):
                raise ValueError(
                    f"predict takes one sample of shape {want} (the network's input), but "
                    f"received shape {shape}; for N samples, loop or use evaluate."
                )
        output = input
        for layer in self.layers:
            output = layer.forward_prop(output)
        return output

    def predict_batch(self, xs: Any) -> NDArray:
        """The network's outputs for N samples at once.

        Parameters
        ----------
        xs : array of shape (N, *input_shape)

        Returns
        -------
        ndarray of shape (N, outputs), outputs being the size of one output ((N, 10) for MNIST):
        ``np.stack([predict(x).ravel() for x in xs])`` to float tolerance. On the compiled path
        the samples go through in batches (one matrix product per dense layer and batch), with
        BLAS on ``num_threads`` threads.
        """
        self._check_chain()
        xs = self._check_inputs("xs", xs, finite=False)
        return self._predict_batch(xs)

    def _predict_batch(self, xs: NDArray) -> NDArray:
        program = _compiled.program(self.layers, num_threads=self.num_threads)
        if program is not None:
            with blas_threads(self.num_threads):
                return program.predict_batch(program.samples(xs))
        if len(xs) == 0:
            shape = self.output_shape
            if shape is None:
                raise ValueError("predict_batch got no samples, and the output size is unknown.")
            return np.empty((0, int(np.prod(shape))))
        return np.stack([np.ravel(self.predict(x)) for x in xs])

    def evaluate(self, data_x: Any, labels: Any) -> float:
        """Fraction of samples whose ``argmax`` output equals ``labels`` (ints, or one-hot arrays)."""
        self._check_chain()
        xs = self._check_inputs("data_x", data_x, finite=False)
        labels = np.asarray(labels)
        if labels.dtype.kind not in "biuf":
            raise TypeError(f"labels must be numeric, but they have dtype {labels.dtype}.")
        if labels.ndim == 0 or len(xs) != len(labels):
            raise ValueError(f"evaluate got {len(xs)} samples but {labels.size} labels.")
        if len(labels) == 0:
            raise ValueError("evaluate needs at least one sample.")
        if labels.ndim > 1:
            labels = labels.reshape(len(labels), -1).argmax(axis=1)
        predicted = self._predict_batch(xs).argmax(axis=1)
        return float(np.mean(predicted == labels))

    def save(self, path: Any) -> None:
        """Write the network to ``path`` (``.npz``); :func:`fastcnn.load` reads it back exactly.
        After ``train``, the file also holds where training stood (see ``train``'s ``resume``)."""
        _modelfile.save(self.layers, path, training=getattr(self, "_checkpoint", None))

    def train(
        self,
        data_x: Any,
        data_y: Any,
        loss: Callable[[Any, Any], Any],
        d_loss: Callable[[Any, Any], Any],
        epochs: int,
        rate: float | None,
        *,
        verbose: bool = True,
        validation_data: tuple[Any, Any] | None = None,
        progress: Callable[[int, int, float], Any] | None = None,
        on_epoch: Callable[[int, History], Any] | None = None,
        batch_size: int = 1,
        shuffle: bool = False,
        rng: Any = None,
        optimizer: _optim.Optimizer | None = None,
        schedule: _optim.Schedule | None = None,
        resume: Any = None,
    ) -> History:
        """SGD over ``data_x``/``data_y`` for ``epochs`` epochs with step ``rate``: per sample, as
        the seed does, or in mini-batches.

        Prints ``Epoch {e}, total loss: {mean loss}`` after each epoch, as the seed does, unless
        ``verbose=False``. ``validation_data=(x, labels)`` adds the accuracy on it to each line and
        to the returned :class:`History`.

        ``progress(epoch, done, running_loss)`` is called while an epoch runs (after every sample,
        or every few hundred samples on the compiled path) with the 1-based epoch, the samples done
        in it and their mean loss so far. ``on_epoch(epoch, history)`` is called after each epoch's
        line, for instance to save the model: a ``KeyboardInterrupt`` then loses at most the epoch
        under way.

        ``batch_size=B`` (default 1, the seed's per-sample SGD): each consecutive slice of B
        samples (the last may be shorter; a B larger than the data is one batch) moves the
        parameters once, by ``rate`` times the mean of its per-sample gradients taken at the
        parameters before the slice, as PyTorch's ``MSELoss()`` and ``SGD`` do. The epoch line is
        the mean of the per-sample losses either way. ``shuffle=True`` visits the samples in the
        order ``permutation(n)`` drawn from ``rng`` at the start of every epoch: ``rng`` None is
        NumPy's global state (``np.random.seed`` repeats it), else an int seed, a
        ``np.random.RandomState`` or a ``np.random.Generator``.

        ``optimizer`` (a :mod:`fastcnn.optim` optimizer; default None, the seed's SGD by ``rate``,
        with its fused fast paths) updates the parameters instead, after every sample or batch,
        on every path. Its learning rate: ``rate`` when the optimizer has none of its own
        (``SGD()``, whose ``lr`` defaults to None), else the optimizer's (``Adam()`` has 1e-3);
        ``rate`` may then be None or the same number, and a different number is refused, since
        either reading could be the wrong one. ``schedule`` (a :mod:`fastcnn.optim` schedule)
        varies that rate per epoch or per step, as PyTorch's scheduler of the same name does
        when stepped after each epoch (per step for ``OneCycleLR``).

        After every epoch the network keeps where training stands: the epoch, the optimizer's
        state, the schedule (a function of the epoch), the shuffling generator's state; ``save``
        (and ``fastcnn.save``) writes it into the model file. ``resume=PATH`` loads the
        parameters and that state from such a file and runs the epochs after the saved one up to
        ``epochs`` (the total, as Keras's ``initial_epoch`` counts): the result is bit for bit
        the run that never stopped, given the same data, loss, optimizer, schedule, batch size
        and ``shuffle``/``rng`` (a different one is refused).

        Raises
        ------
        TypeError, ValueError
            Before any update, for a ``rate`` that is not a finite real number, samples or
            targets whose shapes do not fit the network, integer class labels given as targets,
            non-numeric or non-finite data.
        FloatingPointError
            When a sample's loss is not finite, before that sample's update (that batch's, with
            ``batch_size`` > 1): the weights stay as they were after the previous one.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}.")
        optimizer, base_lr = _resolve_optimizer(optimizer, schedule, rate)
        batch_size = check_size("batch_size", batch_size)
        generator = _generator(rng) if shuffle else None
        self._check_chain()
        data_x = self._check_inputs("data_x", data_x)
        data_y = check.check_targets(data_y, self.output_shape)
        _check_loss_targets(loss, d_loss, data_y)
        if len(data_x) != len(data_y):
            raise ValueError(
                f"train got {len(data_x)} inputs (data_x) but {len(data_y)} targets (data_y); "
                f"they must pair up one to one."
            )
        if len(data_x) == 0:
            raise ValueError("train needs at least one sample; data_x is empty.")
        run = _Run(optimizer, schedule, base_lr, batch_size, shuffle)
        first_epoch = 0
        params = [p for layer in self.layers for p in layer.parameters()]
        if resume is not None:
            first_epoch = run.resume(resume, self.layers, generator)
        elif run.optimizer is not None:
            run.state = run.optimizer.init(params)
        # From here on the inputs are right; the compiled path is a choice, never an error.
        # Per-sample training streams each dense layer's rows once a sample: padded to whole
        # cache lines (see kernels/dense.py). Mini-batches hand the weights to BLAS as they are.
        padded = batch_size == 1
        program = _compiled.program(
            self.layers, loss, d_loss, self.num_threads, padded, optimizer=run.stepped
        )
        if program is not None:
            data_x, data_y = program.samples(data_x), program.samples(data_y)
        history = History()
        steps = -(-len(data_x) // min(batch_size, len(data_x)))
        # BLAS (the batch path's matrix products) on num_threads threads for the whole call.
        with blas_threads(self.num_threads) if batch_size > 1 else contextlib.nullcontext():
            for e in range(first_epoch, epochs):
                order = None if generator is None else generator.permutation(len(data_x))
                run.epoch_rates(e, steps)
                total_loss = self._run_epoch(
                    program, data_x, data_y, order, batch_size, loss, d_loss, run, e, progress
                )
                self._checkpoint = run.checkpoint(e + 1, generator)
                self._end_epoch(e, total_loss, history, validation_data, verbose, on_epoch)
        return history

    def _run_epoch(
        self,
        program: _compiled.Program | None,
        data_x: NDArray,
        data_y: NDArray,
        order: NDArray | None,
        batch_size: int,
        loss: Callable,
        d_loss: Callable,
        run: _Run,
        e: int,
        progress: Callable | None,
    ) -> float:
        """One epoch on whichever path applies, over the samples in ``order`` if given
        (``data_x``/``data_y`` already as the program takes them when there is one)."""
        xs, ys = data_x, data_y
        # A batch larger than the data is one batch of all of it (and needs no larger buffers).
        batch_size = min(batch_size, len(xs))
        if order is not None:
            xs, ys = xs[order], ys[order]
        if program is not None:
            return self._compiled_epoch(program, xs, ys, batch_size, loss, d_loss, run, e, progress)
        if run.stepped:
            return self._optimizer_epoch(xs, ys, batch_size, loss, d_loss, run, e, progress)
        if batch_size == 1:
            return self._epoch(xs, ys, loss, d_loss, run.rate, e, progress)
        return self._batch_epoch(xs, ys, batch_size, loss, d_loss, run.rate, e, progress)

    def _end_epoch(
        self,
        e: int,
        total_loss: float,
        history: History,
        validation_data: tuple[Any, Any] | None,
        verbose: bool,
        on_epoch: Callable | None,
    ) -> None:
        history.append(total_loss)
        line = f"Epoch {e + 1}, total loss: {total_loss}"
        if validation_data is not None:
            history.accuracy.append(self.evaluate(*validation_data))
            line += f", accuracy: {history.accuracy[-1]}"
        if verbose:
            print(line)
        if on_epoch is not None:
            on_epoch(e + 1, history)

    def _epoch(
        self,
        data_x: NDArray,
        data_y: NDArray,
        loss: Callable,
        d_loss: Callable,
        rate: float,
        e: int,
        progress: Callable | None,
    ) -> float:
        """One epoch the seed's way: every layer called from Python, sample by sample."""
        total_loss = 0.0
        for k, (x, y) in enumerate(zip(data_x, data_y, strict=True)):
            predicted = self.predict(x)
            sample_loss = loss(predicted, y)
            if not np.isfinite(sample_loss):
                raise _not_finite(e, k, sample_loss)
            total_loss += sample_loss
            grad = d_loss(predicted, y)
            for layer in reversed(self.layers):
                grad = layer.backward_prop(grad, rate)
            if progress is not None:
                progress(e + 1, k + 1, total_loss / (k + 1))
        return total_loss / len(data_x)

    def _compiled_epoch(
        self,
        program: _compiled.Program,
        xs: NDArray,
        ys: NDArray,
        batch_size: int,
        loss: Callable,
        d_loss: Callable,
        run: _Run,
        e: int,
        progress: Callable | None,
    ) -> float:
        """:meth:`_epoch` (``batch_size`` 1) or :meth:`_batch_epoch` in compiled chunks of whole
        batches; the same arithmetic (mini-batch sums run in another order). The program trains a
        copy of the parameters, stored back into the layers after every chunk that a callback may
        see and when the epoch ends (or stops)."""
        n = len(xs)
        # The per-sample loop's losses are in the program's dtype (its compiled signature).
        losses = np.empty(n, program.dtype if batch_size == 1 else np.float64)
        chunk = batch_size * max(1, _CHUNK // batch_size)
        program.load()  # on_epoch may have changed the weights since the last epoch
        rate = run.rate
        run.enter(program)
        done = 0
        try:
            while done < n:
                stop = min(n, done + chunk)
                part = (xs[done:stop], ys[done:stop])
                opt = run.chunk(done // batch_size)
                if batch_size == 1:
                    k = done + program.train(*part, rate, losses[done:stop], opt)
                    run.done(k - done)
                    if k < stop:
                        raise _not_finite(e, k, "not finite")
                else:
                    k = done + program.train_batch(*part, batch_size, rate, losses[done:stop], opt)
                    run.done(
                        -(-(k - done) // batch_size) if k == stop else (k - done) // batch_size
                    )
                    if k < stop:
                        batch = losses[k : min(stop, k + batch_size)]
                        bad = k + int(np.flatnonzero(~np.isfinite(batch))[0])
                        raise _not_finite_batch(e, k, bad, losses[bad])
                done = stop
                if progress is not None:
                    # The layers get the trained parameters, the callback sees them, and the
                    # program takes them back (the callback may have changed or replaced them).
                    program.store()
                    progress(e + 1, done, losses[:done].sum() / done)
                    program.load()
        finally:
            program.store()
            run.leave(program)
        # cumsum adds in order from the first sample, as the seed's `total_loss += loss` does.
        return float(np.cumsum(losses)[-1] / n)

    def _batch_epoch(
        self,
        data_x: NDArray,
        data_y: NDArray,
        batch_size: int,
        loss: Callable,
        d_loss: Callable,
        rate: float,
        e: int,
        progress: Callable | None,
    ) -> float:
        """One epoch of mini-batches, every layer called from Python: per sample, the forward
        pass and ``gradient`` (which changes nothing), the gradients summed over the batch; then
        each layer's ``apply_gradient(sum / count, rate)``. The oracle of the compiled path."""
        total_loss = 0.0
        n = len(data_x)
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            sums: list[list[NDArray]] = []
            for k in range(start, stop):
                predicted = self.predict(data_x[k])
                sample_loss = loss(predicted, data_y[k])
                if not np.isfinite(sample_loss):
                    raise _not_finite_batch(e, start, k, sample_loss)
                total_loss += sample_loss
                grad = d_loss(predicted, data_y[k])
                grads = []
                for layer in reversed(self.layers):
                    grad, layer_grads = layer.gradient(grad)
                    grads.append(list(layer_grads))
                if k == start:
                    sums = [[np.array(g, copy=True) for g in gs] for gs in grads]
                else:
                    for total, gs in zip(sums, grads, strict=True):
                        for t, g in zip(total, gs, strict=True):
                            t += g
            count = stop - start
            for layer, total in zip(reversed(self.layers), sums, strict=True):
                if total:
                    layer.apply_gradient(tuple(t / count for t in total), rate)
            if progress is not None:
                progress(e + 1, stop, total_loss / stop)
        return total_loss / n

    def _optimizer_epoch(
        self,
        data_x: NDArray,
        data_y: NDArray,
        batch_size: int,
        loss: Callable,
        d_loss: Callable,
        run: _Run,
        e: int,
        progress: Callable | None,
    ) -> float:
        """One epoch with an optimizer, every layer called from Python (the compiled paths'
        oracle): per sample, the forward pass and ``gradient``; the batch's gradients summed,
        divided by its size, and the optimizer's ``reference_step`` (plain NumPy) on every
        layer's parameters."""
        params = [p for layer in self.layers for p in layer.parameters()]
        total_loss = 0.0
        n = len(data_x)
        for index, start in enumerate(range(0, n, batch_size)):
            stop = min(n, start + batch_size)
            sums: list[NDArray] = []
            for k in range(start, stop):
                predicted = self.predict(data_x[k])
                sample_loss = loss(predicted, data_y[k])
                if not np.isfinite(sample_loss):
                    if batch_size == 1:
                        raise _not_finite(e, k, sample_loss)
                    raise _not_finite_batch(e, start, k, sample_loss)
                total_loss += sample_loss
                grad = d_loss(predicted, data_y[k])
                per_layer = []
                for layer in reversed(self.layers):
                    grad, layer_grads = layer.gradient(grad)
                    per_layer.append(list(layer_grads))
                grads = [g for gs in reversed(per_layer) for g in gs]
                if k == start:
                    sums = [np.array(g, copy=True) for g in grads]
                else:
                    for t, g in zip(sums, grads, strict=True):
                        t += g
            count = stop - start
            means = sums if count == 1 else [t / t.dtype.type(count) for t in sums]
            run.optimizer.reference_step(params, means, run.state, run.rates[index])
            if progress is not None:
                progress(e + 1, stop, total_loss / stop)
        return total_loss / n


class _Run:
    """What ``train`` steps with: the optimizer (None: the seed's SGD, fused), its state, the
    schedule and each step's rate; and the checkpoint after an epoch."""

    def __init__(
        self,
        optimizer: _optim.Optimizer | None,
        schedule: _optim.Schedule | None,
        base_lr: float,
        batch_size: int,
        shuffle: bool,
    ) -> None:
        # Any: set together with stepped, which every use checks first.
        self.optimizer: Any = optimizer
        self.schedule, self.base_lr = schedule, base_lr
        self.batch_size, self.shuffle = batch_size, shuffle
        self.state: Any = None  # an OptimizerState whenever there is an optimizer
        # Plain SGD at one rate per epoch keeps the seed's fused SGD loops; anything else steps
        # with the optimizer (a per-step schedule needs a rate per step even for plain SGD).
        plain = optimizer is None or (isinstance(optimizer, _optim.SGD) and optimizer.plain)
        self.stepped = not (plain and (schedule is None or not schedule.per_step))
        if self.stepped and optimizer is None:
            self.optimizer = _optim.SGD()  # the seed's SGD at the schedule's rate of each step
        self.rate: Any = base_lr
        self.rates = np.full(1, base_lr)
        self._opt: tuple | None = None
        self._buffers: list[NDArray] = []

    def epoch_rates(self, e: int, steps: int) -> None:
        """The rate of each of epoch ``e``'s ``steps`` steps (``rates``; ``rate`` the first)."""
        if self.schedule is None:
            rates = [self.base_lr] * steps
        elif self.schedule.per_step:
            rates = [self.schedule.lr_at(self.base_lr, e, s, steps) for s in range(steps)]
        else:
            rates = [self.schedule.lr_at(self.base_lr, e)] * steps
        self.rates = np.array(rates, np.float64)
        self.rate = rates[0] if rates else self.base_lr

    # the compiled loops' view of the optimizer ---------------------------------------------------

    def enter(self, program: _compiled.Program) -> None:
        """The state into buffers laid out as the program's parameters."""
        if not self.stepped:
            return
        names = self.optimizer.buffers()
        if len(self._buffers) != 2 or self._buffers[0].dtype != program.dtype:
            empty = np.zeros(0, program.dtype)
            self._buffers = [program.state_buffer() if k < len(names) else empty for k in (0, 1)]
        for name, buffer in zip(names, self._buffers, strict=False):
            program.scatter(self.state.buffers[name], buffer)
        self._code, self._hyper = self.optimizer.program()
        self._done = 0

    def chunk(self, index: int) -> tuple | None:
        """The loops' ``opt`` for a chunk starting at step ``index`` of the epoch."""
        if not self.stepped:
            return None
        s1, s2 = self._buffers
        lrs = self.rates[index:]
        return (self._code, self._hyper, lrs, self.state.step, s1, s2)

    def done(self, steps: int) -> None:
        if self.stepped and self.state is not None:
            self.state.step += steps

    def leave(self, program: _compiled.Program) -> None:
        if not self.stepped:
            return
        for name, buffer in zip(self.optimizer.buffers(), self._buffers, strict=False):
            program.gather(buffer, self.state.buffers[name])

    # checkpoints ---------------------------------------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        return {
            "optimizer": None if self.optimizer is None else _optim.serialize(self.optimizer),
            "schedule": None if self.schedule is None else _optim.serialize(self.schedule),
            "base_lr": float(self.base_lr),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
        }

    def checkpoint(self, epoch: int, generator: Any) -> dict[str, Any]:
        """Where training stands after ``epoch`` epochs: JSON and arrays for the model file."""
        doc: dict[str, Any] = {"epoch": epoch, **self._describe()}
        arrays: dict[str, NDArray] = {}
        if self.optimizer is not None and self.state is not None:
            saved = self.optimizer.state_dict(self.state)
            arrays = {f"optimizer.{k}": v for k, v in saved.pop("arrays").items()}
            doc["optimizer_state"] = saved
        doc["rng"] = None if generator is None else _encode(_get_state(generator))
        return {"json": doc, "arrays": arrays}

    def resume(self, path: Any, layers: list[Layer], generator: Any) -> int:
        """Load the parameters and the training state of model file ``path`` (checked against
        this run); the number of epochs done."""
        saved = _modelfile.load_training(path)
        name = getattr(path, "name", path)
        if saved is None:
            raise ResumeError(
                f"resume={str(name)!r}: the model file holds no training state (written before "
                f"resumable training, or not by Network.train); it can be evaluated, not resumed."
            )
        doc, arrays = saved["json"], saved["arrays"]
        mine = self._describe()
        for key, value in mine.items():
            if doc.get(key) != value:
                raise ResumeError(
                    f"resume={str(name)!r}: the checkpoint was trained with {key}="
                    f"{_readable(doc.get(key))}, this call has {key}={_readable(value)}; "
                    f"resume with the same."
                )
        _modelfile.load_parameters(path, layers)
        if self.optimizer is not None:
            state = dict(doc["optimizer_state"])
            state["arrays"] = {k[len("optimizer.") :]: v for k, v in arrays.items()}
            params = [p for layer in layers for p in layer.parameters()]
            self.state = self.optimizer.load_state_dict(state, params)
        if generator is not None:
            if doc.get("rng") is None:
                raise ResumeError(f"resume={str(name)!r}: the checkpoint has no generator state.")
            _set_state(generator, _decode(doc["rng"]))
        return int(doc["epoch"])


def _readable(value: Any) -> str:
    """A serialized optimizer or schedule as its repr, anything else as JSON has it."""
    try:
        return repr(_optim.deserialize(value))
    except (ValueError, TypeError):
        return repr(value)


def _resolve_optimizer(
    optimizer: Any, schedule: Any, rate: Any
) -> tuple[_optim.Optimizer | None, float]:
    """The optimizer ``train`` steps with and its base learning rate (see ``train``)."""
    if optimizer is not None and not isinstance(optimizer, _optim.Optimizer):
        raise TypeError(
            f"optimizer must be a fastcnn.optim optimizer (SGD, Adam, AdamW), got {optimizer!r}."
        )
    if schedule is not None and not isinstance(schedule, _optim.Schedule):
        raise TypeError(
            f"schedule must be a fastcnn.optim schedule (StepLR, CosineAnnealingLR, "
            f"OneCycleLR), got {schedule!r}."
        )
    own = None if optimizer is None else optimizer.lr
    if own is None:
        if rate is None and optimizer is not None:
            raise TypeError(
                "rate must be a real number, got None (only an optimizer with its own lr "
                "can do without it)."
            )
        return optimizer, check.check_rate(rate)  # as given (np.float32 too), as before
    if rate is not None and float(check.check_rate(rate)) != own:
        raise ValueError(
            f"train got rate={rate} and {optimizer!r}, whose lr={own}: two learning rates; pass "
            f"rate=None (or {own}) to use the optimizer's, or an optimizer with lr=None."
        )
    return optimizer, own


def _generator(rng: Any) -> Any:
    """The generator whose ``permutation`` shuffles (see ``train``'s ``rng``): its state can be
    saved and restored."""
    check.random_permutation(rng)  # the checks and their messages
    if rng is None:
        return np.random.mtrand._rand  # what np.random.permutation draws from
    if isinstance(rng, numbers.Integral):
        return np.random.RandomState(int(rng))
    return rng


def _get_state(generator: Any) -> Any:
    if isinstance(generator, np.random.Generator):
        return generator.bit_generator.state
    return generator.get_state(legacy=False)


def _set_state(generator: Any, state: Any) -> None:
    if isinstance(generator, np.random.Generator):
        generator.bit_generator.state = state
    else:
        generator.set_state(state)


def _encode(value: Any) -> Any:
    """A generator's state as JSON (arrays as ``{"ndarray": [...], "dtype": ...}``)."""
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype"}:
            return np.array(value["ndarray"], dtype=np.dtype(value["dtype"]))
        return {k: _decode(v) for k, v in value.items()}
    return value


def _check_loss_targets(loss: Callable, d_loss: Callable, data_y: NDArray) -> None:
    """The registered loss's own check of the targets (cross-entropy wants distributions), before
    any update, on every path."""
    from . import losses as _  # noqa: F401  (registers the built-in losses)

    entry = registry.loss_of(loss, d_loss)
    if entry is None or entry.targets is None:
        return
    fault = entry.targets(data_y)
    if fault:
        raise ValueError(
            f"train with {entry.function.__name__}: the targets (data_y) must each be a "
            f"probability distribution (one-hot or soft labels) of shape {data_y.shape[1:]}, "
            f"but {fault}; nothing was trained."
            if entry.name == "cross_entropy"
            else f"train with {entry.function.__name__}: the targets (data_y) are not valid for "
            f"this loss: {fault}; nothing was trained."
        )


def _not_finite_batch(e: int, start: int, k: int, value: Any) -> FloatingPointError:
    return FloatingPointError(
        f"Epoch {e + 1}, sample {k} (of the batch starting at sample {start} of this epoch's "
        f"order): the loss is {value}. Training stopped before this batch's update, so the "
        f"weights are those after the previous batch. A smaller rate or scaled inputs usually "
        f"help."
    )


def _not_finite(e: int, k: int, value: Any) -> FloatingPointError:
    return FloatingPointError(
        f"Epoch {e + 1}, sample {k}: the loss is {value}. Training stopped before this sample's "
        f"update, so the weights are those after sample {k - 1}. A smaller rate or scaled inputs "
        f"usually help."
    )
