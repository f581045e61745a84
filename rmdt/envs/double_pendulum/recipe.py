"""InvertedDoublePendulum-v5 data from an LQR controller, mixed D4RL-style with noisier and random play.

    python datasets/double_pendulum.py --controller 20 --noisy 40 --random 100 --seed 0

The controller is a linear-quadratic regulator on the simulator's state (cart position, two hinge
angles and their velocities): the environment's 5-substep transition is linearised about the
upright pose by central finite differences and the discrete Riccati equation is iterated to its
fixed point. It balances every episode to the 1000-step limit (return ~9360). Like D4RL's
expert / medium / random mixtures, the dataset holds ``controller`` episodes of the controller,
``noisy`` episodes of the controller with Gaussian action noise whose scale is drawn per episode
from [0.1, ``max_noise``] (the pendulum often falls: returns spread from ~100 to ~9300), and
``random`` episodes of uniformly random actions (~50). The metadata holds the environment spec
and the reference returns of the normalised score: ``ref_min_score`` (random play) and
``ref_max_score`` (the controller), each the mean over ``reference_episodes`` fresh episodes.
The same arguments give the same dataset, and an existing one is reused.
"""
from __future__ import annotations

import argparse

import numpy as np

from rmdt.envs.recipe_cli import add_root_argument, show_dataset

ENV_ID = "InvertedDoublePendulum-v5"
DEFAULTS = dict(controller=20, noisy=40, random=100, max_noise=0.4, reference_episodes=20, seed=0)
MIN_NOISE = 0.1


def dataset_id(controller: int, noisy: int, random: int, max_noise: float, reference_episodes: int, seed: int) -> str:
    return (f"rmdt/double-pendulum-lqr-c{controller}-n{noisy}-r{random}-sd{round(max_noise * 100)}"
            f"-ref{reference_episodes}-s{seed}-v0")


def lqr_gain(env, state_cost=(1.0, 10.0, 10.0, 0.1, 0.1, 0.1), action_cost: float = 1.0,
             eps: float = 1e-5, iterations: int = 5000) -> np.ndarray:
    """(1, 6) gain K of the controller ``u = -K [qpos, qvel]`` for the upright pose of ``env``."""
    import mujoco

    model, skip = env.unwrapped.model, env.unwrapped.frame_skip
    nq = model.nq

    def transition(x, u):
        data = mujoco.MjData(model)
        data.qpos[:], data.qvel[:], data.ctrl[:] = x[:nq], x[nq:], u
        for _ in range(skip):
            mujoco.mj_step(model, data)
        return np.concatenate([data.qpos, data.qvel])

    n, m = nq + model.nv, model.nu
    x0, u0 = np.zeros(n), np.zeros(m)
    A = np.stack([(transition(x0 + eps * e, u0) - transition(x0 - eps * e, u0)) / (2 * eps) for e in np.eye(n)], 1)
    B = np.stack([(transition(x0, u0 + eps * e) - transition(x0, u0 - eps * e)) / (2 * eps) for e in np.eye(m)], 1)
    Q, R, P = np.diag(state_cost), action_cost * np.eye(m), np.diag(state_cost)
    for _ in range(iterations):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
    return K


def play(env, gain, noise: float | None, seed: int, rng: np.random.Generator):
    """One episode: the controller (``noise`` 0), the controller plus N(0, noise²) action noise, or
    uniformly random actions (``gain`` None). Returns its arrays (observations include the final one)."""
    obs, _ = env.reset(seed=seed)
    sim, low, high = env.unwrapped.data, env.action_space.low, env.action_space.high
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    while True:
        if gain is None:
            action = rng.uniform(low, high)
        else:
            action = -gain @ np.concatenate([sim.qpos, sim.qvel]) + noise * rng.standard_normal(low.shape)
        action = np.clip(action, low, high).astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs), actions.append(action), rewards.append(reward)
        terminations.append(terminated), truncations.append(truncated)
        if terminated or truncated:
            return (np.asarray(observations), np.asarray(actions), np.asarray(rewards, np.float64),
                    np.asarray(terminations), np.asarray(truncations))


