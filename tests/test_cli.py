"""Tests for the ``fastcnn`` command (fastcnn.cli) and the MNIST model builder (fastcnn.models).

The end-to-end tests run the command as a user does (``python -m fastcnn``, and the ``fastcnn``
script when installed) on the shared MNIST files; the rest call ``main(argv)`` in-process, which is
faster and returns the exit status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import fastcnn
from fastcnn import cli
from fastcnn.datasets import load_mnist, scale_images
from fastcnn.models import mnist_cnn

from .support import parameters

EPOCH_LINE = re.compile(
    r"^Epoch 1, total loss: [0-9.e-]+, test accuracy: (0\.\d{4}|1\.0000)$", re.MULTILINE
)
FINAL_LINE = re.compile(r"^test accuracy: (0\.\d{4}|1\.0000)$", re.MULTILINE)


def run(
    *args: str, cwd: Path, launcher: tuple[str, ...] = (sys.executable, "-m", "fastcnn")
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTCNN_")}
    return subprocess.run(
        [*launcher, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def one_error_line(result: subprocess.CompletedProcess | str, *fragments: str) -> str:
    err = result if isinstance(result, str) else result.stderr
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastcnn: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def draw_seven(path: Path) -> Path:
    image = Image.new("L", (120, 150), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(20, 20), (100, 20), (50, 135)], fill=0, width=14)
    image.save(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path):
    """One short `fastcnn train` run, shared by the evaluate and predict tests (mnist_dir, from
    conftest.py, skips them without the shared MNIST files)."""
    data = mnist_dir
    work = tmp_path_factory.mktemp("cli")
    result = run(
        "train",
        "--limit",
        300,
        "--test-limit",
        500,
        "--epochs",
        1,
        "--data",
        data,
        "--out",
        work / "model.npz",
        "--plot",
        work / "plots",
        cwd=work,
    )
    return result, work


# ---------------------------------------------------------------------------------------------------
# end to end, as a subprocess


@pytest.mark.mnist
@pytest.mark.slow  # trains on real MNIST: compiles the training loop
def test_train(trained) -> None:
    # Catches a broken entry point (python -m fastcnn), a missing epoch or accuracy line, a model
    # not written, --plot ignored, and warnings or tracebacks on stderr.
    result, work = trained
    assert result.returncode == 0, result.stderr
    # No tty: no progress bar, and nothing else belongs there but the one-line notice that the
    # kernels are compiling, which depends on what earlier tests left in the Numba cache.
    notice = "compiling kernels for this machine (first run only)…\n"
    assert result.stderr.removeprefix(notice) == ""
    assert EPOCH_LINE.search(result.stdout), result.stdout
    assert FINAL_LINE.search(result.stdout), result.stdout
    assert f"model saved to {work / 'model.npz'}" in result.stdout
    assert repr(fastcnn.load(work / "model.npz")) == repr(mnist_cnn(rng=0))
    assert sorted(p.name for p in (work / "plots").iterdir()) == [
        "confusion.png",
        "filters.png",
        "history.png",
    ]


@pytest.mark.mnist
@pytest.mark.slow  # trains on real MNIST: compiles the training loop
def test_evaluate(trained, mnist_dir: Path) -> None:
    # Catches evaluate disagreeing with train on the same model and test images (a different
    # preprocessing), and a confusion matrix that is not 10x10 or does not add up.
    result, work = trained
    assert result.returncode == 0, result.stderr
    trained_accuracy = FINAL_LINE.search(result.stdout).group(1)
    evaluated = run(
        "evaluate",
        work / "model.npz",
        "--data",
        mnist_dir,
        "--limit",
        500,
        "--plot",
        work / "eval-plots",
        cwd=work,
    )
    assert evaluated.returncode == 0 and evaluated.stderr == "", evaluated.stderr
    lines = evaluated.stdout.splitlines()
    match = re.fullmatch(r"accuracy: (\d\.\d{4}) \((\d+) of 500 mnist test images\)", lines[0])
    assert match and match.group(1) == trained_accuracy, lines[0]
    start = lines.index("confusion matrix (rows: true label, columns: predicted label)")
    header, *rows, total = lines[start + 1 : start + 13]
    assert header.split() == ["true\\pred", *map(str, range(10)), "total"]
    counts = np.array([[int(v) for v in row.split()[1:11]] for row in rows])
    assert [row.split()[0] for row in rows] == [str(d) for d in range(10)]
    assert counts.shape == (10, 10) and counts.sum() == 500
    assert np.trace(counts) == int(match.group(2))
    assert total.split()[-1] == "500"
    assert sorted(p.name for p in (work / "eval-plots").iterdir()) == [
        "confusion.png",
        "filters.png",
    ]


@pytest.mark.mnist
def test_predict_text(trained) -> None:
    # Catches a wrong output format (scripts grep "PATH: DIGIT (CONF)") or a digit that is not
    # the argmax of the printed confidences.
    _, work = trained
    image = draw_seven(work / "seven.png")
    result = run("predict", work / "model.npz", image, image, cwd=work)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    pattern = (
        re.escape(str(image))
        + r": (\d) \((\d\.\d\d)\)  "
        + " ".join(rf"{d}:(\d\.\d\d)" for d in range(10))
    )
    match = re.fullmatch(pattern, lines[0])
    assert match, lines[0]
    confidences = [float(c) for c in match.groups()[2:]]
    # the digit's printed confidence is the largest (ties possible after rounding to 2 places)
    assert confidences[int(match.group(1))] == max(confidences)
    assert match.group(2) == f"{max(confidences):.2f}"


@pytest.mark.mnist
@pytest.mark.parametrize("launcher", ["module", "script"])
def test_predict_json(trained, launcher: str) -> None:
    # Catches --json printing anything but one JSON document, and (script) a broken
    # [project.scripts] entry point.
    _, work = trained
    if launcher == "script":
        script = shutil.which("fastcnn")
        if script is None:
            pytest.skip("the fastcnn console script is not on PATH (pip install -e .)")
        command = (script,)
    else:
        command = (sys.executable, "-m", "fastcnn")
    image = draw_seven(work / "seven-json.png")
    result = run("predict", work / "model.npz", image, "--json", cwd=work, launcher=command)
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["path"] == str(image)
    assert len(record["confidences"]) == 10
    assert record["digit"] == int(np.argmax(record["confidences"]))
    assert record["confidence"] == max(record["confidences"])


@pytest.mark.mnist
def test_corrupt_data_dir(tmp_path: Path, mnist_dir: Path) -> None:
    # Catches a DataFileError escaping as a traceback, or an error that does not say which file.
    data = tmp_path / "data"
    shutil.copytree(mnist_dir, data)
    victim = next(data.glob("t10k-labels-idx1-ubyte*"))
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    result = run("train", "--data", data, "--limit", 10, "--out", tmp_path / "m.npz", cwd=tmp_path)
    assert result.returncode == 1
    one_error_line(result, str(victim))
    assert not (tmp_path / "m.npz").exists()


def test_corrupt_model(tmp_path: Path) -> None:
    # Catches a ModelFileError escaping as a traceback, or an error that does not name the model.
    model = tmp_path / "model.npz"
    model.write_bytes(np.random.default_rng(0).bytes(3000))
    result = run("predict", model, draw_seven(tmp_path / "7.png"), cwd=tmp_path)
    assert result.returncode == 1
    one_error_line(result, f"{model}: not a fastcnn model file")


# ---------------------------------------------------------------------------------------------------
# in-process: training


def train_args(data: Path, out: Path, *extra) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), *map(str, extra)]


@pytest.mark.mnist
@pytest.mark.slow  # trains on real MNIST: compiles the training loop
def test_short_training_learns(tmp_path: Path, mnist_dir: Path, capsys) -> None:
    # Catches training that does not learn (wrong gradient sign, labels misaligned with images,
    # images not scaled): one epoch on the 10,000 shared images with --init xavier --rate 0.5
    # reached 0.847 on the first 2,000 test images (0.866 on all 10,000). 2,000 training images
    # are not enough: that run stays at chance (0.11-0.14), still on the plateau sigmoids+MSE
    # start from.
    out = tmp_path / "m.npz"
    assert (
        cli.main(
            train_args(
                mnist_dir,
                out,
                "--init",
                "xavier",
                "--rate",
                0.5,
                "--epochs",
                1,
                "--test-limit",
                2000,
            )
        )
        == 0
    )
    stdout = capsys.readouterr().out
    accuracy = float(FINAL_LINE.search(stdout).group(1))
    assert accuracy > 0.75, stdout
    assert EPOCH_LINE.search(stdout)
    # the saved model is the one that was measured
    _, (test_x, test_y) = load_mnist(mnist_dir, download=False)
    saved = fastcnn.load(out).evaluate(scale_images(test_x[:2000]), test_y[:2000])
    assert saved == pytest.approx(accuracy, abs=5e-5)


@pytest.mark.mnist
def test_ctrl_c_keeps_last_epoch(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # Catches Ctrl-C losing the finished epochs (no save per epoch), a traceback instead of exit
    # 130, and a message naming the wrong epoch. The model kept must be exactly epoch 1's.
    small = ("--limit", 40, "--test-limit", 20)
    reference = tmp_path / "one-epoch.npz"
    assert cli.main(train_args(mnist_dir, reference, *small, "--epochs", 1)) == 0

    def progress_interrupted_in_epoch_2(self, epoch, done, running_loss):
        # Ctrl-C arrives as KeyboardInterrupt wherever the main thread is; train's progress
        # callback is a place inside an epoch we can reach.
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli._Progress, "__call__", progress_interrupted_in_epoch_2)
    out = tmp_path / "m.npz"
    capsys.readouterr()
    assert cli.main(train_args(mnist_dir, out, *small, "--epochs", 3)) == 130
    err = capsys.readouterr().err
    assert err == f"fastcnn: interrupted during epoch 2; kept the model of epoch 1 in {out}\n"
    kept, expected = fastcnn.load(out), fastcnn.load(reference)
    for ours, theirs in zip(kept.layers, expected.layers, strict=True):
        for name in ("filters", "weights", "biases"):
            if hasattr(ours, name):
                assert getattr(ours, name).tobytes() == getattr(theirs, name).tobytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "one-epoch.npz"]


@pytest.mark.mnist
def test_ctrl_c_in_first_epoch(
    tmp_path: Path, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # Catches a claim that a model was kept when none was written.
    def interrupted(self, epoch, done, running_loss):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli._Progress, "__call__", interrupted)
    out = tmp_path / "m.npz"
    assert cli.main(train_args(mnist_dir, out, "--limit", 5, "--test-limit", 5)) == 130
    assert capsys.readouterr().err == (
        "fastcnn: interrupted during epoch 1; no epoch completed, so no model was saved\n"
    )
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------
# in-process: errors and usage


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["train", "--epochs", "0"],
        ["train", "--rate", "-1"],
        ["train", "--backend", "cuda"],
        ["train", "--seed", "-1"],
        ["train", "--limit", "ten"],
        ["evaluate"],
        ["predict", "model.npz"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv, capsys) -> None:
    # Catches bad options reaching the code (a zero-epoch run, a negative rate) instead of
    # argparse's usage message and exit status 2.
    assert cli.main(argv) == 2
    assert "usage: fastcnn" in capsys.readouterr().err


def test_help_exits_0(capsys) -> None:
    # Catches the --init advice disappearing from the help (it is the fix for slow learning).
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "about 63% test accuracy after 5 epochs on 10,000 images" in text
    assert "--init xavier --rate 0.5 does much better, about 85% after one epoch" in text


def test_missing_files(tmp_path: Path, capsys) -> None:
    # Catches OSError's "[Errno 2] ..." form, or a traceback, for the commonest mistake.
    model = tmp_path / "nope.npz"
    assert cli.main(["predict", str(model), "x.png"]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"fastcnn: error: {model}: No such file or directory"
    )
    assert cli.main(["train", "--data", str(tmp_path / "nodir")]) == 1
    one_error_line(capsys.readouterr().err, f"{tmp_path / 'nodir'}: no such directory (--data)")
    assert cli.main(["train", "--out", str(tmp_path / "nodir" / "m.npz")]) == 1
    one_error_line(capsys.readouterr().err, "does not exist (--out)")


def test_predict_bad_image(tmp_path: Path, capsys) -> None:
    # Catches an unreadable image escaping as a traceback, or printing half the results.
    model = tmp_path / "m.npz"
    mnist_cnn(rng=0).save(model)
    good, bad = draw_seven(tmp_path / "7.png"), tmp_path / "bad.png"
    bad.write_text("not an image")
    assert cli.main(["predict", str(model), str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    one_error_line(captured.err, f"{bad}: not an image file")


def test_predict_wrong_model_shape(tmp_path: Path, capsys) -> None:
    # Catches a model for other inputs failing deep inside a layer instead of naming the model.
    model = tmp_path / "xor.npz"
    fastcnn.Network([fastcnn.Linear(2, 1, rng=0)]).save(model)
    assert cli.main(["predict", str(model), str(draw_seven(tmp_path / "7.png"))]) == 1
    one_error_line(capsys.readouterr().err, f"{model}: this model does not take 28x28 images")


# ---------------------------------------------------------------------------------------------------
# the model builder


def test_mnist_cnn_is_the_seeds_network() -> None:
    # Catches a layer out of order or of the wrong size, and an int rng restarted per layer (the
    # Linear layers would repeat the convolution's draws): mnist_cnn(rng=s) must equal
    # np.random.seed(s) followed by the notebook's cell.
    state = np.random.get_state()
    try:
        np.random.seed(3)
        seed_layers = [
            fastcnn.Convolution((1, 28, 28), 3, 5),
            fastcnn.Activation(fastcnn.sigmoid, fastcnn.d_sigmoid),
            fastcnn.Reshape((5, 26, 26), (5 * 26 * 26, 1)),
            fastcnn.Linear(5 * 26 * 26, 100),
            fastcnn.Activation(fastcnn.sigmoid, fastcnn.d_sigmoid),
            fastcnn.Linear(100, 10),
            fastcnn.Activation(fastcnn.sigmoid, fastcnn.d_sigmoid),
        ]
    finally:
        np.random.set_state(state)
    ours = mnist_cnn(rng=3)
    assert repr(ours) == repr(fastcnn.Network(seed_layers))
    ours_params, seed_params = parameters(ours), parameters(seed_layers)
    assert ours_params.keys() == seed_params.keys()
    for name, array in ours_params.items():
        assert np.array_equal(array, seed_params[name]), name


def test_mnist_cnn_options() -> None:
    # Catches an option applied to some layers only (a float64 Linear behind a float32
    # convolution would silently compute in float64).
    net = mnist_cnn(backend="scipy", dtype=np.float32, rng=0, init="xavier")
    computing = [net.layers[i] for i in (0, 3, 5)]
    assert all(layer.backend == "scipy" and layer.dtype == np.float32 for layer in computing)
    assert all(net.layers[i].backend == "scipy" for i in (1, 4, 6))
    assert not net.layers[3].biases.any()  # xavier: zero biases


@pytest.mark.parametrize(
    ("cached", "extra", "expected"),
    [
        (False, [], "compiling kernels for this machine (first run only)…\n"),
        (True, [], ""),
        (False, ["--batch-size", "4"], "compiling kernels for this machine (first run only)…\n"),
        pytest.param(
            True,
            ["--threads", "2"],
            "compiling the 2-thread kernels (every run with --threads)…\n",
            marks=pytest.mark.slow,  # compiles the parallel kernels, which are never cached
        ),
        (False, ["--quiet"], ""),
    ],
    ids=["cold", "warm", "cold-batch", "threads", "quiet"],
)
def test_train_says_when_it_compiles(
    tmp_path: Path,
    mnist_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    cached,
    extra,
    expected,
) -> None:
    # Catches a first run that sits silent for the seconds of a cold compile (or a warm one that
    # claims to compile): one stderr line exactly when the training kernel is not cached.
    from fastcnn.kernels import _jit

    monkeypatch.setattr(_jit, "is_cached", lambda dispatcher, *texts: cached)
    if "--threads" in extra and (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    argv = train_args(mnist_dir, tmp_path / "m.npz", "--limit", "8", "--test-limit", "8", *extra)
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert err.startswith(expected) if expected else "compiling" not in err
