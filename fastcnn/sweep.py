"""Hyper-parameter and seed sweeps: an Optuna study whose trials each train a fastcnn model and
score it on a validation split held out of the training set.

::

    from fastcnn.sweep import Space, Range, run, table

    space = Space(
        train={"data": "../shared/data/mnist", "limit": 2000, "epochs": 1},
        space={"rate": Range(0.01, 1.0, log=True), "init": ["notebook", "xavier"], "seed": [0, 1]},
    )
    study = run(space, storage="sqlite:///sweep.db", trials=16, jobs=2)
    print(table(study))

or ``fastcnn sweep space.toml`` with the same in a TOML file (:func:`load_space`).

How it runs
    Trials share the study through its storage, an SQLAlchemy URL (an SQLite file by default):
    a second run on the same storage and study continues it up to ``trials`` finished trials.
    ``jobs=N`` runs them in N long-lived worker processes forked after the data are loaded and
    the kernels compiled (one tiny training step in the parent fills Numba's cache and the
    process, so no worker compiles), each on one thread (BLAS capped by threadpoolctl). The
    parent creates every trial (``study.ask``) and sends its id to an idle worker, and watches
    the workers: one that dies mid-trial (SIGKILL, out of memory) has its trial marked FAIL and
    a new worker takes over the rest. Workers do not ask for trials themselves because Optuna's
    claim of an enqueued trial is not atomic on SQLite (``SELECT … FOR UPDATE`` is a no-op
    there; two workers were seen running one trial).

Dask
    ``client=`` (a ``dask.distributed.Client``) runs each trial as one Dask task (the client
    asks for the trial, as many at a time as the cluster has threads). The tasks reach
    the study through the same RDB URL, not through ``optuna_integration.DaskStorage``: the RDB
    is what makes a study resumable and crash-proof (a scheduler restart loses nothing, the
    history is on disk), the same code runs locally and on the cluster, and it needs no further
    package. The cost: every worker must reach the database, so on several machines use a
    server database (``postgresql://…``) or an SQLite file on a disk they all mount (SQLite
    over NFS locks badly; fine for a few workers, not for dozens). The data go to the workers
    once, scattered from the client, so they need no copy of the files.

Counting trials
    ``trials`` counts the trials that ran to an end: completed, pruned, or failed by their own
    fault (a diverging loss). A trial cut short by a killed worker or by Ctrl-C is marked FAIL
    with ``fastcnn.cut`` set and does not count, so the study runs a replacement.

Repeatable
    Training is seeded (``seed``), so a trial's result follows from its parameters. With
    ``sampler="grid"`` or ``"random"`` the parent writes the parameters of every trial into the
    study before any worker starts (Optuna's enqueued trials, popped in order by the parent's
    ``ask``), so the same space and ``seed`` give the same set of trials with any ``jobs``.
    TPE is sequential by nature: repeatable with ``jobs=1`` only.

Storage safety
    SQLite serialises writers with a file lock and, in its write-ahead-log mode used here,
    ignores a transaction cut by a killed process, so a crash never corrupts the file; a
    process waits up to 60 s for the lock.

Optuna, Dask and distributed are the optional extra ``fastcnn[sweep]``; this module imports them
only when a sweep runs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import numpy as np
    import optuna

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_STORAGE = "sqlite:///sweep.db"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
PLOTS = ("optimization_history.png", "param_importances.png", "parallel_coordinate.png")
_SQLITE_TIMEOUT = 60  # seconds a writer waits for SQLite's lock before giving up
_MAX_CRASHES_PER_JOB = 3  # workers that die this often per job are not a glitch: stop
# Study user attributes written by the sweep.
_SPACE_ATTR, _SPLIT_ATTR = "fastcnn.space", "fastcnn.split"
# Trial user attributes.
_WORKER, _SECONDS, _LOSS, _ERROR, _CUT = (
    "fastcnn.worker",
    "fastcnn.seconds",
    "fastcnn.loss",
    "fastcnn.error",
    "fastcnn.cut",
)


class SweepError(ValueError):
    """A mistake in a search space, a storage or a sweep setting; the message is one line."""


def _require_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("sweeps need Optuna: pip install 'fastcnn[sweep]'") from None
    return optuna


# ---------------------------------------------------------------------------------------------------
# the options a trial may set


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweepError(f"expected a positive integer, got {value!r}")
    return value


def _positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepError(f"expected a positive number, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise SweepError(f"expected a positive number, got {value!r}")
    return float(value)


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise SweepError(f"expected a fraction between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise SweepError(f"expected an integer from 0 to 2**32 - 1, got {value!r}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise SweepError(f"expected true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise SweepError(f"expected a string, got {value!r}")
    return value


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise SweepError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def _model(value: Any) -> str:
    from .models import MODELS

    if value not in MODELS:
        raise SweepError(f"unknown model {value!r}; the known models are {', '.join(MODELS)}")
    return value


@dataclasses.dataclass(frozen=True)
class Option:
    """One option a sweep sets: its check (returns the value converted, or raises SweepError),
    its default, where it goes, and whether the sampler may choose it.

    ``to`` is ``"model"`` (a keyword of the model builder), ``"train"`` (a keyword of
    ``Network.train``), ``"seed"`` (the seed of both), or ``"study"`` (fixed for the whole
    study: the data and the split). ``number`` is ``int`` or ``float`` for options a range may
    cover."""

    check: Callable[[Any], Any]
    default: Any
    to: str
    searchable: bool = True
    number: type | None = None


# Named as `fastcnn train`'s flags (--batch-size is batch_size). A later option (optimizer,
# momentum, weight_decay, ...) joins by one entry: an Option with to="model" or to="train" is
# passed through as that keyword.
OPTIONS: dict[str, Option] = {
    "model": Option(_model, "notebook", "model"),
    "data": Option(_text, None, "study", searchable=False),
    "dataset": Option(_one_of("mnist", "fashion-mnist"), "mnist", "study", searchable=False),
    "limit": Option(_positive_int, None, "study", searchable=False),
    "validation": Option(_fraction, 0.2, "study", searchable=False),
    "split_seed": Option(_seed, 0, "study", searchable=False),
    "epochs": Option(_positive_int, 1, "train", number=int),
    "rate": Option(_positive_float, 0.1, "train", number=float),
    "batch_size": Option(_positive_int, 1, "train", number=int),
    "shuffle": Option(_boolean, False, "train"),
    "init": Option(_one_of("notebook", "xavier", "he"), "notebook", "model"),
    "dtype": Option(_one_of("float64", "float32"), "float64", "model"),
    "backend": Option(_one_of("numba", "scipy"), "numba", "model"),
    "seed": Option(_seed, 0, "seed", number=int),
}


@dataclasses.dataclass(frozen=True)
class Range:
    """A range the sampler draws from: ``low`` to ``high`` inclusive, on a log scale if ``log``,
    in steps of ``step`` if given (TOML: ``rate = { low = 0.01, high = 1.0, log = true }``)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


