"""The ``fastcnn`` command (also ``python -m fastcnn``).

* ``fastcnn train``: train the seed notebook's MNIST CNN with its defaults (5 epochs, rate 0.1, MSE,
  sigmoids), printing the seed's epoch lines and the test accuracy, saving the model after every
  epoch.
* ``fastcnn evaluate MODEL``: accuracy and confusion matrix of a model file on the test set.
* ``fastcnn predict MODEL IMAGE...``: the digit in each of the user's own image files.

A bad data, model or image file ends the command with exit status 1 and one line on stderr naming
the file and the fault; a usage error exits with 2, Ctrl-C with 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from . import __version__
from .datasets import DataFileError, load_fashion_mnist, load_mnist, one_hot, scale_images
from .functions import d_mse, mse
from .images import ImageFileError
from .io import ModelFileError
from .network import Network

PROG = "fastcnn"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
CLASSES = 10
_PROGRESS_EVERY = 50  # samples between progress-bar refreshes: formatting costs ~1/20 of a sample


class CommandError(Exception):
    """A fault the user can fix, reported as one line without a traceback."""


# Everything a user can cause with a bad file, path or setting; anything else is a bug in fastcnn
# and keeps its traceback.
_USER_ERRORS = (
    CommandError,
    DataFileError,
    ModelFileError,
    ImageFileError,
    OSError,
    FloatingPointError,
    ImportError,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): return it, as promised
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `fastcnn evaluate ... | head`: the reader left. Point stdout at devnull so the
        # interpreter's final flush does not print a second error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except _USER_ERRORS as exc:
        print(f"{PROG}: error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR


# ---------------------------------------------------------------------------------------------------
# the parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train, evaluate and use the from-scratch CNN notebook's MNIST network.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="train the notebook's MNIST CNN and save it",
        description="Train the seed notebook's MNIST CNN (Convolution 5x3x3, sigmoid, Linear "
        "3380->100, sigmoid, Linear 100->10, sigmoid) by per-sample SGD on the MSE, "
        "print each epoch's mean loss and test accuracy, and save the model after "
        "every epoch (Ctrl-C keeps the last completed epoch's model).",
    )
    _data_options(train, "training samples")
    train.add_argument(
        "--test-limit",
        type=_positive_int,
        metavar="N",
        help="test on the first N test images only (default: the whole test set)",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=5,
        help="passes over the training set (default: 5, the notebook's)",
    )
    train.add_argument(
        "--rate",
        type=_positive_float,
        default=0.1,
        help="SGD step size (default: 0.1, the notebook's)",
    )
    train.add_argument(
        "--init",
        choices=("notebook", "xavier", "seed"),
        default="notebook",
        help="initial weights. notebook (default; 'seed' is its old name): the notebook's randn, which saturates the "
        "sigmoids and learns slowly, about 63%% test accuracy after 5 epochs on 10,000 "
        "images. xavier: Glorot-normal weights and zero biases; --init xavier --rate 0.5 "
        "does much better, about 85%% after one epoch on 10,000 images",
    )
    train.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="random seed of the initial weights (default: 0, so runs repeat "
        "exactly); gives the weights the notebook gets after "
        "np.random.seed(SEED)",
    )
    train.add_argument(
        "--backend",
        choices=("numba", "scipy"),
        default="numba",
        help="numba (default, fast) or scipy (the notebook's own code, slow)",
    )
    train.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="parameter and arithmetic precision (default: float64)",
    )
    train.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        metavar="N",
        help="threads for the large dense layer (default: 1). 2 is faster on an "
        "otherwise idle 2-core machine and much slower on a busy one",
    )
    train.add_argument(
        "--out",
        metavar="PATH",
        help="model file to write (default: fastcnn-DATASET.npz, e.g. fastcnn-mnist.npz)",
    )
    train.add_argument(
        "--plot",
        metavar="DIR",
        help="also write history.png, confusion.png and filters.png to DIR (needs matplotlib)",
    )
    train.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar or epoch lines; only the final results",
    )
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy and confusion matrix of a model on the test set",
        description="Print a model's accuracy on the test set and its 10x10 confusion matrix.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="model file written by fastcnn train")
    _data_options(evaluate, "test images")
    evaluate.add_argument(
        "--plot", metavar="DIR", help="also write confusion.png and filters.png to DIR"
    )
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="the digit in each image file",
        description="Classify image files (PNG, JPEG, ...) of single handwritten digits, dark on "
        "light or light on dark. Each image is converted as MNIST was made: cropped "
        "to the ink, scaled into 20x20, centred by mass in 28x28. Prints one line per "
        "image, PATH: DIGIT (CONFIDENCE), then the ten outputs (the network's sigmoids, "
        "which need not sum to 1).",
    )
    predict.add_argument("model", metavar="MODEL", help="model file written by fastcnn train")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    predict.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {path, digit, confidence, confidences}",
    )
    predict.set_defaults(run=_predict)
    return parser


def _data_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="directory holding the four IDX files (raw or .gz); default: "
        "$FASTCNN_DATA, then the cache, then a verified download",
    )
    parser.add_argument(
        "--dataset", choices=("mnist", "fashion-mnist"), default="mnist", help="default: mnist"
    )
    parser.add_argument(
        "--limit", type=_positive_int, metavar="N", help=f"use only the first N {what}"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**32:  # np.random.RandomState's range
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


# ---------------------------------------------------------------------------------------------------
# train


def _train(args: argparse.Namespace) -> int:
    from . import io
    from .models import mnist_cnn

    out = args.out or f"fastcnn-{args.dataset}.npz"
    # Fail now, not after the first epoch's work is done.
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise CommandError(f"{out}: directory {out_dir} does not exist (--out)")
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    (train_x, train_y), (test_x, test_y) = _load_data(args)
    train_x, train_y = train_x[: args.limit], train_y[: args.limit]  # [:None] keeps everything
    test_x, test_y = test_x[: args.test_limit], test_y[: args.test_limit]
    x, y, test_images = scale_images(train_x), one_hot(train_y), scale_images(test_x)
    network = mnist_cnn(
        backend=args.backend,
        dtype=np.dtype(args.dtype),
        rng=args.seed,
        init=args.init,
        num_threads=args.threads,
    )
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    epochs = f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}"
    say(
        f"Training the notebook's MNIST CNN on {len(x)} {args.dataset} images ({epochs}, rate "
        f"{args.rate}, init {args.init}, seed {args.seed}, {args.backend}, {args.dtype}); testing "
        f"on {len(test_images)}."
    )

    progress = _Progress(len(x), args.epochs, enabled=not args.quiet)
    kept = {"epoch": 0, "matrix": None}

    def on_epoch(epoch: int, history) -> None:
        progress.close()
        io.save(network, out)  # atomic: an interrupt here leaves the previous epoch's file
        kept["epoch"] = epoch
        kept["matrix"] = _confusion(network, test_images, test_y)
        history.accuracy.append(_accuracy(kept["matrix"]))
        say(f"Epoch {epoch}, total loss: {history[-1]}, test accuracy: {history.accuracy[-1]:.4f}")

    try:
        history = network.train(
            x,
            y,
            mse,
            d_mse,
            args.epochs,
            args.rate,
            verbose=False,
            progress=progress,
            on_epoch=on_epoch,
        )
    except KeyboardInterrupt:
        progress.close()
        during = kept["epoch"] + 1
        if kept["epoch"]:
            print(
                f"{PROG}: interrupted during epoch {during}; kept the model of epoch "
                f"{kept['epoch']} in {out}",
                file=sys.stderr,
            )
        else:
            print(
                f"{PROG}: interrupted during epoch 1; no epoch completed, so no model was saved",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    print(f"test accuracy: {history.accuracy[-1]:.4f}")
    print(f"model saved to {out}")
    if args.plot:
        _write_plots(args.plot, network, history, kept["matrix"])
    return 0


class _Progress:
    """``progress=`` callback of ``Network.train``: one tqdm bar per epoch on stderr, showing
    images/s and the running mean loss. Silent when stderr is not a terminal, when disabled, or
    without tqdm (an optional dependency)."""

    def __init__(self, total: int, epochs: int, *, enabled: bool):
        self.total, self.epochs, self.bar, self.shown = total, epochs, None, 0
        self.tqdm = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            self.tqdm = tqdm

    def __call__(self, epoch: int, done: int, running_loss: float) -> None:
        # train calls this after every sample (Python path) or every chunk (compiled path)
        if self.tqdm is None or (done - self.shown < _PROGRESS_EVERY and done != self.total):
            return
        if self.bar is None:
            # disable=None: no bar when stderr is redirected, so logs don't fill with redraws
            self.bar = self.tqdm(
                total=self.total,
                desc=f"Epoch {epoch}/{self.epochs}",
                unit="img",
                leave=False,
                disable=None,
                dynamic_ncols=True,
            )
        self.bar.set_postfix_str(f"loss {running_loss:.4f}", refresh=False)
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.shown = None, 0


# ---------------------------------------------------------------------------------------------------
# evaluate and predict


def _evaluate(args: argparse.Namespace) -> int:
    from . import io

    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    network = io.load(args.model)
    _check_model(network, args.model)
    _, (test_x, test_y) = _load_data(args)
    test_x, test_y = test_x[: args.limit], test_y[: args.limit]
    matrix = _confusion(network, scale_images(test_x), test_y)
    correct, total = int(np.trace(matrix)), int(matrix.sum())
    print(f"accuracy: {correct / total:.4f} ({correct} of {total} {args.dataset} test images)")
    print()
    print(_table(matrix))
    if args.plot:
        _write_plots(args.plot, network, None, matrix)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from . import io
    from .images import load_digit

    network = io.load(args.model)
    _check_model(network, args.model)
    # Read every image before printing anything, so a bad file fails the command cleanly
    # instead of leaving half a JSON list on stdout.
    digits = [load_digit(path) for path in args.images]
    results = []
    for path, digit in zip(args.images, digits, strict=True):
        outputs = np.asarray(network.predict(digit), dtype=np.float64).ravel()
        best = int(np.argmax(outputs))
        results.append(
            {
                "path": path,
                "digit": best,
                "confidence": float(outputs[best]),
                "confidences": [float(v) for v in outputs],
            }
        )
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        others = " ".join(f"{d}:{c:.2f}" for d, c in enumerate(r["confidences"]))
        print(f"{r['path']}: {r['digit']} ({r['confidence']:.2f})  {others}")
    return 0


# ---------------------------------------------------------------------------------------------------
# helpers


def _load_data(args: argparse.Namespace):
    loader = load_mnist if args.dataset == "mnist" else load_fashion_mnist
    if args.data is None:
        return loader()
    if not os.path.isdir(args.data):
        raise CommandError(f"{args.data}: no such directory (--data)")
    # An explicit directory means "these files": report what is missing rather than download.
    return loader(args.data, download=False)


def _check_model(network: Network, path: str) -> None:
    """The model must map one 28x28 image to 10 outputs; say so now rather than mid-way."""
    try:
        outputs = network.predict(np.zeros((1, 28, 28)))
    except ValueError as exc:
        raise CommandError(f"{path}: this model does not take 28x28 images ({exc})") from None
    if np.size(outputs) != CLASSES:
        raise CommandError(
            f"{path}: this model has {np.size(outputs)} outputs, but the data has {CLASSES} classes"
        )


def _confusion(network: Network, images, labels) -> np.ndarray:
    """``matrix[true, predicted]`` counts over ``images``."""
    predicted = np.array([int(np.argmax(network.predict(image))) for image in images], dtype=int)
    matrix = np.zeros((CLASSES, CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=int), predicted), 1)
    return matrix


def _accuracy(matrix: np.ndarray) -> float:
    return float(np.trace(matrix) / matrix.sum())


def _table(matrix: np.ndarray) -> str:
    """The confusion matrix as aligned text, with row and column totals."""
    width = max(5, len(str(int(matrix.sum()))) + 1)
    head = "true\\pred"
    lines = [
        "confusion matrix (rows: true label, columns: predicted label)",
        head + "".join(f"{c:>{width}}" for c in range(len(matrix))) + f"{'total':>{width + 1}}",
    ]
    for label, row in enumerate(matrix):
        lines.append(
            f"{label:>{len(head)}}"
            + "".join(f"{int(v):>{width}}" for v in row)
            + f"{int(row.sum()):>{width + 1}}"
        )
    lines.append(
        f"{'total':>{len(head)}}"
        + "".join(f"{int(v):>{width}}" for v in matrix.sum(0))
        + f"{int(matrix.sum()):>{width + 1}}"
    )
    return "\n".join(lines)


def _write_plots(directory: str, network: Network, history, matrix) -> None:
    from .plots import plot_run

    written = plot_run(directory, network, history, matrix)
    print(f"plots written: {', '.join(str(p) for p in written)}")


def _message(exc: BaseException) -> str:
    # OSError's own str() is "[Errno 2] No such file or directory: 'x'"; name the file first.
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)
