"""Tests for fastcnn.plots: PNG files, no display, a clear message without matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcnn import Activation, History, Linear, Network, d_sigmoid, plots, sigmoid
from fastcnn.models import mnist_cnn

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


def test_each_plot_writes_png(tmp_path: Path) -> None:
    # Catches a plot that fails on real shapes (a 5x1x3x3 filter bank, a 10x10 matrix) or writes
    # another format (a path without ".png" must still get a PNG).
    matrix = np.random.default_rng(0).integers(0, 100, (10, 10))
    written = [
        plots.plot_history([0.2, 0.1, 0.05], [0.5, 0.7, 0.8], tmp_path / "h.png"),
        plots.plot_history([0.2], [], tmp_path / "loss-only.png"),
        plots.plot_confusion(matrix, tmp_path / "c.png"),
        plots.plot_filters(mnist_cnn(rng=0).layers[0].filters, tmp_path / "filters"),
        plots.plot_filters(np.random.default_rng(1).normal(size=(2, 3, 5, 5)), tmp_path / "f3.png"),
    ]
    for path in written:
        assert is_png(path), path


def test_plot_run(tmp_path: Path) -> None:
    # Catches --plot writing to a directory it did not create, or skipping a plot.
    history = History([0.3, 0.2], accuracy=[0.6, 0.7])
    directory = tmp_path / "new" / "plots"
    written = plots.plot_run(directory, mnist_cnn(rng=0), history, np.eye(10, dtype=int))
    assert sorted(p.name for p in written) == ["confusion.png", "filters.png", "history.png"]
    assert all(is_png(p) for p in written)
    # a network without a convolution has no filters to show
    dense = Network([Linear(2, 3, rng=0), Activation(sigmoid, d_sigmoid)])
    assert [p.name for p in plots.plot_run(tmp_path / "d", dense, history)] == ["history.png"]


def test_bad_shapes(tmp_path: Path) -> None:
    # Catches matplotlib's own obscure error for a matrix or filter bank of the wrong shape.
    with pytest.raises(ValueError, match=r"square matrix, got shape \(3, 4\)"):
        plots.plot_confusion(np.zeros((3, 4)), tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"shape \(count, depth, size, size\), got shape \(3, 3\)"):
        plots.plot_filters(np.zeros((3, 3)), tmp_path / "f.png")


def test_missing_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # Catches a bare ModuleNotFoundError, and `train --plot` discovering the missing package only
    # after training (the run's time lost, a model written).
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(
        ImportError, match=r"^Plotting needs matplotlib: pip install fastcnn\[plot\]$"
    ):
        plots.plot_history([0.1], [], tmp_path / "h.png")
    from fastcnn.cli import main

    out = tmp_path / "m.npz"
    assert main(["train", "--data", str(tmp_path), "--out", str(out), "--plot", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "fastcnn: error: Plotting needs matplotlib: pip install fastcnn[plot]\n"
    )
    assert not out.exists()


@pytest.mark.slow
def test_no_pyplot_no_display(tmp_path: Path) -> None:
    # Catches pyplot creeping in: it picks a GUI backend (a window, or an error without a
    # display), keeps every figure alive, and changes the backend of a notebook calling us.
    code = (
        "import sys, numpy as np; from fastcnn import plots; "
        f"plots.plot_confusion(np.eye(10, dtype=int), {str(tmp_path / 'c.png')!r}); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert is_png(tmp_path / "c.png")