Dimension = Range | tuple


class Space:
    """A search space: the options every trial shares and those the sampler chooses.

    Parameters
    ----------
    train : mapping of option name to value
        Fixed options (see ``OPTIONS``), e.g. ``{"data": "...", "limit": 2000, "epochs": 1}``.
    space : mapping of option name to a :class:`Range`, a ``{"low", "high", "log", "step"}``
        mapping, or a list of choices, e.g. ``{"rate": Range(0.01, 1, log=True), "seed": [0, 1, 2]}``.
        ``seed`` as a list repeats every configuration over those seeds (for the grid sampler;
        the other samplers draw it like any other choice), and the results table gives the
        spread over them.
    source : str, keyword-only
        Where the space was read from, for error messages.
    base : path, keyword-only
        Directory a relative ``data`` path is taken from (the TOML file's; default: the
        current directory).

    Raises
    ------
    SweepError
        An unknown option (the message names it and the known ones), a bad value, an option
        both fixed and searched, a range over a non-numeric option, an empty list of choices.
    """

    def __init__(
        self,
        train: Mapping[str, Any] | None = None,
        space: Mapping[str, Any] | None = None,
        *,
        source: str = "space",
        base: PathLike | None = None,
    ) -> None:
        self.source = source
        train, space = dict(train or {}), dict(space or {})
        self.train = {name: self._fixed(name, value) for name, value in train.items()}
        self.space: dict[str, Dimension] = {
            name: self._dimension(name, value) for name, value in space.items()
        }
        both = sorted(set(self.train) & set(self.space))
        if both:
            raise SweepError(
                f"{source}: {', '.join(both)} is both fixed ([train]) and searched ([space]); "
                "keep one"
            )
        data = self.train.get("data")
        if data is not None and base is not None and not os.path.isabs(data):
            self.train["data"] = os.path.normpath(os.path.join(os.fspath(base), data))

    def _known(self, table: str, name: str) -> Option:
        option = OPTIONS.get(name.replace("-", "_"))
        if option is None:
            raise SweepError(
                f"{self.source}: unknown parameter {name!r} in [{table}]; the known ones are "
                f"{', '.join(OPTIONS)}"
            )
        return option

    def _fixed(self, name: str, value: Any) -> Any:
        option = self._known("train", name)
        try:
            return option.check(value)
        except SweepError as exc:
            raise SweepError(f"{self.source}: [train] {name}: {exc}") from None

    def _dimension(self, name: str, value: Any) -> Dimension:
        option = self._known("space", name)
        where = f"{self.source}: [space] {name}"
        if not option.searchable:
            raise SweepError(f"{where}: {name} is fixed for the whole study; put it in [train]")
        try:
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - {"low", "high", "log", "step"})
                if unknown or not {"low", "high"} <= set(value):
                    raise SweepError(
                        "a range is { low = ..., high = ... } with optional log and step, got "
                        f"{dict(value)!r}"
                    )
                value = Range(
                    value["low"], value["high"], value.get("log", False), value.get("step")
                )
            if isinstance(value, Range):
                return self._range(option, value)
            if isinstance(value, (list, tuple)):
                if not value:
                    raise SweepError("expected at least one choice, got an empty list")
                choices = tuple(option.check(v) for v in value)
                if len(set(choices)) != len(choices):
                    raise SweepError(f"the choices repeat a value: {list(value)!r}")
                return choices
            raise SweepError(f"expected a list of choices or a range {{low, high}}, got {value!r}")
        except SweepError as exc:
            raise SweepError(f"{where}: {exc}") from None

    @staticmethod
    def _range(option: Option, r: Range) -> Range:
        if option.number is None:
            raise SweepError("this option takes a list of choices, not a range")
        low, high = option.check(r.low), option.check(r.high)
        if not low < high:
            raise SweepError(f"expected low < high, got low = {r.low!r}, high = {r.high!r}")
        if not isinstance(r.log, bool):
            raise SweepError(f"log: expected true or false, got {r.log!r}")
        step = r.step
        if step is not None:
            step = option.check(step)
            if r.log:
                raise SweepError("a range takes log or step, not both")
        return Range(low, high, r.log, step)

    def option(self, name: str) -> Any:
        """The fixed value of option ``name``, or its default."""
        return self.train.get(name, OPTIONS[name].default)

    def values(self, name: str) -> tuple:
        """Every value option ``name`` may take (fixed: one; a range: its two ends)."""
        if name in self.space:
            dimension = self.space[name]
            return (dimension.low, dimension.high) if isinstance(dimension, Range) else dimension
        return (self.option(name),)

    def to_json(self) -> dict[str, Any]:
        """The space as plain data (what the study stores, to refuse a changed space on resume)."""
        return {
            "train": dict(self.train),
            "space": {
                n: dataclasses.asdict(d) if isinstance(d, Range) else list(d)
                for n, d in self.space.items()
            },
        }

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the choices, in declaration order (the grid sampler's trials)."""
        ranges = [n for n, d in self.space.items() if isinstance(d, Range)]
        if ranges:
            raise SweepError(
                f"{self.source}: the grid sampler needs lists of choices, but {', '.join(ranges)} "
                "is a range"
            )
        names = list(self.space)
        choices = [tuple(d) for d in self.space.values() if not isinstance(d, Range)]
        return [dict(zip(names, c, strict=True)) for c in itertools.product(*choices)]

    def draw(self, seed: int, k: int) -> dict[str, Any]:
        """The ``k``-th random trial of sampler seed ``seed``: a function of (seed, k) alone, so
        any number of workers get the same trials."""
        import numpy as np

        rng = np.random.default_rng([seed, k])
        params: dict[str, Any] = {}
        for name, d in self.space.items():
            if not isinstance(d, Range):
                params[name] = d[int(rng.integers(len(d)))]
                continue
            integer = OPTIONS[name].number is int
            if d.step is not None:
                value: Any = d.low + d.step * int(rng.integers(int((d.high - d.low) // d.step) + 1))
            elif d.log:
                value = math.exp(rng.uniform(math.log(d.low), math.log(d.high + integer)))
            else:
                value = rng.uniform(d.low, d.high + integer)
            value = min(max(value, d.low), d.high)
            params[name] = math.floor(value) if integer else float(value)
        return params

    def __repr__(self) -> str:
        return f"Space(train={self.train!r}, space={self.space!r})"


def load_space(path: PathLike) -> Space:
    """Read a search space from a TOML file with a ``[train]`` and a ``[space]`` table::

        [train]                      # fixed options, named as `fastcnn train`'s flags
        model = "notebook"
        data = "../shared/data/mnist"  # relative to this file
        limit = 2000
        epochs = 1
        [space]                      # what the sampler chooses
        rate = { low = 0.01, high = 1.0, log = true }
        init = ["notebook", "xavier"]
        batch_size = [1, 16, 32]
        seed = [0, 1, 2]

    Raises
    ------
    SweepError
        A file that is not TOML, an unknown table or parameter, a bad value (one line naming
        the file and the key).
    OSError
        The file cannot be read.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    source = os.fspath(path)
    with open(source, "rb") as f:
        try:
            document = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise SweepError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"train", "space"})
    if unknown:
        raise SweepError(
            f"{source}: unknown table or key {', '.join(unknown)}; a search space has [train] "
            "and [space]"
        )
    for table in ("train", "space"):
        if not isinstance(document.get(table, {}), dict):
            raise SweepError(f"{source}: {table} must be a table ([{table}])")
    return Space(
        document.get("train"),
        document.get("space"),
        source=source,
        base=os.path.dirname(os.path.abspath(source)),
    )


# ---------------------------------------------------------------------------------------------------
# data and one trial


@dataclasses.dataclass
class Data:
    """The training and validation split of a study: scaled images, one-hot training targets,
    validation labels, and the split's record (saved with the study)."""

    train_x: np.ndarray
    train_y: np.ndarray
    validation_x: np.ndarray
    validation_labels: np.ndarray
    split: dict[str, Any]


def load_data(space: Space) -> Data:
    """Load the space's dataset, take the first ``limit`` training images, and hold out a
    ``validation`` fraction of them, chosen by ``split_seed`` (never the test set)."""
    import numpy as np

    from .datasets import load_fashion_mnist, load_mnist, one_hot, scale_images

    data, dataset = space.option("data"), space.option("dataset")
    loader = load_mnist if dataset == "mnist" else load_fashion_mnist
    if data is not None and not os.path.isdir(data):
        raise SweepError(f"{data}: no such directory ([train] data)")
    (images, labels), _ = loader() if data is None else loader(data, download=False)
    limit = space.option("limit")
    images, labels = images[:limit], labels[:limit]
    fraction = space.option("validation")
    held = round(len(images) * fraction)
    if held < 1 or held >= len(images):
        raise SweepError(
            f"{space.source}: validation = {fraction} of {len(images)} images leaves "
            f"{held} to validate and {len(images) - held} to train on; both need at least one"
        )
    order = np.random.default_rng(space.option("split_seed")).permutation(len(images))
    validation, train = np.sort(order[:held]), np.sort(order[held:])
    split = {
        "dataset": dataset,
        "images": len(images),
        "validation": held,
        "fraction": fraction,
        "split_seed": space.option("split_seed"),
        # The indices themselves, in 16 hex digits: a resumed study on other data is refused.
        "indices_sha256": hashlib.sha256(validation.astype("<i8").tobytes()).hexdigest()[:16],
    }
    return Data(
        scale_images(images[train]),
        one_hot(labels[train]),
        scale_images(images[validation]),
        labels[validation].astype(np.int64),
        split,
    )


class Objective:
    """``objective(trial)``: train one model with the trial's options, report the validation
    accuracy after every epoch (``trial.report``; a pruner may stop it there), return the last."""

    def __init__(self, space: Space, data: Data):
        self.space, self.data = space, data

    def options(self, trial: optuna.Trial) -> dict[str, Any]:
        options = {name: self.space.option(name) for name in OPTIONS}
        for name, d in self.space.space.items():
            if not isinstance(d, Range):
                options[name] = trial.suggest_categorical(name, list(d))
            elif OPTIONS[name].number is int:
                options[name] = trial.suggest_int(
                    name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log
                )
            else:
                options[name] = trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
        return options

    def __call__(self, trial: optuna.Trial) -> float:
        optuna = _require_optuna()
        options = self.options(trial)
        start = time.perf_counter()
        accuracy = math.nan

        def on_epoch(epoch: int, history: Any) -> None:
            nonlocal accuracy
            accuracy = network.evaluate(self.data.validation_x, self.data.validation_labels)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                self._record(trial, start, history)
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        network = build_network(options)
        history = network.train(
            self.data.train_x,
            self.data.train_y,
            *_loss(options["model"]),
            verbose=False,
            on_epoch=on_epoch,
            rng=options["seed"],
            **{n: options[n] for n, o in OPTIONS.items() if o.to == "train"},
        )
        self._record(trial, start, history)
        return accuracy

    @staticmethod
    def _record(trial: optuna.Trial, start: float, history: Any) -> None:
        trial.set_user_attr(_SECONDS, time.perf_counter() - start)
        trial.set_user_attr(_LOSS, float(history[-1]))


def _loss(model: str):
    """The loss pair the preset ``model`` is trained with (its recipe's)."""
    from .models import RECIPES

    recipe = RECIPES[model]
    return recipe.loss, recipe.d_loss


def build_network(options: Mapping[str, Any]):
    """The trial's network: ``MODELS[model]`` with the options that go to the model."""
    import numpy as np

    from .models import MODELS

    kwargs = {n: options[n] for n, o in OPTIONS.items() if o.to == "model" and n != "model"}
    kwargs["dtype"] = np.dtype(kwargs["dtype"])
    return MODELS[options["model"]](rng=options["seed"], **kwargs)


def warm_up(space: Space, data: Data) -> None:
    """Compile (or load from Numba's cache) every kernel the space's trials will run, with one
    tiny training step per model, dtype and path (per sample, mini-batch), so workers started
    after this do not each compile."""
    low, *_, high = space.values("batch_size") * 2
    # Per sample (1) and mini-batch (2) compile apart; a range may cover both.
    paths = sorted({1 if b == 1 else 2 for b in (*space.values("batch_size"), low, high)})
    if isinstance(space.space.get("batch_size"), Range) and high > 1:
        paths = sorted({*paths, 2})
    for model, dtype, init, backend, batch_size in itertools.product(
        space.values("model"),
        space.values("dtype"),
        space.values("init")[:1],
        space.values("backend"),
        paths,
    ):
        options = {n: space.option(n) for n in OPTIONS}
        options.update(model=model, dtype=dtype, init=init, backend=backend, seed=0)
        network = build_network(options)
        network.train(
            data.train_x[:2],
            data.train_y[:2],
            *_loss(model),
            1,
            0.1,
            verbose=False,
            batch_size=batch_size,
        )
        network.evaluate(data.validation_x[:2], data.validation_labels[:2])


# ---------------------------------------------------------------------------------------------------
# the study


def _storage(url: str):
    """Optuna's RDB storage for ``url``; SQLite connections wait up to a minute for the lock."""
    optuna = _require_optuna()
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {}
    path = _sqlite_path(url)
    if path is not None:
        kwargs["creator"] = functools.partial(_sqlite_connect, path)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except sqlalchemy.exc.ArgumentError as exc:
        raise SweepError(f"{url}: not a storage URL ({exc}); e.g. sqlite:///sweep.db") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise SweepError(f"{url}: cannot open the storage ({_db_message(exc)})") from None


def _sqlite_path(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL (None for anything else, e.g. with options)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url or ":memory:" in url:
        return None
    return url[len(prefix) :]


def _sqlite_connect(path: str) -> Any:
    """An SQLite connection with a write-ahead log, synced at checkpoints rather than at every
    commit: a trial makes ~15 commits, each an fsync of ~6 ms otherwise, and creating the
    tables ~50. A killed process still loses nothing committed and corrupts nothing (SQLite's
    WAL guarantee); only a power cut may lose the last commits. Readers (``--show``, the tests'
    polls) no longer block the writers either."""
    import sqlite3

    connection = sqlite3.connect(path, timeout=_SQLITE_TIMEOUT, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _db_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]


def absolute_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute, so workers in other directories (Dask)
    open the same file."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + os.path.abspath(url[len(prefix) :])
    return url


def _sampler(name: str, seed: int):
    optuna = _require_optuna()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    # grid and random trials are enqueued with all their parameters; the sampler is not asked.
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(name: str):
    optuna = _require_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _counted(trial: Any) -> bool:
    state = trial.state.name
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and _ERROR in trial.user_attrs)


@dataclasses.dataclass
class _Plan:
    """Everything a worker needs to run trials of one study (fork-inherited or pickled)."""

    url: str
    study_name: str
    sampler: str
    pruner: str
    seed: int
    verbose: bool


def _open_study(plan: _Plan, sampler_seed: int):
    optuna = _require_optuna()
    return optuna.load_study(
        study_name=plan.study_name,
        storage=_storage(plan.url),
        sampler=_sampler(plan.sampler, sampler_seed),
        pruner=_pruner(plan.pruner),
    )


def _worker_tag() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_trial(study: Any, objective: Objective, trial: Any, tag: str, verbose: bool) -> Any:
    """Run ``trial`` (a ``Trial``, or the id of one the parent asked for), tell its result;
    the FrozenTrial."""
    optuna = _require_optuna()
    from optuna.trial import TrialState

    if not isinstance(trial, optuna.Trial):
        # Optuna's storage cache learns of trials made by other processes when it reads the
        # study's trials; it must know this one before a parameter is set.
        study.get_trials(deepcopy=False)
        trial = optuna.Trial(study, trial)
    trial.set_user_attr(_WORKER, tag)
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        frozen = study.tell(trial, state=TrialState.PRUNED)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            _cut(study, trial._trial_id, "interrupted")
        raise
    except FloatingPointError as exc:  # the trial's own fault (a diverging loss): a result
        trial.set_user_attr(_ERROR, str(exc))
        frozen = study.tell(trial, state=TrialState.FAIL)
    else:
        frozen = study.tell(trial, value)
    if verbose:
        _say(_trial_line(frozen))
    return frozen


def _cut(study: Any, trial_id: int, reason: str) -> Any:
    """Mark a running trial FAIL, cut short for ``reason``; the FrozenTrial, or None when it
    had finished meanwhile."""
    from optuna.trial import TrialState

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, _CUT, reason)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except Exception as exc:
        optuna = _require_optuna()
        if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
            return None
        raise
    return storage.get_trial(trial_id)


def _say(line: str) -> None:
    print(line, flush=True)


def _trial_line(t: Any) -> str:
    params = " ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
    seconds = t.user_attrs.get(_SECONDS)
    took = f", {seconds:.1f} s" if seconds is not None else ""
    if t.state.name == "COMPLETE":
        result = f"accuracy {t.value:.4f}"
    elif t.state.name == "PRUNED":
        result = f"pruned after epoch {t.last_step} at accuracy {t.value:.4f}"
    else:
        result = f"failed: {t.user_attrs.get(_ERROR) or t.user_attrs.get(_CUT) or 'error'}"
    return f"trial {t.number}: {result}{took}  {params}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _prepare(study: Any, space: Space, data: Data) -> None:
    """Record the space and the split with a new study; refuse to continue a study made from
    another space or on other data."""
    stored = study.user_attrs
    mine = json.loads(json.dumps(space.to_json()))
    if _SPACE_ATTR not in stored:
        study.set_user_attr(_SPACE_ATTR, mine)
        study.set_user_attr(_SPLIT_ATTR, data.split)
        return
    if stored[_SPACE_ATTR] != mine:
        old, new = stored[_SPACE_ATTR], mine
        keys = sorted(
            {
                f"[{t}] {k}"
                for t in ("train", "space")
                for k in set(old[t]) | set(new[t])
                if old[t].get(k) != new[t].get(k)
            }
        )
        raise SweepError(
            f"study {study.study_name!r} was made from another search space (differs in "
            f"{', '.join(keys)}); choose a new --study or --storage to start over"
        )
    if stored.get(_SPLIT_ATTR) != data.split:
        raise SweepError(
            f"study {study.study_name!r} was made on another validation split "
            f"({stored.get(_SPLIT_ATTR)}, now {data.split}); the data changed"
        )


def _cut_orphans(study: Any) -> None:
    """Mark FAIL (cut) the running trials of this machine whose process is gone: a previous
    ``fastcnn sweep`` killed with its workers. Other machines' trials are not ours to judge."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = t.user_attrs.get(_WORKER)
        if tag is not None and not _local_pid_alive(tag):
            _cut(study, t._trial_id, "worker died")


def _local_pid_alive(tag: str) -> bool:
    host, _, pid = tag.partition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _enqueue(study: Any, space: Space, plan: _Plan, runs: int) -> int:
    """For the grid and random samplers, write the next ``runs`` trials' parameters into the
    study (fewer when the grid has fewer points left); how many runs there are to do."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    if plan.sampler == "tpe":
        return runs
    new = max(0, runs - waiting)
    if plan.sampler == "grid":
        taken = [
            t.params or t.system_attrs.get("fixed_params", {})
            for t in trials
            if _counted(t) or t.state in (TrialState.RUNNING, TrialState.WAITING)
        ]
        todo = [p for p in space.grid() if p not in taken]
        chosen = todo[:new]
        runs = waiting + len(chosen)
    else:
        chosen = [space.draw(plan.seed, len(trials) + i) for i in range(new)]
    for params in chosen:
        study.enqueue_trial(params)
    return runs


def run(
    space: Space,
    *,
    storage: str = DEFAULT_STORAGE,
    study: str | None = None,
    trials: int | None = None,
    jobs: int = 1,
    client: Any = None,
    sampler: str = "tpe",
    pruner: str = "none",
    seed: int = 0,
    verbose: bool = True,
) -> optuna.Study:
    """Run (or continue) a sweep over ``space`` until the study holds ``trials`` finished trials.

    Parameters
    ----------
    space : Space
    storage : str
        SQLAlchemy URL of the study's database (default ``sqlite:///sweep.db``).
    study : str
        The study's name (default: ``"fastcnn"``); an existing study of that name continues,
        if it was made from the same space and data.
    trials : int
        Finished trials to reach (default: the grid's size for ``sampler="grid"``, else 20).
    jobs : int
        Worker processes on this machine (1: in this process), at most the CPU count.
    client : dask.distributed.Client, optional
        Run the trials as tasks on this Dask cluster instead (``jobs`` is then ignored).
    sampler : {"tpe", "random", "grid"}
    pruner : {"none", "median", "hyperband"}
        Stops trials whose per-epoch validation accuracy lags (needs ``epochs`` > 1).
    seed : int
        The sampler's seed.
    verbose : bool
        Print one line per finished trial.

    Returns
    -------
    optuna.Study
        Value of every trial: its validation accuracy, maximised.

    Raises
    ------
    SweepError
        A bad setting, a storage that cannot be opened, a study made from another space.
    KeyboardInterrupt
        After marking the running trials FAIL (cut); finished trials stay in the storage.
    """
    optuna = _require_optuna()
    if sampler not in SAMPLERS:
        raise SweepError(f"sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if pruner not in PRUNERS:
        raise SweepError(f"pruner: expected one of {', '.join(PRUNERS)}, got {pruner!r}")
    cores = os.cpu_count() or 1
    if client is None and not (isinstance(jobs, int) and 1 <= jobs <= cores):
        raise SweepError(f"jobs: expected 1 to {cores} (the CPU count), got {jobs!r}")
    grid = space.grid() if sampler == "grid" else None
    if trials is None:
        trials = len(grid) if grid is not None else 20
    if not (isinstance(trials, int) and trials >= 1):
        raise SweepError(f"trials: expected a positive integer, got {trials!r}")
    if grid is not None and trials > len(grid):
        trials = len(grid)
    url = absolute_url(storage)
    name = study or "fastcnn"
    data = load_data(space)
    optuna_storage = _storage(url)
    try:
        the_study = optuna.create_study(
            storage=optuna_storage,
            study_name=name,
            direction="maximize",
            load_if_exists=True,
            sampler=_sampler(sampler, seed),
            pruner=_pruner(pruner),
        )
    except Exception as exc:
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
            raise SweepError(f"{url}: cannot open the storage ({_db_message(exc)})") from None
        raise
    _prepare(the_study, space, data)
    _cut_orphans(the_study)
    plan = _Plan(url, name, sampler, pruner, seed, verbose)
    done = sum(_counted(t) for t in the_study.get_trials(deepcopy=False))
    runs = _enqueue(the_study, space, plan, max(0, trials - done))
    if runs == 0:
        return the_study
    objective = Objective(space, data)
    warm_up(space, data)
    if client is not None:
        _run_dask(client, plan, the_study, space, data, runs)
    elif jobs == 1:
        for _ in range(runs):
            _run_trial(the_study, objective, the_study.ask(), _worker_tag(), verbose)
    else:
        _Supervisor(plan, the_study, optuna_storage, objective, jobs).run(runs)
    return the_study


# ---------------------------------------------------------------------------------------------------
# worker processes on this machine


def _cap_threads(threads: int) -> None:
    """At most ``threads`` BLAS threads in this process (the trial's networks use one Numba
    thread, ``Network``'s default)."""
    os.environ["NUMBA_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _worker_main(conn: Any, plan: _Plan, objective: Objective, index: int, threads: int) -> None:
    """A forked worker: runs the trial whose id the parent sends, until it sends None."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _cap_threads(threads)
    study = _open_study(plan, plan.seed + 1 + index)
    tag = _worker_tag()
    while (trial_id := conn.recv()) is not None:
        conn.send(_run_trial(study, objective, trial_id, tag, plan.verbose).number)


def _replace(study: Any, plan: _Plan, cut: Any) -> None:
    """Put a cut trial's parameters back into the queue (grid and random), so the study still
    ends with the planned set of trials."""
    if cut is not None and plan.sampler != "tpe":
        study.enqueue_trial(dict(cut.params or cut.system_attrs.get("fixed_params", {})))


class _Supervisor:
    """Runs trials on ``jobs`` forked workers. The parent alone creates trials (``study.ask``)
    and sends each worker the id of the next one: Optuna's claim of an enqueued trial is not
    atomic on SQLite (``SELECT … FOR UPDATE`` is a no-op there; two workers were seen running
    one trial). A worker that dies has its trial marked FAIL (cut) and is replaced."""

    def __init__(self, plan: _Plan, study: Any, storage: Any, objective: Objective, jobs: int):
        import multiprocessing

        self.plan, self.study, self.storage = plan, study, storage
        self.objective, self.jobs = objective, jobs
        # fork: workers inherit the loaded data and compiled kernels instead of importing,
        # reading and loading them again (seconds each, against trials of a second).
        self.context = multiprocessing.get_context("fork")
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.started = 0

    def _start(self) -> Any:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=_worker_main,
            args=(child, self.plan, self.objective, self.started, self.threads),
            daemon=True,
        )
        self.storage.engine.dispose()  # no database connection crosses the fork
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork in a process with threads (BLAS's): the children
            # never use them; they run single-threaded code and open their own database.
            warnings.simplefilter("ignore", DeprecationWarning)
            process.start()
        child.close()
        self.started += 1
        return process, parent

    def run(self, runs: int) -> None:
        from multiprocessing.connection import wait

        running: dict[Any, tuple[Any, int]] = {}  # connection -> (process, trial id)
        pending, crashes = runs, 0

        def give(process: Any, conn: Any) -> None:
            nonlocal pending
            trial = self.study.ask()
            conn.send(trial._trial_id)
            running[conn] = (process, trial._trial_id)
            pending -= 1

        try:
            for _ in range(min(self.jobs, runs)):
                give(*self._start())
            while running:
                sentinels = {p.sentinel: c for c, (p, _) in running.items()}
                for ready in wait([*running, *sentinels]):
                    conn = sentinels.get(ready, ready)
                    if conn not in running:
                        continue  # its sentinel and its pipe were both ready: handled
                    process, trial_id = running.pop(conn)
                    try:
                        conn.recv()
                    except (EOFError, OSError):  # died mid-trial
                        process.join()
                        crashes += 1
                        cut = _cut(self.study, trial_id, "worker died")
                        if cut is not None:
                            pending += 1
                            _replace(self.study, self.plan, cut)
                            if self.plan.verbose:
                                _say(
                                    f"trial {cut.number}: failed: its worker died (exit status "
                                    f"{process.exitcode})"
                                )
                        if crashes > _MAX_CRASHES_PER_JOB * self.jobs:
                            raise SweepError(
                                f"{crashes} worker processes died (the last with exit status "
                                f"{process.exitcode}); stopping the sweep"
                            ) from None
                        if pending:
                            give(*self._start())
                        continue
                    if pending:
                        give(process, conn)
                    else:
                        conn.send(None)
                        process.join()
        except BaseException:
            for process, _ in running.values():
                process.kill()
            for process, trial_id in running.values():
                process.join()
                _cut(self.study, trial_id, "interrupted")
            raise


# ---------------------------------------------------------------------------------------------------
# Dask


# One entry per study a Dask worker process has run trials of: the opened study and objective.
# A cache of what the tasks' arguments determine, so trials after the first skip the
# database's schema check and the data's unpickling; it never changes a result.
_DASK_CACHE: dict[tuple[str, str], tuple[Any, Objective]] = {}


def _dask_trial(plan: _Plan, space: Space, data: Data, trial_id: int) -> Any:
    """Run the trial ``trial_id`` as a Dask task, on a worker that reaches ``plan.url``; its
    FrozenTrial, or None when an earlier attempt of this task started it on a worker that died
    (Dask runs the task again; the trial is then cut and the client asks for another)."""
    key = (plan.url, plan.study_name)
    if key not in _DASK_CACHE:
        _cap_threads(1)
        _DASK_CACHE[key] = (_open_study(plan, plan.seed + os.getpid()), Objective(space, data))
    study, objective = _DASK_CACHE[key]
    if _WORKER in study._storage.get_trial(trial_id).user_attrs:
        _cut(study, trial_id, "worker died")
        return None
    return _run_trial(study, objective, trial_id, _worker_tag(), verbose=False)


def dask_setup(worker: Any = None) -> None:
    """Ready a Dask worker for trials when it starts (``dask worker --preload fastcnn.sweep``;
    Dask calls this function of a preloaded module): import NumPy, Numba, Optuna and SQLAlchemy
    and load the notebook network's kernels (both paths, float64) from Numba's cache, so the
    first trial on the worker does not spend seconds on them."""
    import numpy as np
    import sqlalchemy  # noqa: F401  (the storage's, imported by the first trial otherwise)

    _require_optuna()
    _cap_threads(1)
    from .functions import d_mse, mse
    from .models import mnist_cnn

    x = np.zeros((2, 1, 28, 28))
    y = np.zeros((2, 10, 1))
    for batch_size in (1, 2):
        network = mnist_cnn(rng=0)
        network.train(x, y, mse, d_mse, 1, 0.1, verbose=False, batch_size=batch_size)
        network.predict_batch(x)


def _run_dask(client: Any, plan: _Plan, study: Any, space: Space, data: Data, runs: int) -> None:
    """Run ``runs`` trials as Dask tasks, as many at a time as the cluster has threads; the
    client asks for each trial just before it submits it (see :class:`_Supervisor`)."""
    from distributed import as_completed

    scattered = client.scatter(data, broadcast=True)
    slots = max(1, sum(client.nthreads().values()))
    flowing = as_completed()
    trial_of: dict[str, int] = {}
    pending = runs

    def submit() -> None:
        nonlocal pending
        trial = study.ask()
        future = client.submit(_dask_trial, plan, space, scattered, trial._trial_id, pure=False)
        trial_of[future.key] = trial._trial_id
        flowing.add(future)
        pending -= 1

    try:
        for _ in range(min(slots, runs)):
            submit()
        for future in flowing:
            try:
                frozen = future.result()
            except Exception as exc:  # KilledWorker after Dask's retries, or a bug on the worker
                frozen = None
                if plan.verbose:
                    _say(f"a trial failed on the cluster: {type(exc).__name__}: {exc}")
                _cut(study, trial_of[future.key], f"task failed: {type(exc).__name__}")
            if frozen is None:  # cut: its worker died
                cut = study._storage.get_trial(trial_of[future.key])
                _replace(study, plan, cut)
                pending += 1
                if plan.verbose:
                    _say(f"trial {cut.number}: failed: its Dask worker died")
            elif plan.verbose:
                _say(_trial_line(frozen))
            if pending:
                submit()
    except BaseException:
        futures = list(flowing.futures)
        client.cancel(futures)
        for key, trial_id in trial_of.items():
            if any(f.key == key for f in futures):
                _cut(study, trial_id, "interrupted")
        raise


def connect(address: str, timeout: float = 10.0) -> Any:
    """A ``dask.distributed.Client`` of the scheduler at ``address``, or one clear SweepError."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("--dask needs distributed: pip install 'fastcnn[sweep]'") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise SweepError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({exc})"
        ) from None
    except ValueError as exc:
        raise SweepError(
            f"{address}: not a scheduler address ({exc}); e.g. tcp://host:8786"
        ) from None


# ---------------------------------------------------------------------------------------------------
# results


def open_study(storage: str, study: str | None = None) -> optuna.Study:
    """An existing study, read-only use: ``storage`` is a URL or the path of an SQLite file;
    ``study`` may be omitted when the storage holds one."""
    optuna = _require_optuna()
    url = storage if "://" in storage else f"sqlite:///{storage}"
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not os.path.isfile(path):
            raise SweepError(f"{path}: no such file (a study's SQLite file)")
    names = [s.study_name for s in optuna.get_all_study_summaries(_storage(url))]
    if not names:
        raise SweepError(f"{storage}: holds no study")
    if study is None:
        if len(names) > 1:
            raise SweepError(
                f"{storage}: holds several studies ({', '.join(names)}); pick one with --study"
            )
        study = names[0]
    if study not in names:
        raise SweepError(f"{storage}: no study {study!r}; it holds {', '.join(names)}")
    return optuna.load_study(study_name=study, storage=_storage(url))


@dataclasses.dataclass
class Row:
    """One configuration of the results table: its trials (one per seed) and their accuracy."""

    params: dict[str, Any]
    trials: list[int]
    accuracies: list[float]
    seconds: list[float]

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def spread(self) -> float:
        """Standard deviation over the seeds (0 for one)."""
        n = len(self.accuracies)
        if n < 2:
            return 0.0
        return math.sqrt(sum((a - self.mean) ** 2 for a in self.accuracies) / (n - 1))


def results(study: optuna.Study) -> list[Row]:
    """The completed trials grouped by their parameters apart from ``seed``, best mean first."""
    groups: dict[str, Row] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE":
            continue
        params = {k: v for k, v in t.params.items() if k != "seed"}
        row = groups.setdefault(json.dumps(params, sort_keys=True), Row(params, [], [], []))
        row.trials.append(t.number)
        row.accuracies.append(float(t.value or 0.0))
        row.seconds.append(float(t.user_attrs.get(_SECONDS, math.nan)))
    return sorted(groups.values(), key=lambda r: (-r.mean, r.trials[0]))


def table(study: optuna.Study, top: int = 10) -> str:
    """The results as text: a summary line, then the ``top`` best configurations with their
    parameters, accuracy ± spread over seeds, seeds, mean seconds and trial numbers."""
    trials = study.get_trials(deepcopy=False)
    states = [t.state.name for t in trials]
    split = study.user_attrs.get(_SPLIT_ATTR, {})
    head = (
        f"study {study.study_name!r}: {len(trials)} trials, {states.count('COMPLETE')} complete, "
        f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed"
    )
    if split:
        head += (
            f"; accuracy on {split['validation']} validation images held out of "
            f"{split['images']} {split['dataset']} training images (split seed {split['split_seed']})"
        )
    rows = results(study)
    if not rows:
        return head + "\nno completed trial yet"
    names = sorted(
        {k for r in rows for k in r.params},
        key=lambda n: list(OPTIONS).index(n) if n in OPTIONS else len(OPTIONS),
    )
    header = ["rank", "accuracy", "seeds", "seconds", *names, "trials"]
    body = []
    for rank, r in enumerate(rows[:top], 1):
        spread = f" ± {r.spread:.4f}" if len(r.accuracies) > 1 else ""
        seconds = [s for s in r.seconds if not math.isnan(s)]
        body.append(
            [
                str(rank),
                f"{r.mean:.4f}{spread}",
                str(len(r.accuracies)),
                f"{sum(seconds) / len(seconds):.1f}" if seconds else "-",
                *(_fmt(r.params.get(n, "")) for n in names),
                ",".join(map(str, r.trials)),
            ]
        )
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [head, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body
    ]
    if len(rows) > top:
        lines.append(f"({len(rows) - top} more configurations; --csv writes every trial)")
    return "\n".join(lines)


def write_csv(study: optuna.Study, path: PathLike) -> Path:
    """Every trial as one CSV row: number, state, accuracy, seconds, loss, each parameter,
    worker, error. Written to a temporary name, then renamed."""
    trials = study.get_trials(deepcopy=False)
    names = sorted(
        {k for t in trials for k in t.params},
        key=lambda n: list(OPTIONS).index(n) if n in OPTIONS else len(OPTIONS),
    )
    rows = []
    for t in trials:
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "accuracy": "" if t.value is None else t.value,
                "seconds": t.user_attrs.get(_SECONDS, ""),
                "loss": t.user_attrs.get(_LOSS, ""),
                **{n: t.params.get(n, "") for n in names},
                "worker": t.user_attrs.get(_WORKER, ""),
                "error": t.user_attrs.get(_ERROR) or t.user_attrs.get(_CUT) or "",
            }
        )
    fields = ["trial", "state", "accuracy", "seconds", "loss", *names, "worker", "error"]
    with _atomic(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


@contextlib.contextmanager
def _atomic(path: PathLike, mode: str, **kwargs: Any) -> Iterator[Any]:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with open(fd, mode, **kwargs) as f:
            yield f
        # mkstemp creates 0600; give the file the mode a plain open() would (umask is only
        # read by setting it).
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def plot(study: optuna.Study, directory: PathLike) -> list[Path]:
    """Optuna's matplotlib plots of the study into ``directory``: the optimisation history, the
    parameter importances (with two or more completed trials and a varied parameter) and a
    parallel-coordinate plot. Returns the files written."""
    optuna = _require_optuna()
    try:
        import matplotlib
        from matplotlib import pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'fastcnn[sweep]'") from None
    from optuna.visualization import matplotlib as vis

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    varied = any(
        len({repr(t.params.get(k)) for t in complete}) > 1 for t in complete[:1] for k in t.params
    )
    plots: list[tuple[str, Callable]] = [(PLOTS[0], vis.plot_optimization_history)]
    if len(complete) >= 2 and varied:
        plots.append((PLOTS[1], vis.plot_param_importances))
    if complete and varied:
        plots.append((PLOTS[2], vis.plot_parallel_coordinate))
    written = []
    # Optuna's plots set the ggplot style globally; rc_context puts the caller's back.
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # e.g. "parameter importances will be equal" for a handful of trials: the plot says so.
        warnings.simplefilter("ignore", UserWarning)
        for name, draw in plots:
            axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            try:
                with _atomic(directory / name, "wb") as f:
                    figure.savefig(f, format="png", dpi=80, bbox_inches="tight")
            finally:
                plt.close(figure)
            written.append(directory / name)
    return written


__all__ = [
    "DEFAULT_STORAGE",
    "OPTIONS",
    "Data",
    "Objective",
    "Option",
    "Range",
    "Row",
    "Space",
    "SweepError",
    "connect",
    "load_data",
    "load_space",
    "open_study",
    "plot",
    "results",
    "run",
    "table",
    "write_csv",
]
