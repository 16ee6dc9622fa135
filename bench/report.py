"""Reference/Numba median ratios of the benchmark suite, with the machine they ran on.

    python -m bench.report                  # run `pytest bench/ --benchmark-only`, then report
    python -m bench.report --quick          # the same in quick mode (smoke test, noisy)
    python -m bench.report --json run.json  # report a saved `--benchmark-json` file
    python -m bench.report --markdown       # Markdown tables, for the README

The ratios compare medians measured in the same run; on a shared machine they are what to quote,
not the absolute times. Targets from the issue are printed beside them and never asserted.

The roofline comes from the same run (bench/test_roofline.py): the fastest measured read of the
MNIST dense layer's weights plus the fastest read-and-write of them is one sample's unavoidable
memory time on one core; each training row's time per sample is printed as a percentage of it.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (label, op, dtype of the Numba row, threads, minimum reference-float64/Numba median ratio);
# issue 7's targets, derived from this machine's roofline.
COLD_TARGET_SECONDS = 6.0  # issue 7: a first training step on a cold Numba cache

TARGETS = [
    ("training per sample, float64, 1 thread", "train", "float64", 1, 5.5),
    ("training per sample, float64, 2 threads", "train", "float64", 2, 8.0),
    ("training per sample, float32, 1 thread", "train", "float32", 1, 11.0),
    ("training per sample, float32, 2 threads", "train", "float32", 2, 16.0),
    ("prediction, float64", "predict", "float64", 1, 2.5),
]
# Every Numba training row should reach this share of the roofline printed by the report.
ROOFLINE_TARGET = 80.0

KIND_ORDER = {"kernel": 0, "layer": 1, "train": 2, "predict": 3, "roofline": 4}
DTYPE_ORDER = {"float64": 0, "float32": 1}
IMPL_ORDER = {"reference": 0, "numba": 1}


# ---------------------------------------------------------------------------------------- machine


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cpu_model():
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _caches():
    """``{"L2": "1024K per core", ...}`` from sysfs (Linux); empty elsewhere."""
    found = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind = _read(index / "level"), _read(index / "type")
        size, shared = _read(index / "size"), _read(index / "shared_cpu_list")
        if level in ("2", "3") and kind in ("Unified", "Data"):
            alone = shared is not None and shared.isdigit()
            found[f"L{level}"] = f"{size} " + ("per core" if alone else f"shared by CPUs {shared}")
    return found


def _threading_layer():
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # "Threading layer is not initialized": no parallel kernel has run yet
        return f"not initialised in this process (requested: {numba.config.THREADING_LAYER})"


def _blas():
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no mode="dicts"
        return "unknown"


def machine_details():
    """Machine, versions and threading settings, as found (nothing here changes them)."""
    import numba
    import numpy
    import scipy

    try:
        import pytest_benchmark

        pb = pytest_benchmark.__version__
    except ImportError:
        pb = "not installed"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "caches": _caches(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "pytest_benchmark": pb,
        "blas": _blas(),
        "numba_threading_layer": _threading_layer(),
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_get_num_threads": numba.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "NUMBA_"))
        },
    }


def header_lines(details, source):
    caches = ", ".join(f"{k} {v}" for k, v in details.get("caches", {}).items()) or "unknown"
    env = ", ".join(f"{k}={v}" for k, v in details.get("env", {}).items()) or "none set"
    return [
        f"Benchmarks: {source}",
        f"Machine: {details.get('cpu')}, {details.get('cores')} cores "
        f"({details.get('cores_usable')} usable); {caches}",
        f"OS: {details.get('os')}",
        f"Python {details.get('python')}, NumPy {details.get('numpy')} "
        f"(BLAS {details.get('blas')}), "
        f"SciPy {details.get('scipy')}, Numba {details.get('numba')}, "
        f"pytest-benchmark {details.get('pytest_benchmark')}",
        f"Numba threading layer: {details.get('numba_threading_layer')}; "
        f"NUMBA_NUM_THREADS {details.get('numba_num_threads')}, "
        f"get_num_threads() {details.get('numba_get_num_threads')}",
        f"Environment (as found, unchanged): {env}",
    ] + (
        [
            f"Load average (1, 5, 15 min) when the run ended: "
            f"{', '.join(f'{x:.2f}' for x in details['load_average'])} on {details.get('cores')} "
            f"cores; above ~1, other processes competed, and 2-thread rows suffer most"
        ]
        if details.get("load_average")
        else []
    )


# ---------------------------------------------------------------------------------------- results


def load_rows(data):
    """One dict per benchmark from a ``--benchmark-json`` document, sorted for the tables."""
    rows = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "op" not in info:
            continue  # not one of ours
        rows.append(
            {
                **info,
                "median": b["stats"]["median"],
                "rounds": b["stats"]["rounds"],
                "group": b.get("group"),
            }
        )
    first = {}
    for r in rows:
        first.setdefault(r["op"], len(first))
    rows.sort(
        key=lambda r: (
            KIND_ORDER.get(r["kind"], 9),
            first[r["op"]],
            r["shape"] != "MNIST",
            r["shape"],
            DTYPE_ORDER.get(r["dtype"], 9),
            IMPL_ORDER.get(r["impl"], 9),
            r["threads"],
        )
    )
    return rows


def _reference(rows, op, shape, dtype):
    for r in rows:
        if (r["op"], r["shape"], r["dtype"], r["impl"], r["threads"]) == (
            op,
            shape,
            dtype,
            "reference",
            1,
        ):
            return r["median"]
    return None


def fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(ratio):
    return "-" if ratio is None else f"{ratio:.2f}x"


def kernel_table(rows):
    """Kernels and layers: one line per op|shape|dtype, both paths of that group."""
    out, seen = [], set()
    for r in rows:
        if r["kind"] not in ("kernel", "layer"):
            continue
        key = (r["op"], r["shape"], r["dtype"])
        if key in seen:
            continue
        seen.add(key)
        ref = _reference(rows, *key)
        numba = next(
            (
                x["median"]
                for x in rows
                if (x["op"], x["shape"], x["dtype"]) == key and x["impl"] == "numba"
            ),
            None,
        )
        ratio = ref / numba if ref and numba else None
        out.append(
            [
                r["op"],
                r["shape"],
                r["dtype"],
                fmt_time(ref) if ref else "-",
                fmt_time(numba) if numba else "-",
                fmt_ratio(ratio),
            ]
        )
    return ["op", "shape", "dtype", "reference", "numba", "reference/numba"], out


def roofline(rows):
    """``{dtype: {...}}``: one sample's unavoidable memory traffic (bench/test_roofline.py), timed
    by the fastest way measured in this run: the best median of reading the MNIST dense layer's
    weights once, plus the best median of reading and writing them once. ``bound`` is their sum,
    in seconds per sample, the fastest per-sample training this machine's memory allows on one core.
    """
    found: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        if r["kind"] != "roofline":
            continue
        part = found.setdefault(r["dtype"], {}).setdefault(r["op"].removeprefix("roofline-"), {})
        part[r["impl"]] = r["median"]
    bounds = {}
    for dtype, parts in found.items():
        if {"read", "update"} <= parts.keys():
            best = {name: min(parts[name].values()) for name in ("read", "update")}
            bounds[dtype] = {
                **{n: parts[n] for n in parts},
                "best": best,
                "bound": sum(best.values()),
            }
    return bounds


def roofline_table(rows):
    """The roofline's parts per dtype, and the bound as samples/s and as x the notebook's code."""
    bounds = roofline(rows)
    out = []
    for dtype, b in sorted(bounds.items(), key=lambda kv: DTYPE_ORDER.get(kv[0], 9)):
        ref = next(
            (
                r
                for r in rows
                if (r["op"], r["impl"], r["dtype"]) == ("train", "reference", "float64")
            ),
            None,
        )
        ratio = ref["median"] / ref["samples"] / b["bound"] if ref else None
        out.append(
            [
                dtype,
                *(
                    " / ".join(
                        fmt_time(b[part][impl]) if impl in b[part] else "-"
                        for impl in ("blas", "numba")
                    )
                    for part in ("read", "update")
                ),
                fmt_time(b["bound"]),
                f"{1 / b['bound']:,.0f}",
                fmt_ratio(ratio),
            ]
        )
    return (
        [
            "dtype",
            "W read once: BLAS gemv / fastcnn",
            "W read+written once: BLAS ger / fastcnn",
            "bound per sample",
            "samples/s bound",
            "x notebook code (float64 ref)",
        ],
        out,
    )


def percent_of_roofline(row, bounds):
    """A training row's speed as a percentage of its dtype's roofline, or None."""
    if row["op"] != "train" or row["dtype"] not in bounds:
        return None
    return 100.0 * bounds[row["dtype"]]["bound"] / (row["median"] / row["samples"])


def training_table(rows):
    """Training epoch and prediction: one line per path, samples/s and both ratios."""
    out = []
    bounds = roofline(rows)
    for r in rows:
        if r["kind"] not in ("train", "predict"):
            continue
        same = _reference(rows, r["op"], r["shape"], r["dtype"])
        f64 = _reference(rows, r["op"], r["shape"], "float64")
        share = percent_of_roofline(r, bounds)
        out.append(
            [
                r["op"],
                str(r["samples"]),
                r["dtype"],
                r["impl"],
                str(r["threads"]),
                fmt_time(r["median"]),
                f"{r['samples'] / r['median']:,.0f}",
                fmt_ratio(same / r["median"] if same else None),
                fmt_ratio(f64 / r["median"] if f64 else None),
                "-" if share is None else f"{share:.0f}%",
            ]
        )
    return (
        [
            "op",
            "samples",
            "dtype",
            "impl",
            "threads",
            "median",
            "samples/s",
            "x same-dtype ref",
            "x float64 ref",
            "% of roofline",
        ],
        out,
    )


def target_table(rows, coldstart):
    out = []
    for label, op, dtype, threads, minimum in TARGETS:
        numba = next(
            (
                r
                for r in rows
                if (r["op"], r["dtype"], r["impl"], r["threads"]) == (op, dtype, "numba", threads)
            ),
            None,
        )
        ref = _reference(rows, op, numba["shape"], "float64") if numba else None
        if numba is None or ref is None:
            out.append([label, f">= {minimum:g}x", "not measured", "-"])
            continue
        ratio = ref / numba["median"]
        out.append(
            [label, f">= {minimum:g}x", fmt_ratio(ratio), "met" if ratio >= minimum else "NOT met"]
        )
    bounds = roofline(rows)
    shares = [
        (percent_of_roofline(r, bounds), r)
        for r in rows
        if r["op"] == "train" and r["impl"] == "numba"
    ]
    shares = [(p, r) for p, r in shares if p is not None]
    if shares:
        worst, row = min(shares, key=lambda pr: pr[0])
        out.append(
            [
                "every training row, % of its dtype's roofline",
                f">= {ROOFLINE_TARGET:g}%",
                f"lowest {worst:.0f}% ({row['dtype']}, {row['threads']} thread(s))",
                "met" if worst >= ROOFLINE_TARGET else "NOT met",
            ]
        )
    else:
        out.append(
            [
                "every training row, % of its dtype's roofline",
                f">= {ROOFLINE_TARGET:g}%",
                "not measured",
                "-",
            ]
        )
    if coldstart is not None:
        warm, target = coldstart["warm"]["since_spawn"], coldstart["target_warm_seconds"]
        out.append(
            [
                "warm-cache process to first training step",
                f"< {target:g} s",
                f"{warm:.2f} s",
                "met" if warm < target else "NOT met",
            ]
        )
        cold = coldstart["cold"]["since_spawn"]
        out.append(
            [
                "cold-cache process to first training step",
                f"<= {COLD_TARGET_SECONDS:g} s",
                f"{cold:.2f} s",
                "met" if cold <= COLD_TARGET_SECONDS else "NOT met",
            ]
        )
    else:
        out.append(["warm-cache process to first training step", "< 1.5 s", "not measured", "-"])
    return ["target (reference = SciPy float64, 1 thread)", "target", "measured", "status"], out


def slower(rows):
    """Groups where the Numba median is not below the reference's (STYLE: say so in the README)."""
    names = []
    for r in rows:
        if r["impl"] != "numba" or r["kind"] == "lenet":  # the LeNet table has its own ratios
            continue
        ref = _reference(rows, r["op"], r["shape"], r["dtype"])
        if ref is not None and ref / r["median"] < 1.0:
            names.append(
                f"{r['op']}|{r['shape']}|{r['dtype']}"
                + (f" ({r['threads']} threads)" if r["threads"] != 1 else "")
                + f": {ref / r['median']:.2f}x"
            )
    return names


