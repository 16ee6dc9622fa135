"""Checkpoints and resuming: the model file written after an epoch holds where training stood,
and ``train(resume=PATH)`` / ``fastcnn train --resume`` continue from it to exactly the run that
never stopped (also after a SIGKILL between epochs); SIGTERM during ``fastcnn train`` is Ctrl-C
with status 143 and leaves no file behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import fastcnn as fc
from fastcnn import optim
from fastcnn.network import ResumeError

EPOCHS, STOP = 4, 2


def network(backend="numba", seed=3, dtype=np.float64):
    rng = np.random.RandomState(seed)
    return fc.Network(
        [
            fc.Convolution((1, 8, 8), 3, 2, dtype=dtype, rng=rng),
            fc.Activation(fc.sigmoid, fc.d_sigmoid),
            fc.Reshape((2, 6, 6), (72, 1)),
            fc.Linear(72, 4, dtype=dtype, rng=rng),
            fc.Activation(fc.sigmoid, fc.d_sigmoid),
        ],
        backend=backend,
    )


def data(n=60):
    rng = np.random.RandomState(7)
    return rng.rand(n, 1, 8, 8), rng.rand(n, 4, 1)


def values(net):
    return [p.copy() for layer in net.layers for p in layer.parameters()]


def assert_identical(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


RECIPES = {
    "sgd": lambda steps: (None, None, 0.5),
    "momentum-steplr": lambda steps: (optim.SGD(momentum=0.9), optim.StepLR(1, 0.5), 0.3),
    "adam-onecycle": lambda steps: (
        optim.Adam(lr=0.01),
        optim.OneCycleLR(0.05, epochs=EPOCHS, steps_per_epoch=steps),
        None,
    ),
    "adamw-cosine": lambda steps: (optim.AdamW(lr=0.01), optim.CosineAnnealingLR(EPOCHS), None),
}


def run(recipe, batch_size, backend, rng_kind, epochs, resume=None, save=None):
    x, y = data()
    steps = -(-len(x) // batch_size)
    opt, schedule, rate = RECIPES[recipe](steps)
    rng = {"seed": 5, "global": None, "generator": np.random.default_rng(5)}[rng_kind]
    if rng_kind == "global" and resume is None:
        np.random.seed(5)
    net = network(backend, seed=3 if resume is None else 99)  # resume loads the parameters

    def on_epoch(epoch, history):
        if save is not None:
            net.save(save(epoch))

    if rng_kind == "generator" and resume is not None:
        rng = np.random.default_rng(123)  # its state comes from the checkpoint
    net.train(
        x,
        y,
        fc.mse,
        fc.d_mse,
        epochs,
        rate,
        optimizer=opt,
        schedule=schedule,
        batch_size=batch_size,
        shuffle=True,
        rng=rng,
        verbose=False,
        on_epoch=on_epoch,
        resume=resume,
    )
    return net


@pytest.mark.parametrize(
    "recipe, batch_size, backend, rng_kind",
    [
        ("sgd", 1, "numba", "seed"),
        ("sgd", 16, "numba", "global"),
        ("momentum-steplr", 1, "numba", "generator"),
        ("adam-onecycle", 1, "numba", "seed"),
        ("adam-onecycle", 16, "numba", "global"),
        ("adamw-cosine", 16, "numba", "generator"),
        ("adam-onecycle", 8, "scipy", "seed"),
        ("momentum-steplr", 1, "scipy", "global"),
    ],
)
def test_resumed_run_is_the_run_never_stopped(tmp_path, recipe, batch_size, backend, rng_kind):
    # Catches any part of the state lost across a checkpoint: the optimizer's buffers or step
    # count (Adam's bias correction), the schedule's position, the shuffling generator's state,
    # the parameters' last bits. Bit for bit, on every path.
    never = run(recipe, batch_size, backend, rng_kind, EPOCHS, save=lambda e: tmp_path / f"{e}.npz")
    resumed = run(recipe, batch_size, backend, rng_kind, EPOCHS, resume=tmp_path / f"{STOP}.npz")
    assert_identical(values(resumed), values(never))
    # and the checkpoints agree too (the final optimizer state)
    resumed.save(tmp_path / "resumed.npz")
    with np.load(tmp_path / f"{EPOCHS}.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert a[name].tobytes() == b[name].tobytes(), name


def test_checkpoint_holds_the_state_as_json_and_arrays(tmp_path):
    # Catches pickled members or a checkpoint without the epoch, the optimizer's step or state.
    run("adam-onecycle", 16, "numba", "seed", 2, save=lambda e: tmp_path / f"{e}.npz")
    with zipfile.ZipFile(tmp_path / "2.npz") as archive:
        names = sorted(archive.namelist())
    assert "training.json.npy" in names
    assert "training.optimizer.exp_avg.npy" in names
    with np.load(tmp_path / "2.npz", allow_pickle=False) as f:
        doc = json.loads(f["training.json"].tobytes())
        assert f["training.optimizer.exp_avg"].dtype == np.float64
    assert doc["epoch"] == 2
    assert doc["optimizer_state"]["step"] == 2 * 4  # 60 samples in batches of 16
    assert doc["optimizer"]["class_name"] == "Adam"
    assert doc["schedule"]["class_name"] == "OneCycleLR"
    # a model file as ever: it loads and evaluates
    x, y = data()
    fc.load(tmp_path / "2.npz").evaluate(x, y.reshape(len(y), -1).argmax(axis=1))


def test_old_model_file_loads_but_cannot_be_resumed(tmp_path):
    # Catches an old file (no training state) resumed from scratch silently, or refused by load.
    net = network()
    fc.io._save_layers(net.layers, tmp_path / "old.npz")  # what save wrote before this change
    x, y = data()
    assert 0 <= fc.load(tmp_path / "old.npz").evaluate(x, y.reshape(len(y), -1).argmax(1)) <= 1
    with pytest.raises(ResumeError, match="holds no training state") as error:
        network().train(x, y, fc.mse, fc.d_mse, 3, 0.5, resume=tmp_path / "old.npz")
    assert "\n" not in str(error.value)


def test_resume_with_other_settings_is_refused(tmp_path):
    # Catches a resume that continues with another optimizer or batch size than the checkpoint's
    # (its state would be meaningless), or another architecture.
    run("adam-onecycle", 16, "numba", "seed", 1, save=lambda e: tmp_path / "1.npz")
    x, y = data()
    with pytest.raises(
        ResumeError, match=r"trained with optimizer=Adam\(lr=0.01\), this call has optimizer=None"
    ):
        network().train(
            x, y, fc.mse, fc.d_mse, 3, 0.5, batch_size=16, shuffle=True, resume=tmp_path / "1.npz"
        )
    with pytest.raises(ResumeError, match="batch_size=16, this call has batch_size=8"):
        steps = 4  # the saved schedule's
        network().train(
            x,
            y,
            fc.mse,
            fc.d_mse,
            EPOCHS,
            None,
            optimizer=optim.Adam(lr=0.01),
            schedule=optim.OneCycleLR(0.05, epochs=EPOCHS, steps_per_epoch=steps),
            batch_size=8,
            shuffle=True,
            rng=5,
            resume=tmp_path / "1.npz",
        )


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import test_resume as t
    out, kill, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None

    def save(epoch):
        path = out
        if epoch == kill:
            # after this epoch's checkpoint is on disk: die as a SIGKILL would end any run
            t.fc.Network.save(net_holder[0], path)
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    net_holder = []
    original = t.network
    def network(*a, **k):
        net_holder.append(original(*a, **k))
        return net_holder[-1]
    t.network = network
    net = t.run("adam-onecycle", 16, "numba", "seed", t.EPOCHS, resume=resume, save=save)
    np.save(out + ".final.npy", np.concatenate([p.ravel() for p in t.values(net)]))
    """
)


