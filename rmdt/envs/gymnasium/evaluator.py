"""Evaluation in any registered gymnasium environment (``env: gymnasium``, ``env_args: {id: Hopper-v5}``).

Episodes run as a queue over gymnasium's own vector environments (``SyncVectorEnv`` by default,
``AsyncVectorEnv`` with ``vector: async``), each environment wrapped to show the policy what the
dataset showed it: dict observations flattened in the recorded key order, observations stacked
over the steps the data stacked, float64 turned into float32 as the loader does, continuous actions
clipped to the action space. The report is the mean return with a 95% bootstrap interval and every
episode's return, and, when reference returns are known (a Minari dataset's ``ref_min_score`` /
``ref_max_score``, D4RL's table for D4RL MuJoCo files), the normalised score with its interval.

When training data names its environment (a Minari dataset's evaluation env spec, a D4RL MuJoCo file
name), ``settings_from_data`` fills the unset settings at training time, so the checkpoint alone
says where and how to evaluate. gymnasium's MuJoCo environments need the ``mujoco`` extra.
"""
from __future__ import annotations

import time

import numpy as np

from rmdt.envs.gymnasium.settings import Settings
from rmdt.evaluation.rollout import mean_interval, rollout
from rmdt.evaluation.scores import D4RL_ENV_IDS, d4rl_name, d4rl_references, normalise
from rmdt.plotting import episode_returns, pyplot, save_png


def settings_from_data(env_args: dict, trajectories) -> dict:
    """``env_args`` with what it leaves unset taken from the training data's facts (the environment,
    its kwargs and step limit, the dict observation key order, the reference returns)."""
    facts, filled = trajectories.metadata, dict(env_args)
    env = facts.get("env")
    d4rl = d4rl_name(facts.get("dataset_name") or "")
    if filled.get("id") is None:
        if env is not None:
            filled.update(id=env["id"], kwargs=filled.get("kwargs") or env.get("kwargs") or {})
            if filled.get("max_episode_steps") is None:
                filled["max_episode_steps"] = env.get("max_episode_steps")
        elif d4rl is not None and d4rl[0] in D4RL_ENV_IDS:
            filled["id"] = D4RL_ENV_IDS[d4rl[0]]
        else:
            raise ValueError(f"evaluation.env_args.id is null and the data ({trajectories.source}) names no "
                             "environment: set evaluation.env_args.id to a gymnasium id")
    if filled.get("wrapper") is None:
        from rmdt.envs.gymnasium.wrappers import default_wrapper

        if default_wrapper(filled["id"]) is not None:  # only suites have one: the others stay unset
            filled["wrapper"] = default_wrapper(filled["id"])
    if filled.get("obs_keys") is None and facts.get("obs_keys"):
        filled["obs_keys"] = list(facts["obs_keys"])
    if filled.get("ref_min_score") is None and filled.get("ref_max_score") is None:
        references = (facts.get("ref_min_score"), facts.get("ref_max_score"))
        if None in references:
            references = d4rl_references(facts.get("dataset_name") or "") or (None, None)
        filled["ref_min_score"], filled["ref_max_score"] = references
    return filled


def _wrapped_env(settings: Settings, frame_stack: int):
    """One environment with the observation and action wrappers the policy needs."""
    import gymnasium as gym

    from rmdt.envs.gymnasium import wrappers

    wrapper = settings.wrapper or wrappers.default_wrapper(settings.id)
    env = wrappers.make(settings.id, wrapper, max_episode_steps=settings.max_episode_steps, **settings.kwargs)
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = wrappers.FlattenDictObservation(env, settings.obs_keys)
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and space.dtype == np.float64:  # the loader keeps float64 data as float32
        single = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32)
        env = gym.wrappers.TransformObservation(env, lambda obs: obs.astype(np.float32), single)
    if frame_stack > 1:
        env = gym.wrappers.FrameStackObservation(env, frame_stack)
    if isinstance(env.action_space, gym.spaces.Box):
        env = gym.wrappers.ClipAction(env)
    return env


def make_vector_env(settings: Settings, num_envs: int, obs_shape=None):
    """``num_envs`` wrapped environments; ``obs_shape`` (the policy's) decides frame stacking when
    ``settings.frame_stack`` is null, and must match what the environment shows."""
    import gymnasium as gym

    if settings.id is None:
        raise ValueError("evaluation.env_args.id is null: set it to a gymnasium id (e.g. Hopper-v5)")
    try:
        probe = _wrapped_env(settings, 1)
    except gym.error.Error as error:
        raise ValueError(f"evaluation.env_args: cannot make {settings.id!r} ({error})") from error
    shape = tuple(probe.observation_space.shape or ())
    probe.close()
    stack = settings.frame_stack
    if stack is None:
        trained = tuple(obs_shape or shape)
        stack = trained[0] if len(trained) == len(shape) + 1 and trained[1:] == shape else 1
    if obs_shape is not None and tuple(obs_shape) != ((stack, *shape) if stack > 1 else shape):
        raise ValueError(f"the policy was trained on observations of shape {tuple(obs_shape)} but {settings.id} "
                         f"shows {shape}{f' stacked {stack} times' if stack > 1 else ''}: set evaluation.env_args "
                         "(id, kwargs, obs_keys, frame_stack) to the environment the data came from")
    thunks = [lambda: _wrapped_env(settings, stack)] * num_envs
    vector = gym.vector.AsyncVectorEnv if settings.vector == "async" else gym.vector.SyncVectorEnv
    return vector(thunks)


