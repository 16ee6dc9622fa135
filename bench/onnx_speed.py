"""ONNX Runtime on exported presets against ``Network.predict_batch``, same run, interleaved.

For each preset (``--models``, default the notebook's MNIST CNN and LeNet-5; xavier/he init,
seed 0) and float32/float64: ``--images`` random images (default 10,000), ``predict_batch`` and
ORT's CPUExecutionProvider (``InferenceSession.run``, the whole batch in one call) timed in
alternation, ``--repeats`` rounds after a warm-up of each, the order swapped every round so a
neighbour's load or the machine's drift falls on both; medians, and their ratio. Both on
``--threads`` threads (``Network.num_threads``, ORT's intra-op threads; default 1: on a shared
machine two threads measure the neighbours). Needs ``fastcnn[onnx]``.

    python -m bench.onnx_speed [--models notebook,lenet] [--repeats 7] [--images 10000]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import fastcnn
from fastcnn.models import MODELS


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(a, b, repeats):
    """Median seconds of ``a()`` and of ``b()`` over ``repeats`` rounds, each round running both,
    in swapped order every other round, after one warm-up call of each (compiles, plans)."""
    a(), b()
    times_a, times_b = [], []
    for r in range(repeats):
        if r % 2:
            times_b.append(_seconds(b))
            times_a.append(_seconds(a))
        else:
            times_a.append(_seconds(a))
            times_b.append(_seconds(b))
    return statistics.median(times_a), statistics.median(times_b)


def main():
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="notebook,lenet")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(
        f"onnxruntime {ort.__version__}, {args.images} images, {args.threads} thread(s), "
        f"medians of {args.repeats} interleaved rounds"
    )
    print("model     dtype    predict_batch s  ORT s   ORT / predict_batch  max |diff|")
    init = {"notebook": "xavier", "lenet": "he"}
    with tempfile.TemporaryDirectory() as where:
        for name in args.models.split(","):
            for dtype in (np.float32, np.float64):
                network = MODELS[name](
                    rng=0, init=init.get(name, "xavier"), dtype=dtype, num_threads=args.threads
                )
                path = Path(where) / f"{name}-{np.dtype(dtype).name}.onnx"
                fastcnn.export_onnx(network, path)
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
                xs = np.random.default_rng(0).random((args.images, 1, 28, 28)).astype(dtype)
                ours, theirs = interleaved_medians(
                    lambda n=network, x=xs: n.predict_batch(x),
                    lambda s=session, x=xs: s.run(None, {"input": x}),
                    args.repeats,
                )
                diff = np.abs(session.run(None, {"input": xs})[0] - network.predict_batch(xs))
                print(
                    f"{name:9} {np.dtype(dtype).name:8} {ours:15.3f}  {theirs:6.3f}  "
                    f"{theirs / ours:19.2f}  {diff.max():.1e}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