# Issue 17's LeNet targets: (what, row, the row it is compared with, target ratio of samples/s).
LENET_TARGETS = [
    ("per sample, f32, vs the reference path", ("train", "numba", "float32", 1),
     ("train", "reference", "float64", 1), 25.0),
    ("per sample, f32, vs PyTorch at batch 1", ("train", "numba", "float32", 1),
     ("train", "PyTorch", "float32", 1), 6.0),
    ("B = 64, f32, vs PyTorch", ("train", "numba", "float32", 64),
     ("train", "PyTorch", "float32", 64), 1.5),
    ("B = 64, f64, vs PyTorch", ("train", "numba", "float64", 64),
     ("train", "PyTorch", "float64", 64), 1.5),
    ("evaluate 10,000, f32, vs PyTorch no_grad at 1,000", ("evaluate", "numba", "float32", 1000),
     ("evaluate", "PyTorch", "float32", 1000), 2.0),
]  # fmt: skip


def lenet_table(rows):
    """LeNet-5 (bench/test_lenet.py): samples/s of every contender, and the issue's ratios."""
    rates = {}
    for r in rows:
        if r["kind"] == "lenet":
            key = (r["op"].removeprefix("lenet_"), r["impl"], r["dtype"], r["batch_size"])
            rates[key] = r["samples"] / r["median"]
    if not rates:
        return None
    table = [
        [op, f"B={b}" if op == "train" else f"batches of {b}", impl, dtype, f"{rate:,.0f}"]
        for (op, impl, dtype, b), rate in rates.items()
    ]
    targets = []
    for what, mine, other, target in LENET_TARGETS:
        if mine in rates and other in rates:
            ratio = rates[mine] / rates[other]
            status = "met" if ratio >= target else "NOT met"
            targets.append([what, f">= {target}x", f"{ratio:.2f}x", status])
        else:
            targets.append([what, f">= {target}x", "-", "not measured"])
    return (["op", "batch", "impl", "dtype", "samples/s"], table), (
        ["target (issue 17: fastcnn / other, same run)", "target", "measured", "status"],
        targets,
    )


