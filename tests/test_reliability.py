"""Faults a run must survive or refuse clearly: non-finite training, damaged checkpoints,
changed settings on resume, full disks, hung ranks, and the optimizer's weight-decay groups."""
from pathlib import Path

import pytest
import torch
from training_helpers import CONFIG

from rmdt.config import load_config
from rmdt.training.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[1]


def decayed_names(model):
    optimizer, _ = make_optimizer(model, load_config(CONFIG))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["weight_decay"] > 0: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}
    assert groups[True].isdisjoint(groups[False])
    assert groups[True] | groups[False] == set(names.values())
    return groups[True]


@pytest.mark.parametrize("encoder, obs_shape", [("mlp", [4]), ("nature_cnn", [4, 84, 84])])
def test_weight_decay_by_shape_and_module_type_on_rmdt(encoder, obs_shape, tiny_policy):
    model = tiny_policy(obs_shape=obs_shape, num_actions=3, obs_encoder=encoder)
    decayed = decayed_names(model)
    encoder_matrices = {n for n, p in model.named_parameters() if n.startswith("embed_obs") and p.ndim >= 2}
    assert encoder_matrices and encoder_matrices <= decayed  # the name rule left the encoders undecayed
    assert {"blocks.0.attn.query.weight", "blocks.0.mlp.fc.weight", "head.weight",
            "embed_return.proj.weight"} <= decayed
    for name in ("memory", "position.weight", "embed_action.embed.weight", "blocks.0.ln_1.weight", "head.bias"):
        assert name not in decayed, name


def test_weight_decay_on_a_recurrent_model(tiny_policy):
    model = tiny_policy("lru", num_actions=3)
    decayed = decayed_names(model)
    assert {"embed_obs.net.0.weight", "blocks.0.memory.B.weight", "blocks.0.mlp.0.weight"} <= decayed
    for name in ("no_action", "embed_action.embed.weight", "blocks.0.memory.nu_log", "blocks.0.memory.D",
                 "blocks.0.ln_1.weight", "ln_f.bias"):
        assert name not in decayed, name


# ---- runs under faults (tiny T-Maze runs of a few steps; `tiny` is in conftest.py) ----

import errno  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from rmdt.data.trajectories import Trajectories  # noqa: E402
from rmdt.training import train  # noqa: E402
from rmdt.training.checkpoint import checkpoint_dirs, verify_checkpoint  # noqa: E402
from rmdt.training.guard import NonFiniteError  # noqa: E402
from rmdt.training.optim import lr_factor  # noqa: E402


@pytest.fixture
def cli(load_script, capsys):
    """``cli(argv)``: train.py's main() in this process (so a test can monkeypatch it): (status, error lines)."""
    def main(argv):
        status = load_script("train.py").main([str(a) for a in argv])
        return status, [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]

    return main


def all_finite(checkpoint):
    return all(bool(torch.isfinite(t.float()).all()) for t in load_file(checkpoint / "model.safetensors").values())


@pytest.mark.parametrize("fault", [["training.lr=1e6", "training.grad_clip=0"], ["data.return_scale=1e-30"]])
def test_non_finite_training_stops_and_never_saves_it(tiny, tmp_path, fault, cli):
    run = tmp_path / "run"
    status, errors = cli([CONFIG, *tiny, *fault, "training.checkpoint_every=1", "--run-dir", run])
    assert status == 2 and len(errors) == 1 and "not finite" in errors[0], errors
    assert errors[0].startswith("error: step ") and ("loss" in errors[0] or "grad_norm" in errors[0])
    assert not (run / "final").exists()
    assert all(all_finite(c) for c in checkpoint_dirs(run))  # no checkpoint holds the bad weights


