"""Time from a fresh process to its first training step, with a cold and a warm Numba cache.

Each repeat makes a new ``NUMBA_CACHE_DIR``, then runs two fresh processes on it: the first
compiles every kernel (cold), the second loads them from the cache (warm). Each process imports
fastcnn, builds a preset (the seed's MNIST network, or ``--model lenet``) and trains it on one
random sample for one epoch with the preset's loss, per sample with plain SGD; with ``--recipe``,
one batch of the preset's recipe instead (its dtype, batch size, optimizer and schedule: what
``fastcnn train --model NAME`` compiles first).

    python -m bench.coldstart [--repeats 3] [--model notebook|lenet] [--recipe] [--json PATH]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import resource
except ImportError:  # Windows: no getrusage, and no CPU column
    resource = None

# Run in the child. time.time() marks the moment of the first step's end on the parent's clock;
# perf_counter splits the in-process time into its phases.
CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import fastcnn
from fastcnn.models import MODELS, RECIPES
t1 = time.perf_counter()
net = MODELS[MODEL]()
recipe = RECIPES[MODEL]
rng = np.random.default_rng(0)
x = rng.random((1, 1, 28, 28), dtype=np.float32)
y = np.zeros((1, 10, 1), np.float32)
y[0, 3, 0] = 1
options = {}
if RECIPE:
    # The command line's own reading of the recipe (fastcnn train --model MODEL), for one step.
    from fastcnn import cli
    args = cli._parser().parse_args(["train", "--model", MODEL])
    cli._apply_recipe(args)
    optimizer, schedule, _ = cli._recipe(args, 1)
    net = MODELS[MODEL](dtype=args.dtype)
    x, y = np.repeat(x, args.batch_size, axis=0), np.repeat(y, args.batch_size, axis=0)
    options = dict(batch_size=args.batch_size, optimizer=optimizer, schedule=schedule)
t2 = time.perf_counter()
net.train(x, y, recipe.loss, recipe.d_loss, 1, 0.01, verbose=False, **options)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "first_step": t3 - t2, "in_process": t3 - t0,
                  "done_at": time.time()}))
"""

PHASES = ("since_spawn", "in_process", "import", "build", "first_step", "cpu")
TARGET_WARM_SECONDS = 1.5  # the target for the warm second process; reported, not asserted


def run_once(cache_dir, model="notebook", recipe=False):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    before = _children_cpu()
    spawned = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", f"MODEL = {model!r}\nRECIPE = {recipe!r}\n" + CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start child failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["since_spawn"] = result.pop("done_at") - spawned
    # The child's CPU seconds (user + system), from spawn to exit: on a machine shared with other
    # work, the wall clock grows with the load, the CPU time much less.
    result["cpu"] = _children_cpu() - before
    return result


def _children_cpu():
    """User + system seconds of this process's waited-for children so far (NaN without
    getrusage)."""
    if resource is None:
        return float("nan")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(repeats=3, model="notebook", recipe=False):
    """Medians over ``repeats`` of each phase, for the cold and the warm process."""
    runs = {"cold": [], "warm": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="fastcnn-numba-cache-") as cache_dir:
            runs["cold"].append(run_once(cache_dir, model, recipe))
            runs["warm"].append(run_once(cache_dir, model, recipe))
    return {
        "repeats": repeats,
        **{
            kind: {p: statistics.median(r[p] for r in rs) for p in PHASES}
            for kind, rs in runs.items()
        },
        "target_warm_seconds": TARGET_WARM_SECONDS,
    }


def rows(result):
    """Table rows: cache, spawn-to-first-step, in-process total, import, build, first step, the
    child's CPU time."""
    # A file written before the CPU column has no "cpu".
    return [
        [kind, *(f"{result[kind][p]:.2f} s" if p in result[kind] else "-" for p in PHASES)]
        for kind in ("cold", "warm")
    ]


HEADER = [
    "Numba cache",
    "spawn -> first step done",
    "in process",
    "import fastcnn",
    "build net",
    "first train step",
    "child CPU (user + sys, spawn to exit)",
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", choices=("notebook", "lenet"), default="notebook")
    parser.add_argument(
        "--recipe", action="store_true", help="the first batch of the preset's recipe instead"
    )
    parser.add_argument("--json", help="also write the medians to this file")
    args = parser.parse_args(argv)
    result = measure(args.repeats, args.model, args.recipe)
    what = f"{args.model}, its recipe" if args.recipe else args.model
    print(f"Cold start ({what}), medians of {result['repeats']} fresh process pair(s):")
    for row in rows(result):
        print(
            f"  {row[0]}: "
            + ", ".join(f"{h} {v}" for h, v in zip(HEADER[1:], row[1:], strict=True))
        )
    warm = result["warm"]["since_spawn"]
    print(
        f"  target: warm process reaches its first training step in < {TARGET_WARM_SECONDS} s: "
        f"{warm:.2f} s, {'met' if warm < TARGET_WARM_SECONDS else 'not met'}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
