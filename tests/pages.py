"""Shared by the page's tests (test_serve.py, test_browser.py): a small trained model, MNIST test
digits as drawings, and a running server."""

import contextlib
import functools
import io
import json
import threading

import numpy as np

from fastcnn import d_mse, datasets, mse
from fastcnn.cli import main
from fastcnn.models import mnist_cnn
from fastcnn.serve import DigitServer


@functools.cache
def _mnist(mnist_dir):
    return datasets.load_mnist(mnist_dir, download=False)


@functools.cache
def trained_network(mnist_dir):
    """The notebook's network, xavier init, three epochs of per-sample SGD on 3,000 images (~1 s
    once compiled; one epoch stays on the loss's plateau): right on ~80 % of the test digits,
    so the page shows something sensible."""
    (train_x, train_y), _ = _mnist(mnist_dir)
    network = mnist_cnn(rng=0, init="xavier")
    x, y = datasets.scale_images(train_x[:3000]), datasets.one_hot(train_y[:3000])
    network.train(x, y, mse, d_mse, 3, 0.5, verbose=False)
    return network


def mnist_test_digits(mnist_dir, count, start=0):
    """``count`` MNIST test images (uint8, 28x28) and their labels."""
    _, (test_x, test_y) = _mnist(mnist_dir)
    return test_x[start : start + count], test_y[start : start + count]


def as_drawing(image, scale=10):
    """A 28x28 MNIST digit as a user draws one: black ink on white, ``scale`` times larger, PNG."""
    from PIL import Image

    big = Image.fromarray(255 - np.asarray(image, np.uint8)).resize(
        (28 * scale, 28 * scale), Image.Resampling.BILINEAR
    )
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    return buffer.getvalue()


def fastcnn_predict(model_path, png_paths, capsys):
    """What ``fastcnn predict MODEL IMAGE... --json`` prints, parsed: the oracle of the page."""
    capsys.readouterr()
    assert main(["predict", str(model_path), *map(str, png_paths), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@contextlib.contextmanager
def running_server(network, log=None):
    """A DigitServer on an ephemeral port of 127.0.0.1, serving from a thread."""
    server = DigitServer(network, "127.0.0.1", 0, log=log)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(timeout=10)