@pytest.mark.slow
def test_bad_step_keeps_the_finite_checkpoints(tiny, tmp_path):
    """A resumed run going bad (a huge lr from step 4) must not rotate the finite checkpoints away."""
    every = ["training.checkpoint_every=1", "training.keep_checkpoints=2"]
    run = train(load_config(CONFIG, tiny + every + ["training.steps=3"]), run_dir=tmp_path / "run").run_dir
    final = (run / "final" / "model.safetensors").read_bytes()
    bad = load_config(CONFIG, tiny + every + ["training.lr=1e7", "training.grad_clip=0"])
    with pytest.raises(NonFiniteError, match=r"step [4-6]: ") as stopped:
        train(bad, run_dir=run, resume=True)
    bad_step = int(str(stopped.value).split()[1].rstrip(":"))
    kept = checkpoint_dirs(run)
    assert len(kept) == 2 and all(all_finite(c) for c in kept)
    assert int(kept[-1].name.split("_")[1]) == bad_step - 1  # the newest finite one, nothing saved after it
    assert (run / "final" / "model.safetensors").read_bytes() == final


def shutil_rmtree_after(run, step):
    """Emulates a kill after the checkpoint of ``step``: later checkpoints never existed."""
    import shutil

    for checkpoint in checkpoint_dirs(run):
        if int(checkpoint.name.split("_")[1]) > step:
            shutil.rmtree(checkpoint)


def poisoned_sampler(monkeypatch, bad_steps):
    """Makes the batches of the given (0-based) steps carry NaN returns-to-go."""
    import rmdt.training.trainer as trainer

    build = trainer.build_sampler

    def build_poisoned(*args, **kwargs):
        sampler = build(*args, **kwargs)
        batch = sampler.batch

        def poisoned(step, batch_size):
            out = batch(step, batch_size)
            if step in bad_steps:
                out.returns_to_go[:] = float("nan")
            return out

        sampler.batch = poisoned
        return sampler

    monkeypatch.setattr(trainer, "build_sampler", build_poisoned)


@pytest.mark.slow
def test_max_bad_steps_skips_without_updating(tiny, tmp_path, monkeypatch):
    poisoned_sampler(monkeypatch, {2})
    config = load_config(CONFIG, tiny + ["training.max_bad_steps=1"])
    run = train(config, run_dir=tmp_path / "run").run_dir
    assert "step 3: skipped" in (run / "train.log").read_text()
    optimizer = torch.load(checkpoint_dirs(run)[-1] / "optimizer.bin", weights_only=False)
    assert {int(s["step"]) for s in optimizer["state"].values()} == {5}  # 6 steps, one not applied
    assert all(all_finite(c) for c in checkpoint_dirs(run))
    monkeypatch.undo()
    poisoned_sampler(monkeypatch, {1, 3})
    with pytest.raises(NonFiniteError, match="step 4: .*after skipping 1 bad steps: 2"):
        train(config, run_dir=tmp_path / "two_bad")


@pytest.mark.slow
def test_damaged_or_missing_checkpoint_part_is_named_and_resume_falls_back(tiny, tmp_path, cli):
    config = load_config(CONFIG, tiny + ["model.dropout=0.1"])
    run = train(config, run_dir=tmp_path / "run").run_dir
    older, newest = checkpoint_dirs(run)
    rng = newest / "random_states_0.pkl"
    rng.write_bytes(rng.read_bytes()[:-7])  # Accelerate alone skips this file with an INFO line
    train(config, run_dir=run, resume=True)
    log = (run / "train.log").read_text()
    assert f"{rng}: damaged" in log and f"resumed from {older} at step 3" in log
    (older / "optimizer.bin").unlink()
    for checkpoint in checkpoint_dirs(run):
        (checkpoint / "random_states_0.pkl").write_bytes(b"")
    status, errors = cli([CONFIG, *tiny, "model.dropout=0.1", "--run-dir", run, "--resume"])
    assert status == 2 and len(errors) == 1 and "no intact checkpoint" in errors[0]
    assert f"{older / 'optimizer.bin'}: missing" in errors[0]


