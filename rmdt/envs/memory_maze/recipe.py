"""Memory Maze oracle dataset: a breadth-first-search planner with a share of random actions.

    python datasets/memory_maze.py --episodes 200 --episode-steps 90 --noise 0.2 --workers 2

The oracle reads the maze layout, its position and direction and the current target's position
from the env's global observables, finds the shortest path over free cells by breadth-first
search, and turns toward / walks to the next cell of that path. With probability ``noise`` a step
takes a uniformly random action instead, so the data is not trivially clean. Only the 64x64 RGB
frames (uint8), actions and rewards are stored.

Episodes are built in chunks of ``chunk`` episodes: chunk c runs one env seeded from (seed, c) and
is saved as its own file under ``<datasets root>/.partial/<dataset id>/`` as soon as it is done, so
an interrupted build resumes where it stopped, chunks can run in parallel processes (``--workers``),
and the same arguments always give the same dataset. The Minari dataset is written atomically at
the end and the chunk files are then removed. The dataset id encodes every argument.
"""
from __future__ import annotations

import argparse
import shutil
from collections import deque
from pathlib import Path

import numpy as np

from rmdt.envs.recipe_cli import add_root_argument, show_dataset

DEFAULTS = dict(episodes=200, episode_steps=90, maze_size=9, noise=0.2, seed=0, chunk=10)


def dataset_id(episodes: int, episode_steps: int, maze_size: int, noise: float, seed: int, chunk: int) -> str:
    share = f"{noise:g}".replace(".", "p")  # minari ids allow no dots
    return (f"rmdt/memory-maze-{maze_size}x{maze_size}-oracle-e{episodes}-t{episode_steps}"
            f"-n{share}-c{chunk}-s{seed}-v0")


