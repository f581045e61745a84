"""MiniGrid-Memory offline datasets from a privileged oracle, with a share of random actions mixed in.

    python datasets/minigrid.py --env-id MiniGrid-MemoryS13Random-v0 --episodes 1000 --random-share 0.1 --seed 0

The agent starts in a small room or the corridor east of it; a cue object (key or ball) lies in the
room; at the corridor's far end a key and a ball lie north and south of a split. Walking to the one
matching the cue pays ``1 - 0.9 * steps / max_steps``; the other ends the episode with 0.

The oracle first looks at the cue: it turns west and walks until the cue is in its view (MiniGrid's
own ``agent_sees``, walls occlude). Then it follows a shortest path (BFS over position x direction,
with the turn and forward actions) to the cell beside the matching object, never through the cell
beside the other. It reads the full grid (where the matching object is), but only as it is at the
current step. Sizes: ``MiniGrid-MemoryS9-v0`` (small), ``MiniGrid-MemoryS13Random-v0`` (as RATE),
``MiniGrid-MemoryS17Random-v0`` (large); any ``MiniGrid-Memory*`` id works.

Observations: the agent's 7x7 view of (object, colour, state) indices plus its direction, flat
uint8 (``rmdt.envs.gymnasium.wrappers.MinigridSymbolic``, env wrapper ``minigrid_symbolic`` for evaluation).
Metadata: ``ref_max_score`` (the oracle, no random actions) and ``ref_min_score`` (random play).
"""
from __future__ import annotations

import argparse
import re
from collections import deque

from rmdt.envs import oracle_play
from rmdt.envs.recipe_cli import show_dataset

DEFAULTS = dict(env_id="MiniGrid-MemoryS13Random-v0", episodes=1000, random_share=0.1, seed=0)
SIZES = ("MiniGrid-MemoryS9-v0", "MiniGrid-MemoryS13Random-v0", "MiniGrid-MemoryS17Random-v0")
WRAPPER = "minigrid_symbolic"
LEFT, RIGHT, FORWARD = 0, 1, 2
WEST = 2
STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # MiniGrid's DIR_TO_VEC: east, south, west, north


class MemoryOracle:
    """One episode's oracle: remembers whether it has seen the cue (it acts on the present only)."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, env) -> int:
        cue = (1, env.height // 2 - 1)
        self.seen = self.seen or env.agent_sees(*cue)
        if not self.seen:
            if env.agent_dir != WEST:
                return RIGHT if env.agent_dir == 1 else LEFT
            return FORWARD
        return first_action_to(env, tuple(env.success_pos), tuple(env.failure_pos))


def first_action_to(env, goal: tuple, avoid: tuple) -> int:
    """The first action of a shortest path (turns and forward moves) to stand on ``goal``."""
    start = (*map(int, env.agent_pos), int(env.agent_dir))
    first = {start: None}
    queue = deque([start])
    while queue:
        x, y, d = pose = queue.popleft()
        if (x, y) == goal:
            while first[pose][0] != start:
                pose = first[pose][0]
            return first[pose][1]
        dx, dy = STEPS[d]
        cell = (x + dx, y + dy)
        ahead = env.grid.get(*cell)
        moves = [(LEFT, (x, y, (d - 1) % 4)), (RIGHT, (x, y, (d + 1) % 4))]
        if cell != avoid and (ahead is None or ahead.can_overlap()):
            moves.append((FORWARD, (*cell, d)))
        for action, nxt in moves:
            if nxt not in first:
                first[nxt] = (pose, action)
                queue.append(nxt)
    raise RuntimeError(f"no path to {goal} in {env.spec.id if env.spec else env}")


def check_env_id(env_id: str) -> str:
    if not re.fullmatch(r"MiniGrid-Memory\w*-v\d+", env_id):
        raise ValueError(f"--env-id must be a MiniGrid-Memory id such as {', '.join(SIZES)}, got {env_id!r}")
    return env_id


def dataset_id(env_id: str, episodes: int, random_share: float, seed: int) -> str:
    name = re.sub(r"^MiniGrid-|-v\d+$", "", check_env_id(env_id))
    share = f"{random_share:g}".replace(".", "p").replace("-", "m")
    return f"rmdt/minigrid-{name}-oracle-e{episodes}-r{share}-s{seed}-v0"


def make_env(env_id: str):
    from rmdt.envs.gymnasium.wrappers import make

    return make(check_env_id(env_id), WRAPPER)


def oracle_actions():
    """``make_act`` for ``rmdt.envs.oracle_play``: a fresh oracle per episode."""
    def make_act():
        oracle = MemoryOracle()
        return lambda env: oracle(env.unwrapped)
    return make_act


def play(env_id: str, episodes: int, random_share: float, seed: int, progress: bool = False) -> list[tuple]:
    env = make_env(env_id)
    try:
        return oracle_play.play(env, oracle_actions(), episodes, random_share, seed, env_id if progress else None)
    finally:
        env.close()


def build(env_id: str = DEFAULTS["env_id"], episodes: int = DEFAULTS["episodes"],
          random_share: float = DEFAULTS["random_share"], seed: int = DEFAULTS["seed"], root=None,
          progress: bool = False) -> str:
    """Builds the dataset unless it is already on disk; returns its id."""
    return oracle_play.build(
        dataset_id(env_id, episodes, random_share, seed), lambda: make_env(env_id), oracle_actions(), env_id,
        episodes, random_share, seed, root, env_id if progress else None,
        description=f"{env_id}: {episodes} episodes of a privileged BFS oracle that looks at the cue first, "
                    f"with a share {random_share:g} of uniformly random actions, seed {seed}. Observations: "
                    f"7x7x3 view indices (x, y, channel) then direction, uint8; evaluate with env wrapper "
                    f"{WRAPPER!r} (rmdt.envs.gymnasium.wrappers).",
        requirements=["rmdt", "minigrid"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default=DEFAULTS["env_id"], help=f"a MiniGrid-Memory id ({', '.join(SIZES)})")
    oracle_play.add_play_arguments(parser, DEFAULTS)
    args = parser.parse_args(argv)
    name = build(args.env_id, args.episodes, args.random_share, args.seed, args.root, progress=True)
    show_dataset(name, args.root)