@pytest.mark.slow
def test_resume_refuses_settings_it_cannot_apply(tiny, tmp_path, cli):
    config = load_config(CONFIG, tiny)
    run = train(config, run_dir=tmp_path / "run").run_dir
    stored = (run / "config.yaml").read_bytes()
    status, errors = cli([CONFIG, *tiny, "seed=1", "training.batch_size=16", "model.d_model=32",
                          "--run-dir", run, "--resume"])
    assert status == 2 and len(errors) == 1
    for key in ("seed (0 -> 1)", "training.batch_size (8 -> 16)", "model.d_model (16 -> 32)"):
        assert key in errors[0]
    status, errors = cli([CONFIG, *tiny, "training.steps=4", "--run-dir", run, "--resume"])
    assert status == 2 and "training.steps=4 is below the step" in errors[0]
    assert (run / "config.yaml").read_bytes() == stored
    missing = tmp_path / "typo"
    status, errors = cli([CONFIG, *tiny, "--run-dir", missing, "--resume"])
    assert status == 2 and f"run directory {missing} does not exist" in errors[0] and not missing.exists()


@pytest.mark.slow
def test_resume_applies_more_steps_and_a_new_lr(tiny, tmp_path):
    config = load_config(CONFIG, tiny)
    run = train(config, run_dir=tmp_path / "run").run_dir
    shutil_rmtree_after(run, 3)
    longer = load_config(CONFIG, tiny + ["training.steps=10", "training.lr=5e-4"])
    train(longer, run_dir=run, resume=True)
    assert load_config(run / "config.yaml") == longer
    log = (run / "train.log").read_text()
    assert "applied training.steps 6 -> 10, training.lr 0.001 -> 0.0005" in log
    state = json.loads((checkpoint_dirs(run)[-1] / "trainer_state.json").read_text())
    assert state["step"] == 10 and state["schedule"] == [[0, 6], [3, 10]]
    factor = lr_factor(longer.training, state["schedule"])
    # the lr logged at step 4 is the new peak times the stretched schedule, which starts where the old one was
    assert f"lr {5e-4 * factor(4):.4g} " in log.split("resumed from")[1]
    assert factor(3) == lr_factor(config.training, [[0, 6]])(3)
    values = [factor(s) for s in range(3, 11)]
    assert values == sorted(values, reverse=True) and values[-1] == pytest.approx(config.training.min_lr_ratio)