def _check_actions(policy, env, env_id: str) -> None:
    """The policy's action space must be the environment's (a clear error instead of a crash mid-episode)."""
    import gymnasium as gym

    space = env.single_action_space
    if policy.discrete:
        ok = isinstance(space, gym.spaces.Discrete) and int(space.n) == policy.config.num_actions
        trained = f"{policy.config.num_actions} discrete actions"
    else:
        ok = isinstance(space, gym.spaces.Box) and int(np.prod(space.shape)) == policy.config.act_dim
        trained = f"continuous actions of size {policy.config.act_dim}"
    if not ok:
        raise ValueError(f"the policy was trained with {trained} but {env_id} has actions {space}: "
                         "evaluate it in the environment its data came from")


def default_target(settings: Settings) -> float | None:
    """The target return when ``evaluation.target_return`` is null: the reference maximum (the expert's
    return, as DT aims at the best returns of its data), None when no reference is known."""
    return settings.ref_max_score


def evaluate(policy, evaluation, settings: Settings, target_return: float, device="cpu", progress: bool = True,
             periodic: bool = False) -> list[dict]:
    """One row: ``evaluation.episodes`` episodes as a queue over ``evaluation.num_envs`` environments."""
    episodes = evaluation.episodes
    num_envs = min(episodes, evaluation.num_envs or episodes)
    references = (settings.ref_min_score, settings.ref_max_score)
    env = make_vector_env(settings, num_envs, getattr(policy.config, "obs_shape", None))
    start = time.perf_counter()
    try:
        _check_actions(policy, env, settings.id)
        out = rollout(policy, env, float(target_return), int(evaluation.seed), episodes=episodes, device=device,
                      progress=settings.id if progress else None,
                      sample_actions=evaluation.sample_actions)
    finally:
        env.close()
    seconds = time.perf_counter() - start
    returns = np.asarray(out.returns, np.float64)
    low, high = mean_interval(returns)
    row = {"env_id": settings.id, "target_return": float(target_return), "mean_return": float(returns.mean()),
           "ci95": [low, high], "std_return": float(returns.std()), "returns": returns.tolist(),
           "lengths": np.asarray(out.lengths).tolist(), "mean_length": float(np.mean(out.lengths)),
           "episodes": episodes, "num_envs": num_envs, "episodes_per_second": episodes / seconds,
           "env_steps_per_second": float(out.env_steps) / seconds}
    if None not in references:
        row.update(ref_min_score=references[0], ref_max_score=references[1],
                   normalised_score=float(normalise(returns.mean(), *references)),
                   normalised_ci95=[float(normalise(low, *references)), float(normalise(high, *references))])
    return [row]


def describe(row: dict) -> str:
    low, high = row["ci95"]
    text = f"{row['env_id']}  return {row['mean_return']:.1f}  [{low:.1f}, {high:.1f}]"
    if "normalised_score" in row:
        n_low, n_high = row["normalised_ci95"]
        text += f"  normalised {row['normalised_score']:.1f}  [{n_low:.1f}, {n_high:.1f}]"
    return (f"{text}  target {row['target_return']:g}  ({row['episodes']} episodes, mean length "
            f"{row['mean_length']:.0f}, {row['env_steps_per_second']:,.0f} env steps/s)")


def scalars(results: list[dict]) -> dict[str, float]:
    out = {}
    for row in results:
        out[f"return_{row['env_id']}"] = row["mean_return"]
        if "normalised_score" in row:
            out[f"normalised_{row['env_id']}"] = row["normalised_score"]
    return out


def plot(results: list[dict], path, title: str = "") -> None:
    """Each episode's return, the mean with its 95% interval and the reference returns, per row (PNG)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.0), squeeze=False)
    for ax, row in zip(axes[0], results):
        episode_returns(ax, row)
        name = f"{row['env_id']}\ntarget {row['target_return']:g}"
        if "normalised_score" in row:
            ax.axhline(row["ref_max_score"], color="C2", linestyle=":", label="reference max (100)")
            ax.axhline(row["ref_min_score"], color="C3", linestyle=":", label="reference min (0)")
            name += f", normalised {row['normalised_score']:.1f}"
        ax.set(xlim=(-0.5, 0.5), xticks=[], ylabel="return", title=name)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