def collect(controller: int, noisy: int, random: int, max_noise: float, reference_episodes: int, seed: int):
    """``(episode arrays, ref_min_score, ref_max_score)``; every episode seeded from ``seed``."""
    import gymnasium as gym

    counts = dict(controller=controller, noisy=noisy, random=random, reference_episodes=reference_episodes)
    for name, count in counts.items():
        if count < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {count}")
    if controller + noisy + random < 1:
        raise ValueError("the dataset needs at least one episode (--controller, --noisy, --random)")
    if reference_episodes < 1:
        raise ValueError(f"--reference-episodes must be >= 1, got {reference_episodes}")
    if not max_noise >= MIN_NOISE:
        raise ValueError(f"--max-noise must be >= {MIN_NOISE}, got {max_noise}")
    env = gym.make(ENV_ID)
    gain = lqr_gain(env)
    total = controller + noisy + random
    seeds = np.random.SeedSequence(seed).generate_state(total + 2 * reference_episodes + 1)
    rng = np.random.default_rng(seeds[-1])
    noise = np.concatenate([np.zeros(controller), rng.uniform(MIN_NOISE, max_noise, noisy)])
    episodes = [play(env, gain, float(noise[i]), int(seeds[i]), rng) for i in range(controller + noisy)]
    episodes += [play(env, None, None, int(seeds[i]), rng) for i in range(controller + noisy, total)]
    reference_seeds = seeds[total:total + 2 * reference_episodes].reshape(2, -1)
    ref_max = np.mean([play(env, gain, 0.0, int(s), rng)[2].sum() for s in reference_seeds[0]])
    ref_min = np.mean([play(env, None, None, int(s), rng)[2].sum() for s in reference_seeds[1]])
    env.close()
    return episodes, float(ref_min), float(ref_max)


def build(controller: int = DEFAULTS["controller"], noisy: int = DEFAULTS["noisy"], random: int = DEFAULTS["random"],
          max_noise: float = DEFAULTS["max_noise"], reference_episodes: int = DEFAULTS["reference_episodes"],
          seed: int = DEFAULTS["seed"], root=None) -> str:
    """Builds the dataset unless it is already on disk; returns its id."""
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    from rmdt.data.minari_source import metadata_file, write_minari

    name = dataset_id(controller, noisy, random, max_noise, reference_episodes, seed)
    if metadata_file(name, root).is_file():
        return name
    episodes, ref_min, ref_max = collect(controller, noisy, random, max_noise, reference_episodes, seed)
    buffers = [EpisodeBuffer(id=i, observations=o, actions=a, rewards=r, terminations=te, truncations=tr, infos={})
               for i, (o, a, r, te, tr) in enumerate(episodes)]
    env = gym.make(ENV_ID)
    write_minari(
        name, buffers, root=root, env=env.spec, eval_env=env.spec, observation_space=env.observation_space,
        action_space=env.action_space, algorithm_name="LQR controller, LQR with action noise, uniform random",
        ref_min_score=ref_min, ref_max_score=ref_max,
        description=f"{ENV_ID}: {controller} LQR episodes, {noisy} with Gaussian action noise of scale "
                    f"U[{MIN_NOISE}, {max_noise}], {random} uniformly random, seed {seed}",
        requirements=["mujoco"])
    env.close()
    return name


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--controller", type=int, default=DEFAULTS["controller"], help="episodes of the LQR controller")
    parser.add_argument("--noisy", type=int, default=DEFAULTS["noisy"],
                        help="episodes of the controller with action noise")
    parser.add_argument("--random", type=int, default=DEFAULTS["random"], help="episodes of uniformly random actions")
    parser.add_argument("--max-noise", type=float, default=DEFAULTS["max_noise"],
                        help=f"noisy episodes draw their noise scale from [{MIN_NOISE}, this]")
    parser.add_argument("--reference-episodes", type=int, default=DEFAULTS["reference_episodes"],
                        help="episodes averaged for each reference return (random, controller)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of every episode and of the noise")
    add_root_argument(parser)
    args = parser.parse_args(argv)
    name = build(args.controller, args.noisy, args.random, args.max_noise, args.reference_episodes, args.seed,
                 args.root)
    meta = show_dataset(name, args.root).metadata
    print(f"reference returns: random {meta['ref_min_score']:.1f}, controller {meta['ref_max_score']:.1f}")


if __name__ == "__main__":
    main()
