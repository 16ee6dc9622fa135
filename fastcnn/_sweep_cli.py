"""``fastcnn sweep``: the command line of :mod:`fastcnn.sweep` (its parser and its run function).

Standard library only at the top, like ``fastcnn.cli``: Optuna, NumPy and Numba load inside
:func:`run`, after the command has begun to catch Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_parser(commands: Any, positive_int: Any) -> None:
    """Add the ``sweep`` subcommand to ``fastcnn``'s subparsers."""
    sweep = commands.add_parser(
        "sweep",
        help="an Optuna study of fastcnn trainings (hyper-parameters and seeds)",
        description="Run (or continue) an Optuna study whose trials each train a fastcnn model "
        "with options from SPACE.toml and score it by its accuracy on a validation split held out "
        "of the training set; then print the best configurations. The study lives in --storage, "
        "so a second run continues it, and a killed worker or Ctrl-C loses no finished trial.",
    )
    sweep.add_argument(
        "space",
        metavar="SPACE.toml",
        nargs="?",
        help="the search space: a [train] table of fixed options (named as fastcnn train's "
        "flags: rate, epochs, batch_size, init, dtype, seed, limit, data, dataset, model, "
        "validation, split_seed) and a [space] table of ranges {low, high, log} or lists",
    )
    sweep.add_argument(
        "--show",
        metavar="DB",
        help="print the table of the study in DB (an SQLite file or a storage URL) and stop",
    )
    sweep.add_argument(
        "--storage",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL of the study's database (default: sqlite:///sweep.db)",
    )
    sweep.add_argument(
        "--study", metavar="NAME", help="study name (default: the space file's name, e.g. space)"
    )
    sweep.add_argument(
        "--trials",
        type=positive_int,
        metavar="N",
        help="finished trials the study should hold (default: the grid's size for --sampler "
        "grid, else 20); trials cut by a killed worker or Ctrl-C do not count",
    )
    sweep.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="worker processes on this machine, one thread each (default: 1; at most the CPU count)",
    )
    sweep.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the trials on the Dask cluster of this scheduler (e.g. tcp://host:8786); its "
        "workers must reach --storage",
    )
    sweep.add_argument(
        "--dask-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="seconds to wait for the Dask scheduler (default: 10)",
    )
    sweep.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe")
    sweep.add_argument(
        "--pruner",
        choices=("none", "median", "hyperband"),
        default="none",
        help="stop trials whose per-epoch validation accuracy lags (default: none)",
    )
    sweep.add_argument(
        "--seed", type=_seed, default=0, help="the sampler's seed (default: 0, so runs repeat)"
    )
    sweep.add_argument(
        "--top", type=positive_int, default=10, metavar="N", help="rows of the table"
    )
    sweep.add_argument("--csv", metavar="FILE", help="also write every trial to FILE")
    sweep.add_argument(
        "--plot",
        metavar="DIR",
        help="also write the optimisation history, parameter importances and parallel "
        "coordinates as PNG files to DIR (needs matplotlib)",
    )
    sweep.add_argument("--quiet", action="store_true", help="no line per trial")
    sweep.set_defaults(run=run)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    from .cli import EXIT_INTERRUPTED, CommandError, _interrupted
    from .sweep import SweepError

    try:
        return _run(args)
    except SweepError as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        storage = args.show or args.storage or "sqlite:///sweep.db"
        _interrupted(
            f"interrupted; the finished trials are kept in {storage} (run again to continue)"
        )
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    import sys

    from .cli import EXIT_USAGE, PROG

    usage = None
    if args.show is not None and args.space is not None:
        usage = "--show prints a study and runs nothing; give DB or SPACE.toml, not both"
    elif args.show is None and args.space is None:
        usage = "give a search space (fastcnn sweep SPACE.toml) or --show DB"
    if usage is not None:
        print(f"{PROG} sweep: error: {usage}", file=sys.stderr)
        return EXIT_USAGE
    from . import sweep

    optuna = sweep._require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    if args.show is not None:
        study = sweep.open_study(args.show, args.study)
    else:
        space = sweep.load_space(args.space)
        client = sweep.connect(args.dask, args.dask_timeout) if args.dask else None
        name = args.study or os.path.splitext(os.path.basename(args.space))[0]
        try:
            study = sweep.run(
                space,
                storage=args.storage or sweep.DEFAULT_STORAGE,
                study=name,
                trials=args.trials,
                jobs=args.jobs,
                client=client,
                sampler=args.sampler,
                pruner=args.pruner,
                seed=args.seed,
                verbose=not args.quiet,
            )
        finally:
            if client is not None:
                client.close()
        print()
    print(sweep.table(study, top=args.top))
    if args.csv:
        print(f"trials written to {sweep.write_csv(study, args.csv)}")
    if args.plot:
        written = sweep.plot(study, args.plot)
        print(f"plots written: {', '.join(str(p) for p in written)}")
    return 0
