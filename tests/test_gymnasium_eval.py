"""The gymnasium evaluator end to end on a real MuJoCo task (InvertedDoublePendulum-v5): a tiny model
trained a few dozen steps on data made here, evaluated from its checkpoint alone, and what the report
holds; the environment wrappers' shape checks and frame stacking."""
import json
from pathlib import Path

import numpy as np
import pytest

from rmdt.config import load_config
from rmdt.data.minari_source import load_minari
from rmdt.envs.double_pendulum import recipe
from rmdt.envs.gymnasium.evaluator import Settings, make_vector_env
from rmdt.evaluation import evaluate_checkpoint
from rmdt.training import train

pytest.importorskip("mujoco")
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "mujoco" / "double_pendulum_dt.yaml"
TINY_DATA = dict(controller=1, noisy=2, random=4, max_noise=0.3, reference_episodes=1, seed=5)
TINY_MODEL = ["data.context_len=5", "data.num_segments=2", "model.d_model=16", "model.n_layers=1", "model.n_heads=2",
              "training.steps=30", "training.batch_size=8", "training.warmup_steps=5", "training.log_every=10",
              "training.checkpoint_every=30", "evaluation.episodes=6", "evaluation.num_envs=4"]


def check_report(row: dict, ref_min: float, ref_max: float, episodes: int) -> None:
    """Raw and normalised mean return with their intervals and every episode's return, consistent."""
    returns, lengths = np.array(row["returns"]), np.array(row["lengths"])
    assert row["env_id"] == recipe.ENV_ID and row["episodes"] == episodes == len(returns) == len(lengths)
    assert row["mean_return"] == pytest.approx(returns.mean())
    low, high = row["ci95"]
    assert returns.min() <= low <= row["mean_return"] <= high <= returns.max()
    assert np.all((lengths >= 1) & (lengths <= 1000)) and np.all(returns <= 10 * lengths)  # at most 10 per step
    assert (row["ref_min_score"], row["ref_max_score"]) == pytest.approx((ref_min, ref_max))
    scale = 100 / (ref_max - ref_min)
    assert row["normalised_score"] == pytest.approx((row["mean_return"] - ref_min) * scale)
    assert row["normalised_ci95"] == pytest.approx([(low - ref_min) * scale, (high - ref_min) * scale])


@pytest.mark.slow
def test_minari_dataset_trains_and_evaluates_with_no_env_settings(tmp_path):
    """The config names no environment: the dataset's env spec and reference returns reach the checkpoint,
    and evaluation aims at ref_max_score (target_return null)."""
    args = ", ".join(f"{k}: {v}" for k, v in TINY_DATA.items())
    config = load_config(CONFIG, [f"data.root={tmp_path / 'minari'}", f"data.recipe_args={{{args}}}", *TINY_MODEL])
    assert config.evaluation.env == "gymnasium" and config.evaluation.target_return is None
    run = train(config, run_dir=tmp_path / "run").run_dir
    data = load_minari(recipe.dataset_id(**TINY_DATA), tmp_path / "minari")
    out = evaluate_checkpoint(run)
    report = json.loads(out.read_text())
    row, = report["results"]
    check_report(row, data.metadata["ref_min_score"], data.metadata["ref_max_score"], episodes=6)
    assert row["target_return"] == pytest.approx(data.metadata["ref_max_score"])
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.slow
def test_d4rl_layout_file_from_the_controller_trains_and_evaluates(tmp_path, capsys, load_script):
    """A D4RL-layout HDF5 file written from the real env and its LQR controller; evaluate.py prints the
    raw and the normalised return with their intervals."""
    import h5py

    episodes, ref_min, ref_max = recipe.collect(**TINY_DATA)
    path = tmp_path / "double-pendulum-lqr.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.concatenate([o[:-1] for o, *_ in episodes])
        f["actions"] = np.concatenate([a[:, 0] for _, a, *_ in episodes])  # (T,): one action dimension stored flat
        f["rewards"] = np.concatenate([r for _, _, r, *_ in episodes])
        f["terminals"] = np.concatenate([te for *_, te, _ in episodes])
        f["timeouts"] = np.concatenate([tr for *_, tr in episodes])
    env_args = f"{{id: {recipe.ENV_ID}, ref_min_score: {ref_min}, ref_max_score: {ref_max}}}"
    config = load_config(CONFIG, ["data.recipe=null", f"data.dataset={path}", f"evaluation.env_args={env_args}",
                                  "evaluation.target_return=9000", *TINY_MODEL])
    run = train(config, run_dir=tmp_path / "run").run_dir
    capsys.readouterr()
    assert load_script("evaluate.py").main([str(run), "--episodes", "5"]) == 0
    printed = capsys.readouterr().out
    assert f"{recipe.ENV_ID}  return" in printed and "normalised" in printed
    row, = json.loads((run / "eval" / "results.json").read_text())["results"]
    check_report(row, ref_min, ref_max, episodes=5)
    assert row["target_return"] == 9000


def test_frame_stacking_follows_the_policy_and_shapes_are_checked():
    settings = Settings(id=recipe.ENV_ID)
    env = make_vector_env(settings, 2, obs_shape=(3, 9))  # the data stacked 3 observations
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, 3, 9) and obs.dtype == np.float32
    finally:
        env.close()
    with pytest.raises(ValueError, match=r"trained on observations of shape \(11,\) but InvertedDoublePendulum-v5 "
                                         r"shows \(9,\)"):
        make_vector_env(settings, 2, obs_shape=(11,))
    with pytest.raises(ValueError, match="cannot make 'NoSuchEnv-v0'"):
        make_vector_env(Settings(id="NoSuchEnv-v0"), 1)


@pytest.mark.parametrize("override, match", [
    ("evaluation.env_args.vectr=async", r"evaluation\.env_args\.vectr \(did you mean evaluation\.env_args\.vector\?\)"),
    ("evaluation.env_args.vector=threads", r"env_args\.vector must be one of sync, async"),
    ("evaluation.env_args.ref_min_score=0", r"set both ref_min_score and ref_max_score"),
    ("evaluation.env_args.frame_stack=0", r"frame_stack must be >= 1"),
])
def test_bad_gymnasium_settings_fail_at_load_config(override, match):
    from rmdt.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        load_config(CONFIG, [override])


def test_async_vector_env_steps_like_sync():
    """``vector: async`` (a subprocess per environment) shows the same seeded observations and rewards."""
    seen = {}
    for mode in ("sync", "async"):
        env = make_vector_env(Settings(id=recipe.ENV_ID, vector=mode), 2)
        try:
            obs, _ = env.reset(seed=3)
            trace = [obs]
            for _ in range(5):
                obs, reward, *_ = env.step(np.clip(obs[:, :1], -1, 1))
                trace += [obs, reward[:, None]]
        finally:
            env.close()
        seen[mode] = np.concatenate(trace, axis=1)
    np.testing.assert_array_equal(seen["sync"], seen["async"])