def next_cell(layout: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> tuple[int, int]:
    """The first cell after ``start`` on a shortest path to ``goal`` (``goal`` itself if unreachable
    or already there); cells are (x, y) and ``layout[y, x]`` is nonzero on free floor."""
    if start == goal:
        return goal
    parent = {start: start}
    queue = deque([start])
    height, width = layout.shape
    while queue:
        x, y = queue.popleft()
        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= nx < width and 0 <= ny < height and layout[ny, nx] and (nx, ny) not in parent:
                parent[(nx, ny)] = (x, y)
                if (nx, ny) == goal:
                    cell = goal
                    while parent[cell] != start:
                        cell = parent[cell]
                    return cell
                queue.append((nx, ny))
    return goal


def oracle_action(info: dict) -> int:
    """Turn toward the next path cell (or the target in its own cell), walk when roughly facing it.

    While leaving a cell the agent first steers back to the cell's centre line, so it does not cut
    corners into walls.
    """
    from rmdt.envs.memory_maze.env import FORWARD, FORWARD_LEFT, FORWARD_RIGHT, LEFT, RIGHT

    position, direction = np.asarray(info["agent_pos"]), np.asarray(info["agent_dir"])
    cell = (int(position[0]), int(position[1]))
    goal_xy = np.asarray(info["target_pos"])
    goal = (int(goal_xy[0]), int(goal_xy[1]))
    step = next_cell(info["maze_layout"], cell, goal)
    centre = np.array(cell) + 0.5
    if step == cell:
        aim = goal_xy
    else:
        heading = np.array(step) - np.array(cell)
        offset = position - centre
        across = offset[0] * heading[1] - offset[1] * heading[0]  # signed distance off the centre line
        aim = centre + 0.5 * heading if abs(across) > 0.2 else centre + heading
    to_aim = aim - position
    angle = np.arctan2(direction[0] * to_aim[1] - direction[1] * to_aim[0], direction @ to_aim)  # + is left
    if abs(angle) > np.radians(50):
        return LEFT if angle > 0 else RIGHT
    if abs(angle) > np.radians(15):
        return FORWARD_LEFT if angle > 0 else FORWARD_RIGHT
    return FORWARD


def run_chunk(args: tuple) -> dict:
    """Rolls ``count`` oracle episodes in one env seeded from (seed, chunk index); returns arrays."""
    from rmdt.envs.memory_maze.env import MemoryMazeEnv

    index, count, episode_steps, maze_size, noise, seed = args
    env_seed, noise_seed = np.random.SeedSequence([seed, index]).generate_state(2)
    rng = np.random.default_rng(noise_seed)
    env = MemoryMazeEnv(maze_size, episode_steps, global_observables=True)
    frames, actions, rewards = [], [], []
    try:
        for episode in range(count):
            obs, info = env.reset(seed=int(env_seed) if episode == 0 else None)
            ep_frames, ep_actions, ep_rewards, done = [obs], [], [], False
            while not done:
                action = int(rng.integers(6)) if rng.random() < noise else oracle_action(info)
                obs, reward, terminated, truncated, info = env.step(action)
                ep_frames.append(obs), ep_actions.append(action), ep_rewards.append(reward)
                done = terminated or truncated
            frames.append(np.stack(ep_frames)), actions.append(ep_actions), rewards.append(ep_rewards)
    finally:
        env.close()
    return {"observations": np.stack(frames), "actions": np.asarray(actions, np.int64),
            "rewards": np.asarray(rewards, np.float32)}


def partial_dir(name: str, root=None) -> Path:
    """Where the finished chunks of an unfinished build of dataset ``name`` wait."""
    from rmdt.data.minari_source import datasets_root

    return datasets_root(root) / ".partial" / name


def _chunk_file(partial: Path, index: int) -> Path:
    return partial / f"chunk_{index:05d}.npz"


def build(episodes: int = DEFAULTS["episodes"], episode_steps: int = DEFAULTS["episode_steps"],
          maze_size: int = DEFAULTS["maze_size"], noise: float = DEFAULTS["noise"], seed: int = DEFAULTS["seed"],
          chunk: int = DEFAULTS["chunk"], workers: int = 1, root=None, progress: bool = True) -> str:
    """Builds the dataset unless it is already on disk (resuming saved chunks); returns its id."""
    import multiprocessing

    from minari.data_collector import EpisodeBuffer

    from rmdt.atomic import atomic_path
    from rmdt.data.minari_source import metadata_file, write_minari
    from rmdt.envs.memory_maze.env import MemoryMazeEnv, env_spec
    from rmdt.progress import progress_bar

    if episodes < 1 or chunk < 1 or workers < 1:
        raise ValueError(f"--episodes, --chunk and --workers must be >= 1, got {episodes}, {chunk}, {workers}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"--noise must be in [0, 1], got {noise}")
    MemoryMazeEnv(maze_size, episode_steps)  # checks size and length before any work
    name = dataset_id(episodes, episode_steps, maze_size, noise, seed, chunk)
    if metadata_file(name, root).is_file():
        return name
    partial = partial_dir(name, root)
    partial.mkdir(parents=True, exist_ok=True)
    counts = [min(chunk, episodes - start) for start in range(0, episodes, chunk)]
    todo = [(i, n, episode_steps, maze_size, noise, seed) for i, n in enumerate(counts)
            if not _chunk_file(partial, i).is_file()]
    with progress_bar(total=episodes, initial=episodes - sum(t[1] for t in todo), desc=f"oracle {name}",
                      disable=not progress, unit="episode") as bar:
        def save(job, arrays):
            with atomic_path(_chunk_file(partial, job[0])) as tmp, open(tmp, "wb") as f:
                np.savez(f, **arrays)
            bar.update(job[1])

        if workers == 1 or len(todo) <= 1:
            for job in todo:
                save(job, run_chunk(job))
        else:
            with multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) as pool:
                for job, arrays in zip(todo, pool.imap(run_chunk, todo)):
                    save(job, arrays)
    buffers = []
    for i in range(len(counts)):
        with np.load(_chunk_file(partial, i)) as arrays:
            for obs, act, rew in zip(arrays["observations"], arrays["actions"], arrays["rewards"]):
                steps = len(act)
                buffers.append(EpisodeBuffer(
                    id=len(buffers), observations=obs, actions=act, rewards=rew,
                    terminations=np.zeros(steps, bool), truncations=np.arange(1, steps + 1) == steps, infos={}))
    write_minari(
        name, buffers, root=root, env=env_spec(maze_size, episode_steps),
        observation_space=MemoryMazeEnv.observation_space, action_space=MemoryMazeEnv.action_space,
        algorithm_name="bfs-oracle",
        description=f"Memory Maze {maze_size}x{maze_size} BFS oracle: {episodes} episodes of {episode_steps} "
                    f"steps, {noise:g} share of random actions, seed {seed}",
        requirements=["rmdt", "memory-maze", "mujoco"])
    shutil.rmtree(partial, ignore_errors=True)
    return name


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=DEFAULTS["episodes"], help="number of episodes")
    parser.add_argument("--episode-steps", type=int, default=DEFAULTS["episode_steps"],
                        help="steps per episode (1000 is the full 9x9 benchmark episode)")
    parser.add_argument("--maze-size", type=int, default=DEFAULTS["maze_size"], help="9, 11, 13 or 15")
    parser.add_argument("--noise", type=float, default=DEFAULTS["noise"], help="share of random actions")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of mazes and noise")
    parser.add_argument("--chunk", type=int, default=DEFAULTS["chunk"],
                        help="episodes per saved chunk (the unit of resuming and of parallel work)")
    parser.add_argument("--workers", type=int, default=1, help="processes building chunks in parallel")
    add_root_argument(parser)
    args = parser.parse_args(argv)
    name = build(args.episodes, args.episode_steps, args.maze_size, args.noise, args.seed, args.chunk,
                 args.workers, args.root)
    show_dataset(name, args.root)


if __name__ == "__main__":
    main()
