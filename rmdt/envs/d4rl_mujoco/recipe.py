"""MuJoCo locomotion data made the way D4RL's was: a real RL agent's play, written in D4RL's HDF5 layout.

    python datasets/d4rl_mujoco.py --env hopper --agent-steps 200000 --seed 0

A stable-baselines3 agent (PPO, or SAC as D4RL used) trains on the gymnasium task for ``agent_steps``
environment steps; its stochastic actions are what D4RL's agents played. Two files are written:

- ``<env>-medium-<tag>.hdf5``: ``medium_steps`` steps of the partly trained agent's stochastic play,
  whole episodes (D4RL's "medium": a SAC agent stopped at about a third of expert);
- ``<env>-medium-replay-<tag>.hdf5``: every step the agent took while it trained (D4RL's "medium-replay":
  the agent's replay buffer up to that point).

Each holds ``observations``, ``actions`` (as executed, clipped to the action space), ``rewards``,
``terminals``, ``timeouts``, ``next_observations`` and ``metadata/*``: the gymnasium id, the agent, its
steps and seed, the mean return of the file's episodes, and the reference returns of the normalised
score. Those are D4RL's for the task (``rmdt.evaluation.scores.D4RL_REFERENCES``: its random and expert
policies), so scores read like D4RL papers' columns. The same arguments give the same files; files on
disk are reused. The agent needs the ``mujoco`` extra (stable-baselines3).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from rmdt.evaluation.scores import D4RL_ENV_IDS, D4RL_REFERENCES

AGENTS = ("ppo", "sac")
DEFAULTS = dict(env="hopper", agent="ppo", agent_steps=200_000, medium_steps=200_000, seed=0)


def default_root() -> Path:
    """``mujoco/`` beside the Minari datasets directory."""
    from rmdt.data.minari_source import datasets_root

    return datasets_root().parent / "mujoco"


def file_names(env: str, agent: str, agent_steps: int, medium_steps: int, seed: int) -> dict[str, str]:
    """The two files' names by D4RL dataset kind; the tag encodes every argument."""
    tag = f"{agent}{agent_steps}-m{medium_steps}-s{seed}-v0"
    return {"medium": f"{env}-medium-{tag}.hdf5", "medium-replay": f"{env}-medium-replay-{tag}.hdf5"}


class EpisodeRecorder:
    """Steps of a single environment cut into D4RL's flat arrays; an episode ends at termination or truncation."""

    DTYPES = dict(observations=np.float32, actions=np.float32, rewards=np.float32, terminals=bool, timeouts=bool,
                  next_observations=np.float32)  # D4RL's arrays, in the order ``add`` takes them

    def __init__(self):
        self.rows: dict[str, list] = {key: [] for key in self.DTYPES}
        self.returns: list[float] = []
        self._return = 0.0

    def add(self, obs, action, reward, next_obs, terminated: bool, truncated: bool) -> None:
        for key, value in zip(self.rows, (obs, action, reward, terminated, truncated and not terminated, next_obs)):
            self.rows[key].append(value)
        self._return += float(reward)
        if terminated or truncated:
            self.returns.append(self._return)
            self._return = 0.0

    def __len__(self) -> int:
        return len(self.rows["rewards"])

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.asarray(value, self.DTYPES[key]) for key, value in self.rows.items()}


def write_d4rl(path: Path, arrays: dict[str, np.ndarray], metadata: dict) -> None:
    """One D4RL-layout file, written beside ``path`` and renamed onto it."""
    import h5py

    from rmdt.atomic import atomic_path

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, compression="gzip")
        for key, value in metadata.items():
            f.create_dataset(f"metadata/{key}", data=value)


def make_agent(agent: str, env, steps: int, seed: int):
    from stable_baselines3 import PPO, SAC

    if agent == "ppo":  # SB3's defaults; a run shorter than one rollout collects just its steps
        return PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, n_steps=min(2048, max(64, steps)))
    return SAC("MlpPolicy", env, seed=seed, device="cpu", verbose=0, learning_starts=1000)


def train_agent(env_id: str, agent: str, steps: int, seed: int, progress: bool):
    """The trained agent and an EpisodeRecorder of every step it took while training."""
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    recorder = EpisodeRecorder()

    class Record(BaseCallback):
        """Each training step as the environment saw it (SB3 auto-resets: the true last observation is in info)."""

        def _on_step(self) -> bool:
            found = self.locals
            action = found.get("clipped_actions", found["actions"])
            info, done = found["infos"][0], bool(found["dones"][0])
            next_obs = info["terminal_observation"] if done else found["new_obs"][0]
            truncated = bool(info.get("TimeLimit.truncated", False))
            recorder.add(self.model._last_obs[0], np.clip(action[0], low, high), found["rewards"][0], next_obs,
                         done and not truncated, truncated)
            return True

    env = gym.make(env_id)
    low, high = env.action_space.low, env.action_space.high
    model = make_agent(agent, env, steps, seed)
    model.learn(total_timesteps=steps, callback=Record(), progress_bar=progress)
    env.close()
    return model, recorder


