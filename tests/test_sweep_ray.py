"""Sweeps on Ray Tune, on a tiny two-run sweep (POPGym RepeatFirst on 40 episodes, GRU and DT, 30 steps):
two runs at a time give exactly the numbers of the same runs trained one after another; a Ray worker
killed in the middle of a run, and a whole sweep killed and started again, end with the same table; a
finished run is never trained again; a run that keeps failing is listed with its error.

The module shares one local Ray (2 CPUs) and one sequential reference; each test takes seconds to tens of
seconds, so all are marked slow."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("ray")
pytest.importorskip("popgym")

from rmdt.sweep import load_sweep  # noqa: E402
from rmdt.sweep.__main__ import main  # noqa: E402
from rmdt.sweep.trainable import run_one  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
QUICK = ["training.steps=30", "training.warmup_steps=2", "training.log_every=5", "training.checkpoint_every=5",
         "evaluation.episodes=6"]


def write_sweep(path: Path, data_root: Path, models=("gru", "dt"), extra=()) -> Path:
    overrides = [*QUICK, f"data.root={data_root}", *extra]
    path.write_text(f"config_dir: {ROOT / 'configs'}\ntasks: [popgym/repeat_first_easy]\nmodels: {list(models)}\n"
                    f"seeds: [0]\noverrides: {json.dumps(overrides)}\nrecipe_args: {{episodes: 40}}\n")
    return path


def rows(out: Path) -> list:
    return json.loads((out / "results.json").read_text())


def wait_gone(pids, seconds: float = 30.0) -> list:
    """The processes of ``pids`` still alive (not zombies) after ``seconds``; those are killed."""
    deadline = time.monotonic() + seconds
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    for pid in alive:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    return alive


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray with 2 CPUs for the module, shut down after it with every process it started."""
    import ray

    from rmdt.sweep.launch import start_ray

    assert start_ray(cpus=2)
    yield
    children = [p.pid for p in psutil.Process().children(recursive=True)]
    ray.shutdown()
    assert wait_gone(children) == [], "Ray left processes behind"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    return write_sweep(folder / "sweep.yaml", folder / "data")


@pytest.fixture(scope="module")
def reference(sweep, tmp_path_factory) -> list:
    """The sweep's rows with its runs trained one after another in this process, on one thread."""
    import torch

    out = tmp_path_factory.mktemp("sequential")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [run_one(run, out / "runs" / run.name) for run in load_sweep(sweep).runs]
    finally:
        torch.set_num_threads(threads)


def trial_spans(out: Path) -> list:
    """(start, end) of each Tune trial, from the results Tune wrote."""
    spans = []
    for path in (out / "tune").glob("*/*/result.json"):
        result = json.loads(path.read_text().splitlines()[-1])
        spans.append((result["timestamp"] - result["time_total_s"], result["timestamp"]))
    return spans


def test_two_runs_at_a_time_give_the_numbers_of_one_after_another(ray_cluster, sweep, reference, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out)]) == 0
    assert rows(out) == reference  # every number of every row, exactly
    (first_start, first_end), (second_start, second_end) = sorted(trial_spans(out))
    assert second_start < first_end, "the two runs did not train at the same time"
    assert "| popgym/repeat_first_easy | gru | 1 | " in capsys.readouterr().out
    # started again, nothing trains: no Tune experiment, no checkpoint rewritten
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    assert main([str(sweep), "--out", str(out)]) == 0
    assert len(list((out / "tune").iterdir())) == 1
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()} == stamps
    assert rows(out) == reference


def kill_after_first_checkpoint(run_dir: Path, killed: list) -> None:
    """SIGKILLs the process training ``run_dir`` (the one holding its train.log open) once the run has a
    checkpoint; records the pid in ``killed``."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((run_dir / "checkpoints").glob("step_*")):
        time.sleep(0.02)
    log = str(run_dir / "train.log")
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if any(f.path == log for f in process.open_files()):
                process.send_signal(signal.SIGKILL)
                killed.append(process.pid)
                return


def test_a_killed_worker_resumes_its_run_from_its_checkpoint(ray_cluster, sweep, reference, tmp_path):
    out = tmp_path / "out"
    run_dir = out / "runs" / "popgym_repeat_first_easy_gru__0"
    killed = []
    killer = threading.Thread(target=kill_after_first_checkpoint, args=(run_dir, killed), daemon=True)
    killer.start()
    assert main([str(sweep), "--out", str(out)]) == 0
    killer.join(timeout=5)
    assert killed and killed[0] != os.getpid()
    log = (run_dir / "train.log").read_text()
    assert "resumed from" in log and "step     30" in log  # retried by Tune, from the checkpoint, to the end
    assert rows(out) == reference
    assert "failed run" not in (out / "table.md").read_text()


def test_runs_asking_for_more_than_a_node_has_are_refused_not_left_waiting(ray_cluster, sweep, tmp_path):
    refused = r"-per-run {}: no Ray node has that many {} \(the most on one node: {}\)"
    with pytest.raises(SystemExit, match=refused.format(3, "CPUs", 2)):
        main([str(sweep), "--out", str(tmp_path), "--cpus-per-run", "3"])
    with pytest.raises(SystemExit, match=refused.format(0.25, "GPUs", 0)):
        main([str(sweep), "--out", str(tmp_path), "--gpus-per-run", "0.25"])
    assert not (tmp_path / "runs").exists()


def test_each_dataset_is_built_once_before_the_runs_start(ray_cluster, tmp_path):
    from rmdt.sweep.launch import build_datasets

    sweep = write_sweep(tmp_path / "sweep.yaml", tmp_path / "data")  # two runs of one task: one dataset
    build_datasets(load_sweep(sweep).runs)
    assert [p.name for p in (tmp_path / "data" / "rmdt").iterdir()] == ["popgym-RepeatFirstEasy-oracle-e40-r0p1-s0-v0"]


def test_a_run_that_keeps_failing_is_listed_with_its_error(ray_cluster, tmp_path):
    sweep = write_sweep(tmp_path / "bad.yaml", tmp_path / "data", models=["gru"],
                        extra=["model.obs_encoder=nature_cnn"])  # loads, but cannot train on vector observations
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out)]) == 1
    error = (out / "runs" / "popgym_repeat_first_easy_gru__0" / "sweep_error.txt").read_text()
    assert "model.obs_encoder=nature_cnn" in error
    table = (out / "table.md").read_text()
    assert "| popgym_repeat_first_easy_gru__0 | " in table and "nature_cnn" in table.split("failed run")[1]
    assert rows(out) == []


def test_a_killed_sweep_continues_where_it_stopped(sweep, reference, tmp_path):
    """The command line in a process of its own, one run at a time, killed with all its processes once the
    first run has a checkpoint, then started again with the same command."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "rmdt.sweep", str(sweep), "--out", str(out), "--cpus", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run_dir = out / "runs" / "popgym_repeat_first_easy_gru__0"
    sweep_process = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list((run_dir / "checkpoints").glob("step_*")) and sweep_process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    assert sweep_process.poll() is None, sweep_process.stderr.read().decode()[-3000:]
    started = [sweep_process.pid] + [p.pid for p in psutil.Process(sweep_process.pid).children(recursive=True)]
    os.killpg(sweep_process.pid, signal.SIGKILL)
    sweep_process.wait()
    sweep_process.stderr.close()
    assert wait_gone(started) == [], "the killed sweep left processes behind"
    assert not (run_dir / "final").exists()  # it was killed in the middle of its first run
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert rows(out) == reference