def render(headers, rows, markdown):
    if markdown:
        numeric = (
            [all(str(c)[:1].isdigit() for c in col) for col in zip(*rows, strict=True)]
            if rows
            else []
        )
        lines = [
            "| " + " | ".join(headers) + " |",
            "|" + "|".join("---:" if n else "---" for n in numeric or headers) + "|",
        ]
        return lines + ["| " + " | ".join(row) + " |" for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line("-" * w for w in widths)] + [line(row) for row in rows]


def report(data, coldstart, source, markdown=False):
    details = data.get("machine_info", {}).get("fastcnn") or machine_details()
    rows = load_rows(data)
    title = (lambda t: f"### {t}") if markdown else (lambda t: f"\n== {t} ==")
    lines = [("- " if markdown else "") + h for h in header_lines(details, source)]
    if details.get("quick"):
        lines.append(
            ("- " if markdown else "")
            + "QUICK MODE: few rounds and samples; a smoke test, not a measurement."
        )
    lines.append(
        ("- " if markdown else "")
        + "Medians of one run on a shared machine: quote the ratios, not the times."
    )
    for name, (headers, table) in (
        ("Kernels and layers (one call)", kernel_table(rows)),
        ("Training epoch and prediction", training_table(rows)),
        (
            "Roofline: one sample's unavoidable memory traffic, one core (bench/test_roofline.py)",
            roofline_table(rows),
        ),
        ("Issue targets (measured, not asserted)", target_table(rows, coldstart)),
    ):
        lines += ["", title(name), "", *render(headers, table, markdown)]
    lenet = lenet_table(rows)
    if lenet is not None:
        for name, (headers, table) in zip(
            (
                "LeNet-5, one thread (bench/test_lenet.py)",
                "Issue 17 targets (measured, not asserted)",
            ),
            lenet,
            strict=True,
        ):
            lines += ["", title(name), "", *render(headers, table, markdown)]
    from bench.peers import peer_table, peer_targets  # mini-batch and prediction rows, vs peers

    peers = peer_table(data)
    if peers is not None:
        lines += ["", title(peers[0]), "", *render(peers[1], peers[2], markdown)]
    targets = peer_targets(data)
    if targets is not None:
        lines += ["", title("Issue 8 targets (measured, not asserted)"), ""]
        lines += render(*targets, markdown)
    if coldstart is not None:
        from bench.coldstart import HEADER
        from bench.coldstart import rows as cold_rows

        lines += [
            "",
            title(f"Cold start (medians of {coldstart['repeats']} fresh process pairs)"),
            "",
            *render(HEADER, cold_rows(coldstart), markdown),
        ]
    lines += ["", title("Where Numba is not faster than the reference"), ""]
    lines += [("- " if markdown else "  ") + s for s in slower(rows) or ["none in this run"]]
    return "\n".join(lines)


