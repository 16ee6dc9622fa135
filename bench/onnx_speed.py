"""ONNX Runtime on the exported notebook network against ``Network.predict_batch``, same run.

For float32 and float64: the notebook's MNIST CNN (xavier init, seed 0), 1000 random images,
``predict_batch`` and ORT's CPUExecutionProvider (``InferenceSession.run``) alternated, each
timed ``--repeats`` times after a warm-up; medians, and their ratio. Both on ``--threads``
threads (``Network.num_threads``, ORT's intra-op threads; default 1: on a shared machine two
threads measure the neighbours). Needs ``fastcnn[onnx]``.

    python -m bench.onnx_speed [--repeats 15] [--batch 1000] [--threads 1]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import fastcnn
from fastcnn.models import mnist_cnn


def _median_seconds(fn, repeats):
    fn()  # warm-up: compiles, allocates, plans
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, batch {args.batch}, medians of {args.repeats}")
    print("dtype    threads  predict_batch ms  ORT ms  ORT / predict_batch  max |diff|")
    with tempfile.TemporaryDirectory() as where:
        for dtype in (np.float32, np.float64):
            for threads in (args.threads,):
                network = mnist_cnn(rng=0, init="xavier", dtype=dtype, num_threads=threads)
                path = Path(where) / f"{np.dtype(dtype).name}.onnx"
                fastcnn.export_onnx(network, path)
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
                xs = np.random.default_rng(0).random((args.batch, 1, 28, 28)).astype(dtype)
                ours = _median_seconds(lambda n=network, x=xs: n.predict_batch(x), args.repeats)
                theirs = _median_seconds(
                    lambda s=session, x=xs: s.run(None, {"input": x}), args.repeats
                )
                diff = np.abs(session.run(None, {"input": xs})[0] - network.predict_batch(xs))
                print(
                    f"{np.dtype(dtype).name:8} {threads:7}  {ours * 1e3:16.1f}  "
                    f"{theirs * 1e3:6.1f}  {theirs / ours:19.2f}  {diff.max():.1e}"
                )


if __name__ == "__main__":
    main()
