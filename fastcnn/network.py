"""The seed's ``Network``: a list of layers, per-sample prediction and per-sample SGD training."""

import numbers

import numpy as np

from . import _compiled
from ._validation import check_backend, check_size

# Samples per compiled call: small enough that progress and Ctrl-C come every few tens of ms.
_CHUNK = 256


class History(list):
    """Per-epoch training losses (a list, as the seed's epoch lines), plus ``accuracy``: per-epoch
    accuracy on the validation data, when ``train`` was given some."""

    def __init__(self, losses=(), accuracy=()):
        super().__init__(losses)
        self.accuracy = list(accuracy)

    @property
    def loss(self):
        return list(self)

    def __repr__(self):
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

    def __init__(self, layers, *, backend=None, num_threads=1):
        self.layers = layers
        self.num_threads = check_size("num_threads", num_threads)
        if backend is not None:
            check_backend(backend)
            for layer in layers:
                if hasattr(layer, "backend"):
                    layer.backend = backend

    def __repr__(self):
        inner = "".join(f"\n    {layer!r}," for layer in self.layers)
        return f"Network([{inner}\n])"

    def predict(self, input):
        """The network's output for one sample ``input``."""
        output = input
        for layer in self.layers:
            output = layer.forward_prop(output)
        return output

    def evaluate(self, data_x, labels):
        """Fraction of samples whose ``argmax`` output equals ``labels`` (ints, or one-hot arrays)."""
        labels = np.asarray(labels)
        if len(data_x) != len(labels):
            raise ValueError(f"evaluate got {len(data_x)} samples but {len(labels)} labels.")
        if len(labels) == 0:
            raise ValueError("evaluate needs at least one sample.")
        if labels.ndim > 1:
            labels = labels.reshape(len(labels), -1).argmax(axis=1)
        program = _compiled.program(self.layers, num_threads=self.num_threads)
        xs = None if program is None else program.samples(data_x, program.input_shape)
        if xs is not None:
            predicted = program.predict(xs).argmax(axis=1)
        else:
            predicted = np.array([np.argmax(self.predict(x)) for x in data_x])
        return float(np.mean(predicted == labels))

    def save(self, path):
        """Write the network to ``path`` (``.npz``); :func:`fastcnn.load` reads it back exactly."""
        from .io import save

        save(self, path)

    def train(
        self,
        data_x,
        data_y,
        loss,
        d_loss,
        epochs,
        rate,
        *,
        verbose=True,
        validation_data=None,
        progress=None,
        on_epoch=None,
    ):
        """Per-sample SGD over ``data_x``/``data_y`` for ``epochs`` epochs with step ``rate``.

        Prints ``Epoch {e}, total loss: {mean loss}`` after each epoch, as the seed does, unless
        ``verbose=False``. ``validation_data=(x, labels)`` adds the accuracy on it to each line and
        to the returned :class:`History`.

        ``progress(epoch, done, running_loss)`` is called while an epoch runs (after every sample,
        or every few hundred samples on the compiled path) with the 1-based epoch, the samples done
        in it and their mean loss so far. ``on_epoch(epoch, history)`` is called after each epoch's
        line, for instance to save the model: a ``KeyboardInterrupt`` then loses at most the epoch
        under way.

        Raises
        ------
        FloatingPointError
            When a sample's loss is not finite, before that sample's update: the weights stay as
            they were after the previous sample.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}.")
        if len(data_x) != len(data_y):
            raise ValueError(
                f"train got {len(data_x)} inputs (data_x) but {len(data_y)} targets (data_y); "
                f"they must pair up one to one."
            )
        if len(data_x) == 0:
            raise ValueError("train needs at least one sample; data_x is empty.")
        program = _compiled.program(self.layers, loss, d_loss, self.num_threads)
        if program is not None:
            xs = program.samples(data_x, program.input_shape)
            ys = program.samples(data_y, program.output_shape)
            if xs is None or ys is None:
                program = None
        history = History()
        for e in range(epochs):
            if program is not None:
                total_loss = self._compiled_epoch(program, xs, ys, loss, d_loss, rate, e, progress)
            else:
                total_loss = self._epoch(data_x, data_y, loss, d_loss, rate, e, progress)
            history.append(total_loss)
            line = f"Epoch {e + 1}, total loss: {total_loss}"
            if validation_data is not None:
                history.accuracy.append(self.evaluate(*validation_data))
                line += f", accuracy: {history.accuracy[-1]}"
            if verbose:
                print(line)
            if on_epoch is not None:
                on_epoch(e + 1, history)
        return history

    def _epoch(self, data_x, data_y, loss, d_loss, rate, e, progress):
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

    def _compiled_epoch(self, program, xs, ys, loss, d_loss, rate, e, progress):
        """One epoch in compiled chunks; the same arithmetic as :meth:`_epoch`."""
        losses = np.empty(len(xs), program.dtype)
        done = 0
        while done < len(xs):
            stop = min(len(xs), done + _CHUNK)
            k = done + program.train(xs[done:stop], ys[done:stop], rate, losses[done:stop])
            if k < stop:
                raise _not_finite(e, k, "not finite")
            done = stop
            if progress is not None:
                progress(e + 1, done, losses[:done].sum() / done)
                # The callback may have replaced a layer's arrays; never train stale views.
                program = _compiled.program(self.layers, loss, d_loss, self.num_threads)
                if program is None:
                    raise RuntimeError("progress callback changed the network's layers mid-epoch.")
        # cumsum adds in order from the first sample, as the seed's `total_loss += loss` does.
        return np.cumsum(losses)[-1] / len(xs)


def _not_finite(e, k, value):
    return FloatingPointError(
        f"Epoch {e + 1}, sample {k}: the loss is {value}. Training stopped before this sample's "
        f"update, so the weights are those after sample {k - 1}. A smaller rate or scaled inputs "
        f"usually help."
    )