@pytest.mark.slow  # subprocesses that compile the loops
def test_sigkill_between_epochs_then_resume_is_the_run_never_stopped(tmp_path):
    # Catches a checkpoint that is not complete when on_epoch returns (state written later or
    # kept only in memory): the child is SIGKILLed right after epoch 2's save.
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)))
    out = str(tmp_path / "m.npz")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, script, out, str(STOP), ""], env=env, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "m.npz.final.npy").exists()
    resumed = subprocess.run([sys.executable, script, out, "0", out], env=env, timeout=600)
    assert resumed.returncode == 0
    never = run("adam-onecycle", 16, "numba", "seed", EPOCHS)
    expected = np.concatenate([p.ravel() for p in values(never)])
    assert np.load(out + ".final.npy").tobytes() == expected.tobytes()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["child.py", "m.npz", "m.npz.final.npy"]


def cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTCNN_")}
    return [sys.executable, "-m", "fastcnn", *map(str, args)], {"cwd": cwd, "env": env}


def terminated_after_an_epoch(command, options, out):
    """Run ``command``, SIGTERM it once its first epoch's model is saved; (status, stderr)."""
    child = subprocess.Popen(command, **options, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not out.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        assert out.exists(), "no epoch finished"
        time.sleep(0.3)  # somewhere in a later epoch, or in its save
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, err


@pytest.mark.mnist
@pytest.mark.slow
def test_sigterm_then_cli_resume_is_the_run_never_stopped(tmp_path, mnist_dir):
    # Catches SIGTERM ending the process where it stands (its default action: the .NAME.lock
    # file left behind, status -15) or losing the finished epochs; --resume not reaching
    # Network.train (a run from scratch), --out not defaulting to the resumed file, epochs counted
    # from the resume instead of in total; and an old file resumed silently.
    common = ["--data", mnist_dir, "--limit", 600, "--test-limit", 20, "--epochs", 12]
    common += ["--optimizer", "adam", "--schedule", "onecycle", "--shuffle", "--quiet"]
    full, part = tmp_path / "full.npz", tmp_path / "part.npz"
    command, options = cli("train", *common, "--out", full, cwd=tmp_path)
    assert subprocess.run(command, **options, timeout=600).returncode == 0
    command, options = cli("train", *common, "--out", part, cwd=tmp_path)
    status, err = terminated_after_an_epoch(command, options, part)
    assert status == 143, err
    assert err.count("\n") == 1 and "terminated during epoch" in err, err
    assert "kept the model of epoch" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.npz", "part.npz"]
    with np.load(part) as f:
        assert json.loads(f["training.json"].tobytes())["epoch"] < 12
    command, options = cli("train", *common, "--resume", part, cwd=tmp_path)
    assert subprocess.run(command, **options, timeout=600).returncode == 0
    with np.load(full) as a, np.load(part) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert a[name].tobytes() == b[name].tobytes(), name
    # an old-style file is refused in one line
    fc.io._save_layers(fc.load(full).layers, tmp_path / "old.npz")
    command, options = cli("train", *common, "--resume", tmp_path / "old.npz", cwd=tmp_path)
    result = subprocess.run(command, **options, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "holds no training state" in result.stderr