def play(model, env_id: str, steps: int, seed: int, progress: bool) -> EpisodeRecorder:
    """The agent's stochastic play, whole episodes, until at least ``steps`` steps."""
    import gymnasium as gym

    from rmdt.progress import progress_bar

    env = gym.make(env_id)
    low, high = env.action_space.low, env.action_space.high
    recorder, episode = EpisodeRecorder(), 0
    with progress_bar(total=steps, desc=f"{env_id} medium play", disable=not progress) as bar:
        while len(recorder) < steps:
            obs, _ = env.reset(seed=seed * 1_000_003 + episode)
            done, start = False, len(recorder)
            while not done:
                action = np.clip(model.predict(obs, deterministic=False)[0], low, high)
                next_obs, reward, terminated, truncated, _ = env.step(action)
                recorder.add(obs, action, reward, next_obs, terminated, truncated)
                obs, done = next_obs, terminated or truncated
            bar.update(len(recorder) - start)
            episode += 1
    env.close()
    return recorder


def build(env: str = DEFAULTS["env"], agent: str = DEFAULTS["agent"], agent_steps: int = DEFAULTS["agent_steps"],
          medium_steps: int = DEFAULTS["medium_steps"], seed: int = DEFAULTS["seed"], kind: str = "medium",
          root=None, progress: bool = True) -> str:
    """Trains the agent and writes both files unless they are on disk; returns the path of the ``kind`` file
    (``medium`` or ``medium-replay``)."""
    if env not in D4RL_ENV_IDS:
        raise ValueError(f"env must be one of {', '.join(D4RL_ENV_IDS)}, got {env!r}")
    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {', '.join(AGENTS)}, got {agent!r}")
    names = file_names(env, agent, agent_steps, medium_steps, seed)
    if kind not in names:
        raise ValueError(f"kind must be one of {', '.join(names)}, got {kind!r}")
    for name, value in (("agent_steps", agent_steps), ("medium_steps", medium_steps)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    folder = Path(root or default_root()).expanduser()
    paths = {k: folder / name for k, name in names.items()}
    if all(p.is_file() for p in paths.values()):
        return os.fspath(paths[kind])
    env_id = D4RL_ENV_IDS[env]
    model, replay = train_agent(env_id, agent, agent_steps, seed, progress)
    medium = play(model, env_id, medium_steps, seed, progress)
    ref_min, ref_max = D4RL_REFERENCES[env]
    for name, recorder in (("medium", medium), ("medium-replay", replay)):
        write_d4rl(paths[name], recorder.arrays(), dict(
            env_id=env_id, algorithm=f"stable-baselines3 {agent.upper()}", agent_steps=agent_steps, seed=seed,
            ref_min_score=ref_min, ref_max_score=ref_max, mean_return=float(np.mean(recorder.returns or [np.nan])),
            episodes=len(recorder.returns),
            description=(f"{env_id}: " + (f"{medium_steps} steps of the agent's stochastic play after {agent_steps} "
                         "training steps" if name == "medium" else f"the agent's {agent_steps} training steps"))))
    return os.fspath(paths[kind])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default=DEFAULTS["env"], choices=sorted(D4RL_ENV_IDS))
    parser.add_argument("--agent", default=DEFAULTS["agent"], choices=AGENTS, help="stable-baselines3 algorithm")
    parser.add_argument("--agent-steps", type=int, default=DEFAULTS["agent_steps"], help="agent training steps")
    parser.add_argument("--medium-steps", type=int, default=DEFAULTS["medium_steps"],
                        help="steps of the trained agent's play in the medium file")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--root", default=None, help="directory of the files (default: mujoco/ beside the "
                                                      "Minari datasets)")
    args = parser.parse_args(argv)
    from rmdt.data import load_trajectories

    for kind in ("medium", "medium-replay"):
        path = build(args.env, args.agent, args.agent_steps, args.medium_steps, args.seed, kind, args.root)
        data = load_trajectories(path)
        print(f"{kind}: {path}\n{data.summary()}")


if __name__ == "__main__":
    main()
