"""The ``fastcnn`` command (also ``python -m fastcnn``).

* ``fastcnn train``: train the seed notebook's MNIST CNN with its defaults (5 epochs, rate 0.1, MSE,
  sigmoids), printing the seed's epoch lines and the test accuracy, saving the model after every
  epoch.
* ``fastcnn evaluate MODEL``: accuracy and confusion matrix of a model file on the test set.
* ``fastcnn predict MODEL IMAGE...``: the digit in each of the user's own image files.
* ``fastcnn export MODEL OUT.onnx``: the model as ONNX (:mod:`fastcnn.export`).
* ``fastcnn serve MODEL``: a local draw-a-digit page (:mod:`fastcnn.serve`).

A bad data, model or image file ends the command with exit status 1 and one line on stderr naming
the file and the fault; a usage error exits with 2, Ctrl-C with 130 and one line, at any moment
after Python has started (this module imports only the standard library; NumPy, SciPy and Numba
load inside ``main``, after it began to catch Ctrl-C). Files are bounded: a model file by
``--max-parameters`` (default 10**8), images by 16 megapixels, IDX files by what their header
promises; a FIFO or device given as a file is refused at once. ``train`` checks ``--out`` and
locks it (``.NAME.lock``) before any work, so a second ``train`` to the same file is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    import numpy as np

    from .network import Network

# Only the standard library above: NumPy, SciPy and Numba load inside main(), after it has begun
# to catch Ctrl-C (fastcnn/__init__.py imports them lazily too).

PROG = "fastcnn"
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
CLASSES = 10
_PROGRESS_EVERY = 50  # samples between progress-bar refreshes: formatting costs ~1/20 of a sample


class CommandError(Exception):
    """A fault the user can fix, reported as one line without a traceback."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Everything a user can cause with a bad file, path or setting; anything else is a bug in
    fastcnn and keeps its traceback."""
    from .datasets import DataFileError
    from .images import ImageFileError
    from .io import ModelFileError

    return (
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
    previous = _catch_sigint()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # at any moment: while importing, parsing, loading, computing
        _interrupted()
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, raised by our own SIGINT handler. Every ``except KeyboardInterrupt`` catches it;
    but CPython remembers a plain KeyboardInterrupt that escaped code it ran through PyRun_* (as
    some imports do) and then ends the process by SIGINT (status -2) even after main() handled it
    and returned 130. It compares the exact type, so a subclass leaves no such mark."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise _Interrupted


def _catch_sigint() -> Any:
    """Install :func:`_raise_interrupted` for SIGINT; the handler it replaces, or None when
    there is none to replace (not the main thread, or SIGINT ignored, as in `cmd &`)."""
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None
        return signal.signal(signal.SIGINT, _raise_interrupted)
    except ValueError:  # signal only works in the main thread
        return None


def _interrupted(message: str = "interrupted") -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr closed: nothing left to tell
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): return it, as promised
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    user_errors = _user_errors()
    try:
        return args.run(args)
    except BrokenPipeError:
        # `fastcnn evaluate ... | head`: the reader left. Point stdout at devnull so the
        # interpreter's final flush does not print a second error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except user_errors as exc:
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
        help="train the notebook's MNIST CNN (or LeNet-5) and save it",
        description="Train the seed notebook's MNIST CNN (Convolution 5x3x3, sigmoid, Linear "
        "3380->100, sigmoid, Linear 100->10, sigmoid) by SGD on the MSE (per sample, or in "
        "mini-batches with --batch-size), or LeNet-5 (--model lenet) on the cross-entropy; "
        "print each epoch's mean loss and test accuracy, and save the model after "
        "every epoch (Ctrl-C keeps the last completed epoch's model). Each model has a default "
        "recipe (epochs, rate, batch size, shuffling, init, loss, optimizer, schedule); an option "
        "given overrides it.",
    )
    _data_options(train, "training samples")
    train.add_argument(
        "--model",
        choices=("notebook", "lenet"),
        default="notebook",
        help="notebook (default): the seed's CNN, 5 epochs of per-sample SGD at rate 0.1 on the "
        "MSE; lenet: LeNet-5 (two 5x5 convolutions with ReLU and max-pooling, three dense layers, "
        "softmax), 4 epochs of SGD with Nesterov momentum 0.9, weight decay 5e-4 and a onecycle "
        "schedule peaking at rate 0.01, batch size 8, shuffled, on the cross-entropy (about "
        "98.2%% test accuracy from 10,000 MNIST images)",
    )
    train.add_argument(
        "--loss",
        choices=("mse", "cross-entropy"),
        help="the loss (default: the model's: mse for notebook, cross-entropy for lenet)",
    )
    train.add_argument(
        "--test-limit",
        type=_positive_int,
        metavar="N",
        help="test on the first N test images only (default: the whole test set)",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        help="passes over the training set (default: the model's; 5 for notebook)",
    )
    train.add_argument(
        "--rate",
        type=_positive_float,
        help="learning rate (default: the model's, 0.1 for notebook; 0.001 with --optimizer adam "
        "or adamw; the peak rate of --schedule onecycle)",
    )
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="B",
        help="samples per SGD step (default: the model's; 1, per-sample SGD, for notebook, 8 "
        "for lenet); B > 1 moves the "
        "weights once per B samples by the mean gradient (PyTorch's MSELoss() + SGD), much "
        "faster per sample; try --init xavier --batch-size 16 --rate 5 --shuffle",
    )
    train.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        help="visit the training images in a new random order every epoch, drawn from --seed "
        "(default: the model's; off for notebook, on for lenet)",
    )
    train.add_argument(
        "--init",
        choices=("notebook", "xavier", "he", "seed"),
        help="initial weights (default: the model's; he for lenet). notebook (the notebook "
        "model's default; 'seed' is its old name): the notebook's randn, which saturates the "
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
        help="parameter and arithmetic precision (default: the model's; float64 for notebook, "
        "float32 for lenet)",
    )
    train.add_argument(
        "--threads",
        type=_threads,
        default=1,
        metavar="N",
        help="threads for the large dense layer (default: 1; at most the CPU count, or "
        "$NUMBA_NUM_THREADS). 2 is faster on an otherwise idle 2-core machine and much slower "
        "on a busy one",
    )
    train.add_argument(
        "--out",
        metavar="PATH",
        help="model file to write (default: fastcnn-DATASET.npz, e.g. fastcnn-mnist.npz); "
        "checked writable before training, and locked for the run (.NAME.lock beside it) so a "
        "second fastcnn train cannot write it at the same time",
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
    # -- optimizers, schedules, resuming (issue 18) --
    # Their defaults are the model's recipe (fastcnn.models.RECIPES), filled in by _apply_recipe;
    # None here means "not given".
    train.add_argument(
        "--optimizer",
        choices=("sgd", "momentum", "adam", "adamw"),
        help="sgd (the notebook's), momentum (SGD with --momentum), adam, adamw: as "
        "torch.optim's SGD, Adam and AdamW (default: the model's, with its momentum, weight "
        "decay and schedule: sgd for notebook, momentum for lenet). Naming one drops the "
        "model's optimizer settings and schedule: --optimizer sgd is plain SGD at --rate",
    )
    train.add_argument(
        "--momentum",
        type=_non_negative_float,
        help="momentum of --optimizer momentum (default: the model's, else 0.9)",
    )
    train.add_argument(
        "--nesterov",
        action=argparse.BooleanOptionalAction,
        help="Nesterov momentum (--optimizer momentum; default: the model's, else off)",
    )
    train.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        default=None,
        metavar="WD",
        help="weight decay: L2, added to the gradient (sgd, momentum, adam; default 0), or "
        "decoupled (adamw; default 0.01); default: the model's",
    )
    train.add_argument(
        "--schedule",
        choices=("none", "step", "cosine", "onecycle"),
        help="learning-rate schedule: step (times --gamma every --step-size epochs), cosine (down "
        "to 0 over the epochs), onecycle (per step, up to --rate and down; PyTorch's OneCycleLR "
        "without momentum cycling), none (a constant rate); default: the model's (none for "
        "notebook, onecycle for lenet)",
    )
    train.add_argument(
        "--step-size",
        type=_positive_int,
        help="epochs per step of --schedule step (default: the model's, else 1)",
    )
    train.add_argument(
        "--gamma",
        type=_positive_float,
        help="factor of --schedule step (default: the model's, else 0.1)",
    )
    train.add_argument(
        "--resume",
        metavar="MODEL",
        help="continue the run that saved MODEL (the same options; --epochs is the total); "
        "bit for bit the run that was never stopped. Writes to MODEL unless --out is given",
    )
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy and confusion matrix of a model on the test set",
        description="Print a model's accuracy on the test set and its 10x10 confusion matrix.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="model file written by fastcnn train")
    _model_options(evaluate)
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
    _model_options(predict)
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    predict.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {path, digit, confidence, confidences}",
    )
    predict.set_defaults(run=_predict)

    from ._sweep_cli import add_parser as add_sweep  # its own module: fastcnn.sweep's command

    add_sweep(commands, _positive_int)

    # Interop and the page: their parsers and code live in their own modules (standard library
    # only at import, as this one).
    from . import export, serve

    export.add_parser(commands)
    serve.add_parser(commands)
    return parser


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-parameters",
        type=_positive_int,
        metavar="N",
        help="refuse a model file whose architecture has more than N parameters (default: "
        "10**8, 800 MB as float64; a forged file cannot make fastcnn take more memory)",
    )


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


def _threads(text: str) -> int:
    value = _positive_int(text)
    available = _available_threads()
    if value > available:
        raise argparse.ArgumentTypeError(
            f"expected 1 to {available} (the threads Numba can run here), got {value}"
        )
    return value


def _available_threads() -> int:
    """Numba's thread count limit, without importing Numba: $NUMBA_NUM_THREADS if set, else the
    CPU count (Numba's own default)."""
    with contextlib.suppress(ValueError):
        configured = int(os.environ.get("NUMBA_NUM_THREADS", ""))
        if configured >= 1:
            return configured
    return os.cpu_count() or 1


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**32:  # np.random.RandomState's range
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


# ---------------------------------------------------------------------------------------------------
# train


EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process SIGTERM ended


class _Terminated(_Interrupted):
    """SIGTERM during ``fastcnn train``: handled as Ctrl-C (the last completed epoch kept, the
    lock and any temporary file removed on the way out), exit status 143."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


# The command line's own defaults of the optimizer options, for an --optimizer given without them.
_OPTIMIZER_DEFAULTS = dict(momentum=0.9, nesterov=False, schedule="none", step_size=1, gamma=0.1)


def _apply_recipe(args: argparse.Namespace) -> None:
    """Fill every training option not given from the model's recipe (``fastcnn.models.RECIPES``).

    The recipe's optimizer settings (momentum, Nesterov, weight decay) and schedule belong to its
    optimizer: they apply only when ``--optimizer`` is not given, so ``--optimizer sgd`` is plain
    SGD whatever the model's recipe is. Each option given wins either way."""
    from .models import RECIPES

    recipe = RECIPES[args.model]
    optimizer_given = args.optimizer is not None
    # Adam's rate is not SGD's: an --optimizer adam or adamw given without --rate takes Adam's
    # default (1e-3), not the recipe's rate, which is meant for the recipe's optimizer.
    args.rate_given = args.rate is not None or not optimizer_given
    for name in ("epochs", "rate", "batch_size", "shuffle", "init", "dtype"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(recipe, name))
    if args.loss is None:
        args.loss = recipe.loss_name
    if not optimizer_given:
        args.optimizer = recipe.optimizer
        if args.weight_decay is None:
            args.weight_decay = recipe.weight_decay
    for name, default in _OPTIMIZER_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default if optimizer_given else getattr(recipe, name))
    if args.schedule == "none":
        args.schedule = None