def test_full_disk_keeps_the_previous_checkpoint_and_leaves_no_staging(tiny, tmp_path, monkeypatch, cli):
    from accelerate import Accelerator

    save_state, calls = Accelerator.save_state, []

    def full_disk(self, output_dir, **kwargs):
        calls.append(output_dir)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(output_dir))
        return save_state(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", full_disk)
    run = tmp_path / "run"
    status, errors = cli([CONFIG, *tiny, "--run-dir", run])
    first = run / "checkpoints" / "step_000003"
    assert status == 2 and errors == [f"error: cannot write checkpoint {run / 'checkpoints' / 'step_000006'}: "
                                      f"No space left on device; the previous checkpoint {first} is intact"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000003"]  # no staging folder left
    verify_checkpoint(first, 1)


def test_every_written_file_has_normal_permissions(tiny, tmp_path):
    run = train(load_config(CONFIG, tiny), run_dir=tmp_path / "run").run_dir
    for path in [*checkpoint_dirs(run)[-1].iterdir(), *(run / "final").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def image_trajectories():
    rng = np.random.default_rng(0)
    episodes = [(rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, 6), np.zeros(6))
                for _ in range(4)]
    return Trajectories.from_episodes(episodes, source="pixels", num_actions=3)


def test_data_checks_run_before_the_run_folder_exists(tiny, tmp_path):
    from rmdt.data import DataError

    run = tmp_path / "run"
    with pytest.raises(DataError, match=r"model.obs_encoder=mlp on uint8 image observations of shape \(8, 8, 3\)"):
        train(load_config(CONFIG, tiny), run_dir=run, trajectories=image_trajectories())
    assert not run.exists()
    rng = np.random.default_rng(0)
    flat = Trajectories.from_episodes([(rng.normal(size=(6, 4)), rng.uniform(-1, 1, 6), np.zeros(6))], source="flat")
    with pytest.raises(DataError, match=r"flat: continuous actions must have shape \(T, act_dim\), got \(6,\)"):
        train(load_config(CONFIG, tiny), run_dir=run, trajectories=flat)
    assert not run.exists()
    with pytest.raises(ValueError, match="divisible by processes"):
        train(load_config(CONFIG, tiny + ["training.grad_accum=3"]), run_dir=run)
    assert not run.exists()


def test_errors_are_printed_by_the_main_process_only(monkeypatch, capsys, load_script):
    module = load_script("train.py")
    monkeypatch.setenv("RANK", "1")
    assert module.error_line(ValueError("a\nb")) == 2 and capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert module.error_line(ValueError("a\nb")) == 2 and capsys.readouterr().err == "error: a b\n"


@pytest.mark.slow
def test_trackers_get_the_resolved_config_and_missing_ones_are_named(tiny, tmp_path):
    from rmdt.config import ConfigError

    config = load_config(CONFIG, tiny)
    run = train(config, run_dir=tmp_path / "run").run_dir
    hparams = next((run / "tensorboard" / config.name).glob("*/hparams.yml")).read_text()
    assert "training.lr: 0.001" in hparams and "model.d_model: 16" in hparams
    with pytest.raises(ConfigError, match="did you mean wandb"):
        load_config(CONFIG, tiny + ["training.trackers=[wandbb]"])
    missing = next(name for name in ("aim", "mlflow", "wandb") if importlib.util.find_spec(name) is None)
    with pytest.raises(ValueError, match=f"{missing} is chosen but the package"):
        train(load_config(CONFIG, tiny + [f"training.trackers=[tensorboard, {missing}]"]), run_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_train_twice_in_one_process_with_another_precision(tiny, tmp_path):
    train(load_config(CONFIG, tiny), run_dir=tmp_path / "fp32")
    policy = train(load_config(CONFIG, tiny + ["training.mixed_precision=bf16"]), run_dir=tmp_path / "bf16").policy
    assert all(bool(torch.isfinite(p).all()) for p in policy.parameters())
    assert (tmp_path / "bf16" / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_readme_python_api_example_runs_verbatim(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    code = readme.split("### Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["report"]["results"] and (namespace["result"].run_dir / "final").is_dir()
    assert namespace["result"].run_dir.parent == Path("runs")
    assert "success_rate" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_an_intermediate_checkpoint(tiny, tmp_path):
    from rmdt.evaluation import evaluate_checkpoint, load_policy

    run = train(load_config(CONFIG, tiny), run_dir=tmp_path / "run").run_dir
    middle, last = checkpoint_dirs(run)
    weights = {k.removeprefix("policy."): v for k, v in load_file(middle / "model.safetensors").items()}
    policy = load_policy(middle)
    for key, value in policy.state_dict().items():
        assert torch.equal(value, weights[key]), key
    final = load_policy(run).state_dict()
    assert all(torch.equal(v, final[k]) for k, v in load_policy(last).state_dict().items())
    out = evaluate_checkpoint(middle, {"episodes": 4}, tmp_path / "step3.json")  # what evaluate.py runs
    assert json.loads(out.read_text())["checkpoint"] == str(middle.resolve())


@pytest.mark.slow
def test_a_hung_process_ends_the_run_after_the_collective_timeout(tiny, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "RMDT_TEST_HANG_RANK": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              str(ROOT / "tests" / "distributed_train.py")]
    done = subprocess.run(launch + [str(tmp_path), str(CONFIG), *tiny, "training.collective_timeout_s=5"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=100)  # the hung rank sleeps 120 s
    assert done.returncode != 0
    assert "another process did not reach a collective operation within training.collective_timeout_s=5 s" \
        in done.stderr, done.stderr[-3000:]