def run_suite(json_path, quick, extra):
    env = dict(os.environ)
    if quick:
        env["FASTCNN_BENCH_QUICK"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "bench/",
        "--benchmark-only",
        "-q",
        "--benchmark-quiet",
        f"--benchmark-json={json_path}",
        *extra,
    ]
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    # pytest's progress goes to stderr so that stdout holds only the report
    return subprocess.run(cmd, cwd=REPO, env=env, stdout=sys.stderr).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="report this --benchmark-json file instead of running the suite",
    )
    parser.add_argument("--save-json", metavar="PATH", help="keep the run's --benchmark-json here")
    parser.add_argument("--quick", action="store_true", help="quick mode (FASTCNN_BENCH_QUICK=1)")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    parser.add_argument("--no-coldstart", action="store_true", help="skip bench.coldstart")
    parser.add_argument(
        "--coldstart-repeats",
        type=int,
        default=None,
        help="fresh process pairs for the cold start (default 3, quick 1)",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    status = 0
    if args.json:
        source = f"read from {args.json}"
        data = json.loads(Path(args.json).read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.save_json or Path(tmp) / "bench.json").resolve()
            status = run_suite(path, args.quick, args.pytest_args)
            if not path.is_file():
                print(f"pytest exited with {status} and wrote no JSON", file=sys.stderr)
                return status or 1
            data = json.loads(path.read_text())
        source = "pytest bench/ --benchmark-only" + (" (quick)" if args.quick else "")
        if status:
            source += f"; pytest exited with {status}: SOME BENCHMARKS FAILED OR WERE SKIPPED"
    coldstart = None
    if not args.no_coldstart:
        from bench import coldstart as cs

        repeats = args.coldstart_repeats or (1 if args.quick else 3)
        print(f"cold start: {repeats} fresh process pair(s)...", file=sys.stderr, flush=True)
        coldstart = cs.measure(repeats)
    print(report(data, coldstart, source, markdown=args.markdown))
    return status


if __name__ == "__main__":
    sys.exit(main())