def _train(args: argparse.Namespace) -> int:
    _apply_recipe(args)
    out = args.out or args.resume or f"fastcnn-{args.dataset}.npz"
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        previous = None
    try:
        # Fail now, not after the first epoch's work is done; hold the lock for the whole run.
        with _OutputLock(out):
            return _train_into(args, out)
    except _Terminated:  # before or after the epochs (during them _train_into says which)
        _interrupted("terminated")
        return EXIT_TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _recipe(args: argparse.Namespace, steps_per_epoch: int) -> tuple[Any, Any, float]:
    """The optimizer, the schedule and the rate the options ask for."""
    from . import optim

    adam = args.optimizer in ("adam", "adamw")
    rate = 1e-3 if adam and not getattr(args, "rate_given", True) else args.rate
    decay = args.weight_decay
    if args.nesterov and args.optimizer != "momentum":
        raise CommandError("--nesterov needs --optimizer momentum")
    optimizer: Any
    schedule: Any = None
    if args.optimizer == "sgd":
        optimizer = optim.SGD(weight_decay=decay or 0.0) if decay else None
    elif args.optimizer == "momentum":
        optimizer = optim.SGD(
            momentum=args.momentum, nesterov=args.nesterov, weight_decay=decay or 0.0
        )
    elif args.optimizer == "adam":
        optimizer = optim.Adam(lr=rate, weight_decay=decay or 0.0)
    else:
        optimizer = optim.AdamW(lr=rate, weight_decay=0.01 if decay is None else decay)
    if args.schedule == "step":
        schedule = optim.StepLR(args.step_size, args.gamma)
    elif args.schedule == "cosine":
        schedule = optim.CosineAnnealingLR(args.epochs)
    elif args.schedule == "onecycle":
        schedule = optim.OneCycleLR(rate, epochs=args.epochs, steps_per_epoch=steps_per_epoch)
    return optimizer, schedule, rate


