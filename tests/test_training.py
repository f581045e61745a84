import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_helpers import CONFIG, params

from rmdt.config import load_config
from rmdt.training import train
from rmdt.training.checkpoint import CheckpointError, checkpoint_dirs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("extra", [[], ["data.num_segments_schedule=[[0, 1], [3, 2], [5, 3]]", "model.cache_len=6"]],
                         ids=["plain", "curriculum_and_cache"])
@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_parameters(tiny, tmp_path, extra):
    config = load_config(CONFIG, tiny + ["model.dropout=0.1"] + extra)  # dropout: RNG state must resume too
    straight = params(train(config, run_dir=tmp_path / "a").policy)
    run = tmp_path / "b"
    train(config, run_dir=run)
    # Emulate a kill right after the step-3 checkpoint: later checkpoints and final/ never existed.
    for later in checkpoint_dirs(run)[1:]:
        shutil.rmtree(later)
    shutil.rmtree(run / "final")
    assert [p.name for p in checkpoint_dirs(run)] == ["step_000003"]
    resumed = params(train(config, run_dir=run, resume=True).policy)
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    assert "resumed from" in (run / "train.log").read_text()


def test_run_directory_contents_and_refusal_to_overwrite(tiny, tmp_path):
    config = load_config(CONFIG, tiny + ["training.eval_every=3", "evaluation.env_args.periodic_lengths=[2, 5]"])
    run = train(config, run_dir=tmp_path / "run").run_dir
    assert load_config(run / "config.yaml") == config
    assert (run / "final" / "config.json").is_file() and (run / "final" / "model.safetensors").is_file()
    stored = json.loads((run / "final" / "config.json").read_text())["evaluation"]
    assert stored["env_args"] == {"corridor_lengths": [3, 12], "periodic_lengths": [2, 5]}  # only T-Maze's settings
    assert [p.name for p in checkpoint_dirs(run)] == ["step_000003", "step_000006"]
    assert list((run / "tensorboard" / config.name).glob("events.out.tfevents.*"))  # Accelerate's TensorBoard tracker
    log = (run / "train.log").read_text()
    assert "step      6" in log and "train_seconds" in log
    assert log.count("success_L2") == 2 and log.count("success_L5") == 2  # periodic evaluation at steps 3 and 6
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, run_dir=run)


@pytest.mark.slow
def test_gradient_accumulation_matches_one_big_batch(tiny, tmp_path):
    one = params(train(load_config(CONFIG, tiny), run_dir=tmp_path / "one").policy)
    four = params(train(load_config(CONFIG, tiny + ["training.grad_accum=4"]), run_dir=tmp_path / "four").policy)
    for key in one:
        torch.testing.assert_close(one[key], four[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_corrupt_checkpoint_is_named_and_resume_falls_back(tiny, tmp_path):
    config = load_config(CONFIG, tiny)
    run = train(config, run_dir=tmp_path / "run").run_dir
    older, newest = checkpoint_dirs(run)
    damaged = next(newest.glob("*.safetensors"))
    damaged.write_bytes(b"garbage")
    train(config, run_dir=run, resume=True)
    log = (run / "train.log").read_text()
    assert f"{damaged}: damaged" in log and f"resumed from {older} at step 3" in log
    for checkpoint in checkpoint_dirs(run):  # now both damaged: nothing to fall back to
        next(checkpoint.glob("*.safetensors")).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no intact checkpoint.*model.safetensors: damaged"):
        train(config, run_dir=run, resume=True)


@pytest.mark.slow
def test_two_processes_hold_identical_parameters_matching_one_process(tiny, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              str(ROOT / "tests" / "distributed_train.py")]
    subprocess.run(launch + [str(tmp_path / "two"), str(CONFIG), *tiny], check=True, env=env, cwd=ROOT,
                   capture_output=True, timeout=300)
    rank0 = torch.load(tmp_path / "two" / "rank0.pt")
    rank1 = torch.load(tmp_path / "two" / "rank1.pt")
    single = params(train(load_config(CONFIG, tiny), run_dir=tmp_path / "one").policy)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cli_train_then_evaluate(tiny, tmp_path):
    run = tmp_path / "cli"
    done = subprocess.run([sys.executable, "train.py", str(CONFIG), *tiny, "--run-dir", str(run)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "evaluate.py", str(run), "corridor_lengths=[3, 20]", "--episodes", "16",
                           "--seed", "4", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["env"] == "tmaze" and report["checkpoint"] == str((run / "final").resolve())
    assert [r["corridor_length"] for r in report["results"]] == [3, 20]
    for row in report["results"]:
        assert row["episodes"] == 16 and 0 <= row["ci95"][0] <= row["success_rate"] <= row["ci95"][1] <= 1
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path):
    done = subprocess.run([sys.executable, "train.py", str(CONFIG), "training.stepz=3"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown config key training.stepz" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "evaluate.py", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "no config.json" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "evaluate.py", str(tmp_path), "max_step=50"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "unknown evaluation setting max_step (did you mean max_steps?)" in done.stderr
    assert "Traceback" not in done.stderr


def test_trains_on_a_d4rl_file_with_continuous_actions_in_bf16(tmp_path):
    """The same trainer on another source, action type and precision: the loss is the tanh + MSE one."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "walker.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(200, 5))
        f["actions"] = rng.uniform(-1, 1, (200, 3))
        f["rewards"] = rng.normal(size=200)
        f["terminals"] = np.arange(200) % 50 == 49
    config = load_config(CONFIG, ["data.recipe=null", f"data.dataset={path}", "data.window_starts=uniform",
                                  "data.context_len=5", "data.num_segments=2", "data.return_scale=10",
                                  "model.d_model=16", "model.n_layers=1", "model.n_heads=2", "training.steps=4",
                                  "training.batch_size=8", "training.log_every=2", "training.mixed_precision=bf16"])
    run = train(config, run_dir=tmp_path / "run").run_dir
    from rmdt.evaluation import load_policy

    policy = load_policy(run)
    assert not policy.discrete and policy.config.act_dim == 3 and policy.config.return_scale == 10
    assert "action_mse" in (run / "train.log").read_text()
