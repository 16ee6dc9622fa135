"""fastcnn.sweep and `fastcnn sweep`: search spaces, repeatable studies, faults (a killed worker,
Ctrl-C and resume), a Dask LocalCluster, the table, CSV and plots. Tiny studies on real MNIST."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from fastcnn import cli, sweep  # noqa: E402
from fastcnn.sweep import Range, Space, SweepError  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    # distributed's LocalCluster leaves sockets to the garbage collector on close.
    "ignore::ResourceWarning"
)


def tiny(mnist_dir, **train):
    """A study of a few seconds: 200 images, 1 epoch, per-sample SGD (one compiled path)."""
    return {"data": str(mnist_dir), "limit": 200, "epochs": 1, "init": "xavier", **train}


def results_of(study):
    """(params, accuracy) of the completed trials, in trial order."""
    return [
        (json.dumps(t.params, sort_keys=True), t.value)
        for t in study.get_trials()
        if t.state.name == "COMPLETE"
    ]


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def one_error_line(capsys, status, *fragments):
    err = capsys.readouterr().err
    assert status == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastcnn: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------------
# the search space


def test_space_refuses_unknown_parameters_naming_the_known_ones():
    # Catches a typo ("rat") silently ignored, or an error that does not say what would do.
    with pytest.raises(
        SweepError, match=r"unknown parameter 'rat' in \[space\]; the known ones are model, data"
    ):
        Space(space={"rat": [0.1]})
    with pytest.raises(SweepError, match=r"unknown parameter 'optimizer' in \[train\].*batch_size"):
        Space(train={"optimizer": "adam"})


@pytest.mark.parametrize(
    "train, space, message",
    [
        ({"rate": -1}, {}, r"\[train\] rate: expected a positive number, got -1"),
        (
            {},
            {"init": ["notebook", "glorot"]},
            r"\[space\] init: expected one of notebook, xavier, he, got 'glorot'",
        ),
        (
            {},
            {"init": {"low": 0, "high": 1}},
            r"\[space\] init: this option takes a list of choices",
        ),
        ({}, {"rate": {"low": 1, "high": 0.1}}, r"expected low < high"),
        ({}, {"rate": {"low": 0.1}}, r"a range is \{ low = \.\.\., high = \.\.\. \}"),
        ({}, {"seed": []}, r"expected at least one choice"),
        ({}, {"limit": [100, 200]}, r"limit is fixed for the whole study; put it in \[train\]"),
        ({"rate": 0.1}, {"rate": [0.1, 1.0]}, r"rate is both fixed \(\[train\]\) and searched"),
        ({"model": "resnet"}, {}, r"unknown model 'resnet'; the known models are notebook, lenet"),
    ],
)
def test_space_refuses_bad_values(train, space, message):
    # Catches a bad value reaching a trial (and failing there, N times) instead of the door.
    with pytest.raises(SweepError, match=message):
        Space(train=train, space=space)


def test_load_space_reads_the_issue_example(tmp_path):
    # Catches the TOML shape of the issue not being read as written, or a relative data path
    # taken from the current directory instead of the file's.
    path = write_space(
        tmp_path / "space.toml",
        '[train]\nmodel = "notebook"\ndata = "../mnist"\nlimit = 2000\nepochs = 1\n'
        "[space]\nrate = { low = 0.01, high = 1.0, log = true }\n"
        'init = ["notebook", "xavier"]\nbatch_size = [1, 16, 32]\nseed = [0, 1, 2]\n',
    )
    space = sweep.load_space(path)
    assert space.train == {
        "model": "notebook",
        "data": str(tmp_path.parent / "mnist"),
        "limit": 2000,
        "epochs": 1,
    }
    assert space.space == {
        "rate": Range(0.01, 1.0, log=True),
        "init": ("notebook", "xavier"),
        "batch_size": (1, 16, 32),
        "seed": (0, 1, 2),
    }
    with pytest.raises(
        SweepError, match="grid sampler needs lists of choices, but rate is a range"
    ):
        space.grid()


def test_cli_errors_are_one_line(tmp_path, capsys):
    # Catches a traceback (or exit status 2) for a malformed file or an unknown key.
    bad = write_space(tmp_path / "bad.toml", "[train]\nrate = \n")
    status = cli.main(["sweep", str(bad), "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    one_error_line(capsys, status, "bad.toml: not valid TOML", "line 2")
    unknown = write_space(tmp_path / "unknown.toml", "[space]\nlearning_rate = [0.1]\n")
    status = cli.main(["sweep", str(unknown)])
    one_error_line(capsys, status, "unknown.toml: unknown parameter 'learning_rate'", "rate")
    status = cli.main(["sweep", "--show", str(tmp_path / "missing.db")])
    one_error_line(capsys, status, "missing.db: no such file")
    assert not (tmp_path / "missing.db").exists()  # --show never creates a database
    status = cli.main(["sweep", str(unknown), "--storage", "nosuch://x"])
    one_error_line(capsys, status, "unknown.toml: unknown parameter")  # the file is read first


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    # Catches a missing SPACE.toml (or SPACE.toml with --show) treated as a fault of a file.
    assert cli.main(["sweep"]) == 2
    assert cli.main(["sweep", "a.toml", "--show", "b.db"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_pruner_sees_every_epoch(tmp_path, mnist_dir):
    # Catches trial.report missing an epoch, or a pruned trial without its last value.
    space = Space(train=tiny(mnist_dir, epochs=3), space={"rate": Range(0.01, 5.0, log=True)})
    study = sweep.run(
        space, storage=f"sqlite:///{tmp_path / 'p.db'}", trials=8, pruner="median", verbose=False
    )
    for t in study.get_trials():
        assert t.state.name in ("COMPLETE", "PRUNED")
        steps = sorted(t.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))
        assert t.value == t.intermediate_values[steps[-1]]
        assert len(steps) == 3 if t.state.name == "COMPLETE" else len(steps) < 3


@pytest.mark.slow
def test_cli_unreachable_scheduler_is_one_line(tmp_path, mnist_dir):
    # Catches a hang or a traceback when the --dask address has no scheduler.
    space = write_space(tmp_path / "s.toml", f'[train]\ndata = "{mnist_dir}"\nlimit = 20\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastcnn",
            "sweep",
            str(space),
            "--dask",
            "tcp://127.0.0.1:1",
            "--dask-timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "fastcnn: error: cannot reach the Dask scheduler at tcp://127.0.0.1:1 within 1 s"
    )


# ---------------------------------------------------------------------------------------------------
# studies


def test_validation_split_is_held_out_of_training_and_saved(tmp_path, mnist_dir):
    # Catches validating on the training images (or the test set), or a split that is not
    # recorded with the study.
    space = Space(train=tiny(mnist_dir, validation=0.25, split_seed=3), space={"rate": [0.5]})
    data = sweep.load_data(space)
    assert (len(data.train_x), len(data.validation_x)) == (150, 50)
    train = {x.tobytes() for x in data.train_x}
    assert not any(x.tobytes() in train for x in data.validation_x)
    study = sweep.run(space, storage=f"sqlite:///{tmp_path / 's.db'}", trials=1, verbose=False)
    assert study.user_attrs["fastcnn.split"] == data.split
    assert data.split["validation"] == 50 and data.split["split_seed"] == 3
    (trial,) = study.get_trials()
    # Every epoch reported (for the pruners), the last one is the value.
    assert trial.intermediate_values == {1: trial.value}


def test_one_job_repeats_trials_and_results(tmp_path, mnist_dir):
    # Catches an unseeded sampler or training: the same file and seed must give the same
    # trials' parameters and results.
    space = Space(
        train=tiny(mnist_dir),
        space={"rate": Range(0.05, 2.0, log=True), "seed": [0, 1]},
    )
    runs = [
        results_of(
            sweep.run(space, storage=f"sqlite:///{tmp_path / f'{i}.db'}", trials=4, verbose=False)
        )
        for i in range(2)
    ]
    assert len(runs[0]) == 4
    assert runs[0] == runs[1]
    assert len({p for p, _ in runs[0]}) == 4  # four different trials, not one repeated


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["grid", "random"])
def test_two_jobs_give_the_same_set_of_results(tmp_path, mnist_dir, sampler):
    # Catches workers drawing the same parameters twice (two samplers with one seed), a trial
    # run twice or lost, or results that depend on which worker ran them.
    space = Space(train=tiny(mnist_dir), space={"rate": [0.1, 0.5, 2.0], "seed": [0, 1]})
    one, two = (
        results_of(
            sweep.run(
                space,
                storage=f"sqlite:///{tmp_path / f'{jobs}.db'}",
                trials=6,
                jobs=jobs,
                sampler=sampler,
                seed=7,
                verbose=False,
            )
        )
        for jobs in (1, 2)
    )
    assert len(one) == 6
    assert sorted(one) == sorted(two)
    if sampler == "grid":
        assert len({p for p, _ in one}) == 6  # every grid point once


def test_a_study_continues_and_refuses_another_space(tmp_path, mnist_dir):
    # Catches a second run that starts over (or runs N more instead of up to N), or one that
    # mixes trials of a changed space into the study.
    url = f"sqlite:///{tmp_path / 's.db'}"
    space = Space(train=tiny(mnist_dir), space={"rate": [0.1, 0.5, 2.0]})
    sweep.run(space, storage=url, trials=2, sampler="grid", verbose=False)
    study = sweep.run(space, storage=url, trials=3, sampler="grid", verbose=False)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 3
    assert sorted(t.params["rate"] for t in study.get_trials()) == [0.1, 0.5, 2.0]
    url = f"sqlite:///{tmp_path / 'r.db'}"
    space = Space(train=tiny(mnist_dir), space={"rate": Range(0.1, 2.0)})
    for trials in (2, 3, 3):
        study = sweep.run(space, storage=url, trials=trials, sampler="random", verbose=False)
    assert len(study.get_trials()) == 3
    other = Space(train=tiny(mnist_dir, epochs=2), space={"rate": Range(0.1, 2.0)})
    with pytest.raises(SweepError, match=r"another search space \(differs in \[train\] epochs\)"):
        sweep.run(other, storage=url, trials=3, verbose=False)


def test_show_csv_and_plots(tmp_path, mnist_dir, capsys):
    # Catches a table without the spread over seeds, a CSV missing trials or parameters, plots
    # not written, and --show that differs from the table at the end of the run.
    space = write_space(
        tmp_path / "grid.toml",
        f'[train]\ndata = "{mnist_dir}"\nlimit = 200\nepochs = 1\ninit = "xavier"\n'
        "[space]\nrate = [0.3, 3.0]\nseed = [0, 1]\n",
    )
    db = tmp_path / "sweep.db"
    argv = ["sweep", str(space), "--storage", f"sqlite:///{db}", "--sampler", "grid", "--quiet"]
    status = cli.main([*argv, "--csv", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "study 'grid': 4 trials, 4 complete, 0 pruned, 0 failed" in out
    assert "40 validation images held out of 200 mnist training images (split seed 0)" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    assert lines[header].split() == ["rank", "accuracy", "seeds", "seconds", "rate", "trials"]
    rows = [line.split() for line in lines[header + 1 : header + 3]]
    assert sorted(r[6] for r in rows) == ["0.3", "3"]
    assert all(r[2] == "±" and r[4] == "2" for r in rows)  # mean ± spread over 2 seeds
    assert sorted(r[-1] for r in rows) == ["0,1", "2,3"]
    status = cli.main(["sweep", "--show", str(db)])
    shown = capsys.readouterr().out
    assert status == 0
    assert shown.splitlines() == lines[header - 1 : header + 3]
    csv_lines = (tmp_path / "t.csv").read_text().splitlines()
    assert csv_lines[0] == "trial,state,accuracy,seconds,loss,rate,seed,worker,error"
    assert len(csv_lines) == 5 and all(",COMPLETE," in line for line in csv_lines[1:])
    for name in sweep.PLOTS:
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


# ---------------------------------------------------------------------------------------------------
# faults, through the command line


def fault_space(tmp_path, mnist_dir):
    """Trials of 3 epochs on 800 images, so a test can act while one is between epochs."""
    return write_space(
        tmp_path / "faults.toml",
        f'[train]\ndata = "{mnist_dir}"\nlimit = 1000\nepochs = 3\ninit = "xavier"\n'
        "[space]\nrate = [0.2, 0.5, 1.0]\nseed = [0, 1]\n",
    )


def running_between_epochs(db: Path, deadline: float):
    """Poll the study's file until a trial runs that has reported epoch 1 but not 2; its
    number and worker tag. Bounded by ``deadline``."""
    query = """
        SELECT t.number, a.value_json FROM trials t
        JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'fastcnn.worker'
        JOIN trial_intermediate_values v ON v.trial_id = t.trial_id AND v.step = 1
        WHERE t.state = 'RUNNING' AND NOT EXISTS (
            SELECT 1 FROM trial_intermediate_values w WHERE w.trial_id = t.trial_id AND w.step = 2)
    """
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=0.1) as connection:
                row = connection.execute(query).fetchone()
            if row is not None:
                return row[0], json.loads(row[1])
        except sqlite3.OperationalError:  # not created yet, or a writer holds the lock
            pass
        time.sleep(0.005)
    raise AssertionError(f"no trial reached epoch 1 in {db} in time")


def sweep_command(space: Path, db: Path, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fastcnn",
        "sweep",
        str(space),
        "--storage",
        f"sqlite:///{db}",
        "--sampler",
        "grid",
        *more,
    ]


@pytest.mark.slow
def test_a_killed_worker_fails_its_trial_and_the_study_completes(tmp_path, mnist_dir):
    # Catches a trial left RUNNING forever, a sweep that dies or hangs with its worker, or a
    # grid point lost with the killed trial.
    space, db = fault_space(tmp_path, mnist_dir), tmp_path / "sweep.db"
    process = subprocess.Popen(
        sweep_command(space, db, "--jobs", "2"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        number, tag = running_between_epochs(db, time.monotonic() + 120)
        os.kill(int(tag.split(":")[1]), signal.SIGKILL)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert f"trial {number}: failed: its worker died (exit status -9)" in out
    study = sweep.open_study(str(db))
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[number] == "FAIL"
    assert study.get_trials()[number].user_attrs["fastcnn.cut"] == "worker died"
    assert sorted(states.values()) == ["COMPLETE"] * 6 + ["FAIL"]
    complete = [t.params for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert sorted(json.dumps(p, sort_keys=True) for p in complete) == sorted(
        json.dumps(p, sort_keys=True) for p in sweep.load_space(space).grid()
    )


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_a_second_run_resumes(tmp_path, mnist_dir):
    # Catches Ctrl-C losing finished trials, leaving the cut trial RUNNING, or a resumed sweep
    # that does not reach the planned number of trials.
    space, db = fault_space(tmp_path, mnist_dir), tmp_path / "sweep.db"
    process = subprocess.Popen(
        sweep_command(space, db),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        number, _ = running_between_epochs(db, time.monotonic() + 120)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.splitlines()[-1].startswith("fastcnn: interrupted; the finished trials are kept in")
    study = sweep.open_study(str(db))
    cut = study.get_trials()[number]
    assert (cut.state.name, cut.user_attrs["fastcnn.cut"]) == ("FAIL", "interrupted")
    kept = [t.number for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(kept) < 6

    again = subprocess.run(
        sweep_command(space, db, "--quiet"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    study = sweep.open_study(str(db))
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 6
    assert {t.number for t in complete} >= set(kept)  # the first run's trials are still there
    assert len({json.dumps(t.params, sort_keys=True) for t in complete}) == 6


# ---------------------------------------------------------------------------------------------------
# Dask


@pytest.mark.slow
def test_local_cluster_runs_the_same_trials(tmp_path, mnist_dir):
    # Catches tasks that do not share the study (duplicated or missing grid points), or results
    # that differ from a local run's.
    distributed = pytest.importorskip("distributed")
    space = Space(train=tiny(mnist_dir), space={"rate": [0.1, 0.5, 2.0], "seed": [0, 1]})
    local = sweep.run(
        space, storage=f"sqlite:///{tmp_path / 'l.db'}", sampler="grid", verbose=False
    )
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        study = sweep.run(
            space,
            storage=f"sqlite:///{tmp_path / 'd.db'}",
            client=client,
            sampler="grid",
            verbose=False,
        )
        workers = {t.user_attrs["fastcnn.worker"] for t in study.get_trials()}
    assert sorted(results_of(study)) == sorted(results_of(local))
    assert len(results_of(study)) == 6
    assert str(os.getpid()) not in {w.split(":")[1] for w in workers}  # ran on the workers
