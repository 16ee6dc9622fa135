"""The seed's ``Network``: a list of layers, per-sample prediction and per-sample SGD training."""

import numbers

import numpy as np

from ._validation import check_backend


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
    """

    def __init__(self, layers, *, backend=None):
        self.layers = layers
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
        hits = sum(int(np.argmax(self.predict(x)) == y) for x, y in zip(data_x, labels))
        return hits / len(labels)

    def save(self, path):
        """Write the network to ``path`` (``.npz``); :func:`fastcnn.load` reads it back exactly."""
        from .io import save

        save(self, path)

    def train(self, data_x, data_y, loss, d_loss, epochs, rate, *, verbose=True,
              validation_data=None, progress=None, on_epoch=None):
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
        history = History()
        for e in range(epochs):
            total_loss = 0.0
            for k, (x, y) in enumerate(zip(data_x, data_y)):
                predicted = self.predict(x)
                sample_loss = loss(predicted, y)
                if not np.isfinite(sample_loss):
                    raise FloatingPointError(
                        f"Epoch {e + 1}, sample {k}: the loss is {sample_loss}. Training stopped "
                        f"before this sample's update, so the weights are those after sample "
                        f"{k - 1}. A smaller rate or scaled inputs usually help."
                    )
                total_loss += sample_loss
                grad = d_loss(predicted, y)
                for layer in reversed(self.layers):
                    grad = layer.backward_prop(grad, rate)
                if progress is not None:
                    progress(e + 1, k + 1, total_loss / (k + 1))
            total_loss /= len(data_x)
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