def _announce_compiling(args: argparse.Namespace, network: Any, stepped: bool = False) -> None:
    """One line on stderr before the seconds Numba spends compiling on a cold cache, so a first
    run does not look hung; nothing once the kernels are cached for this machine."""
    if args.backend != "numba":
        return
    from . import _compiled
    from .kernels import _jit
    from .models import LOSSES

    if args.threads > 1 and args.batch_size == 1:
        # Parallel kernels are never cached (numba#10128, see kernels/_jit.py).
        message = f"compiling the {args.threads}-thread kernels (every run with --threads)…"
    else:
        batch = args.batch_size > 1
        program = _compiled.program(network.layers, *LOSSES[args.loss], padded=not batch)
        # The loop compiles once per dtype and set of kinds (its flags): another network's variant
        # in the cache (say XOR's) would not spare this run its compile. An optimizer's variant
        # takes a tuple where the seed's SGD takes None.
        texts = (args.dtype, program.flag_text()) if program is not None else ()
        if program is None or _jit.is_cached(
            program.entry(batch), *texts, *(("Tuple(",) if stepped else ())
        ):
            return
        message = "compiling kernels for this machine (first run only)…"
    print(message, file=sys.stderr, flush=True)


def _train_into(args: argparse.Namespace, out: str) -> int:
    import numpy as np

    from . import io
    from .datasets import one_hot, scale_images
    from .models import LOSSES, MODELS
    from .network import ResumeError

    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    (train_x, train_y), (test_x, test_y) = _load_data(args)
    train_x, train_y = train_x[: args.limit], train_y[: args.limit]  # [:None] keeps everything
    test_x, test_y = test_x[: args.test_limit], test_y[: args.test_limit]
    _require_images(args, train_x, "training")
    _require_images(args, test_x, "test")
    x, y, test_images = scale_images(train_x), one_hot(train_y), scale_images(test_x)
    network = MODELS[args.model](
        backend=args.backend,
        dtype=np.dtype(args.dtype),
        rng=args.seed,
        init=args.init,
        num_threads=args.threads,
    )
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    epochs = f"{args.epochs} epoch{'s' if args.epochs > 1 else ''}"
    name = "the notebook's MNIST CNN" if args.model == "notebook" else "LeNet-5"
    optimizer, schedule, rate = _recipe(args, -(-len(x) // min(args.batch_size, len(x))))
    recipe = "" if optimizer is None else f", {optimizer!r}"
    recipe += "" if schedule is None else f", {schedule!r}"
    say(
        f"Training {name} on {len(x)} {args.dataset} images ({epochs}, {args.loss}, rate "
        f"{rate}{recipe}, batch size {args.batch_size}{', shuffled' if args.shuffle else ''}, init "
        f"{args.init}, seed {args.seed}, {args.backend}, {args.dtype}); testing "
        f"on {len(test_images)}."
    )

    if not args.quiet:
        from .network import _Run

        stepped = _Run(optimizer, schedule, rate, args.batch_size, args.shuffle).stepped
        _announce_compiling(args, network, stepped)
    progress = _Progress(len(x), args.epochs, enabled=not args.quiet)
    kept: dict[str, Any] = {"epoch": 0, "matrix": None, "seconds": 0.0}
    kept["started"] = time.perf_counter()

    def on_epoch(epoch: int, history) -> None:
        # Training seconds only: saving and testing below are off the clock.
        kept["seconds"] += time.perf_counter() - kept["started"]
        progress.close()
        io.save(network, out)  # atomic: an interrupt here leaves the previous epoch's file
        kept["epoch"] = epoch
        kept["matrix"] = _confusion(network, test_images, test_y)
        history.accuracy.append(_accuracy(kept["matrix"]))
        say(f"Epoch {epoch}, total loss: {history[-1]}, test accuracy: {history.accuracy[-1]:.4f}")
        kept["started"] = time.perf_counter()

    try:
        history = network.train(
            x,
            y,
            *LOSSES[args.loss],
            args.epochs,
            None if optimizer is not None and optimizer.lr is not None else rate,
            verbose=False,
            progress=progress,
            on_epoch=on_epoch,
            batch_size=args.batch_size,
            shuffle=args.shuffle,
            rng=args.seed,
            optimizer=optimizer,
            schedule=schedule,
            resume=args.resume,
        )
    except ResumeError as exc:
        raise CommandError(f"{exc} (--resume)") from None
    except KeyboardInterrupt as stop:
        progress.close()
        status = EXIT_TERMINATED if isinstance(stop, _Terminated) else EXIT_INTERRUPTED
        word = "terminated" if isinstance(stop, _Terminated) else "interrupted"
        during = kept["epoch"] + 1
        if kept["epoch"]:
            _interrupted(
                f"{word} during epoch {during}; kept the model of epoch {kept['epoch']} in {out}"
            )
        elif args.resume:
            _interrupted(f"{word} before the first epoch after {args.resume}'s; it is unchanged")
        else:
            _interrupted(f"{word} during epoch 1; no epoch completed, so no model was saved")
        return status
    finally:
        progress.close()
    if not history:
        print(f"{args.resume} holds {args.epochs} epochs already; nothing to train")
        return 0
    print(f"test accuracy: {history.accuracy[-1]:.4f}")
    print(
        f"trained {kept['epoch']} epochs in {kept['seconds']:.1f} s (testing and saving not counted)"
    )
    print(f"model saved to {out}")
    if args.plot:
        _write_plots(args.plot, network, history, kept["matrix"])
    return 0


class _OutputLock:
    """Checks that ``--out`` can be written, before any training, and holds an exclusive
    ``flock`` on ``.NAME.lock`` beside it for the run, so a second ``fastcnn train`` writing the
    same file is refused at once instead of silently overwriting the first one's model. The lock
    file is removed at the end (while still locked; a waiting process then sees that the file it
    locked is gone and starts over)."""

    def __init__(self, out: str):
        self.out = out
        self.directory = os.path.dirname(os.path.abspath(out))
        self.path = os.path.join(self.directory, f".{os.path.basename(out)}.lock")
        self.fd: int | None = None

    def __enter__(self) -> _OutputLock:
        out, directory = self.out, self.directory
        if not os.path.exists(directory):
            raise CommandError(f"{out}: directory {directory} does not exist (--out)")
        if not os.path.isdir(directory):
            raise CommandError(f"{out}: {directory} is not a directory (--out)")
        if os.path.isdir(out):
            raise CommandError(f"{out}: is a directory; --out names the model file to write")
        if os.path.lexists(out) and not os.path.isfile(out):
            raise CommandError(f"{out}: exists and is not a regular file (--out)")
        try:
            import fcntl
        except ImportError:  # Windows: check writability only
            fcntl = None  # type: ignore[assignment]
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as exc:
                raise CommandError(
                    f"{out}: cannot write in directory {directory} ({exc.strerror}) (--out)"
                ) from None
            if fcntl is None:
                self.fd = fd
                return self
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise CommandError(
                    f"{out}: another fastcnn train is writing this model (it holds "
                    f"{self.path}); wait for it to finish or choose another --out"
                ) from None
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    self.fd = fd
                    return self
            os.close(fd)  # the previous holder removed the file we locked: lock the new one

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = None


def _require_images(args: argparse.Namespace, images: Any, which: str) -> None:
    """An empty set would give a nan loss or accuracy (or a division by zero): refuse it now."""
    if len(images) == 0:
        where = args.data or args.dataset
        raise CommandError(
            f"{where}: the {which} set holds no images; nothing to "
            f"{'train on' if which == 'training' else 'test on'}"
        )


class _Progress:
    """``progress=`` callback of ``Network.train``: one tqdm bar per epoch on stderr, showing
    images/s and the running mean loss. Silent when stderr is not a terminal, when disabled, or
    without tqdm (an optional dependency)."""

    def __init__(self, total: int, epochs: int, *, enabled: bool):
        self.total, self.epochs, self.shown = total, epochs, 0
        self.bar: Any = None
        self.tqdm: Any = None
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
    import numpy as np

    from .datasets import scale_images

    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    network = _load_model(args)
    _, (test_x, test_y) = _load_data(args)
    test_x, test_y = test_x[: args.limit], test_y[: args.limit]
    _require_images(args, test_x, "test")
    matrix = _confusion(network, scale_images(test_x), test_y)
    correct, total = int(np.trace(matrix)), int(matrix.sum())
    print(f"accuracy: {correct / total:.4f} ({correct} of {total} {args.dataset} test images)")
    print()
    print(_table(matrix))
    if args.plot:
        _write_plots(args.plot, network, None, matrix)
    return 0


def _predict(args: argparse.Namespace) -> int:
    import numpy as np

    from .images import load_digit

    network = _load_model(args)
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


def _load_model(args: argparse.Namespace) -> Network:
    from . import io

    limit = io.MAX_PARAMETERS if args.max_parameters is None else args.max_parameters
    network = io.load(args.model, max_parameters=limit)
    _check_model(network, args.model)
    return network


def _load_data(args: argparse.Namespace):
    from .datasets import load_fashion_mnist, load_mnist

    loader = load_mnist if args.dataset == "mnist" else load_fashion_mnist
    if args.data is None:
        return loader()
    if not os.path.isdir(args.data):
        raise CommandError(f"{args.data}: no such directory (--data)")
    # An explicit directory means "these files": report what is missing rather than download.
    return loader(args.data, download=False)


def _check_model(network: Network, path: str) -> None:
    """The model must map one 28x28 image to 10 outputs; say so now rather than mid-way."""
    import numpy as np

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
    import numpy as np

    # predict_batch, as evaluate: the compiled path predicts in batches (one GEMM per dense layer).
    predicted = network.predict_batch(images).argmax(axis=1).astype(int)
    matrix = np.zeros((CLASSES, CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=int), predicted), 1)
    return matrix


def _accuracy(matrix: np.ndarray) -> float:
    return float(matrix.trace() / matrix.sum())


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
