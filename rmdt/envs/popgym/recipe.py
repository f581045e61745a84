"""POPGym offline datasets from privileged oracles, with a share of random actions mixed in.

    python datasets/popgym.py --task RepeatFirstEasy --episodes 1000 --random-share 0.1 --seed 0

Each oracle reads the environment's hidden state (``env.unwrapped``) at step t, never anything drawn
after it (tested: changing the randomness of later steps leaves earlier actions unchanged):

| family | oracle |
|---|---|
| RepeatFirst | the suit of the first card |
| RepeatPrevious | the suit of the card dealt k steps ago (any action before k cards) |
| Autoencode | while playing back: the suit of the card to recite (watching: action 0) |
| CountRecall | how often the queried value has been dealt so far |
| HigherLower | card counting: "higher" when more of the cards left in the deck rank above the shown one |
| Concentration | flips a face-down card, then its match (it knows every face-down value) |
| MineSweeper | clicks the first mine-free unopened cell (it knows the mines) |
| Battleship | fires at the first unhit ship cell (it knows the board) |
| MultiarmedBandit | pulls the arm with the highest payout probability |
| PositionOnlyCartPole, NoisyPositionOnlyCartPole | a linear controller on the true (x, x', theta, theta') |
| LabyrinthEscape | the first step of a shortest path to the exit (BFS on the full maze) |
| LabyrinthExplore | the first step of a shortest path to the nearest unvisited cell (BFS) |

Each family has Easy, Medium and Hard tasks (``--task RepeatFirstHard``). Left out:
PositionOnlyPendulum and NoisyPositionOnlyPendulum (continuous actions; rmdt's POPGym suite is
discrete), VelocityOnlyCartPole (popgym registers it as ``...Cartpole``; the position-only variants
cover the controller tasks) and NonstationaryBandit (not registered by popgym 1.0.7). The Labyrinth tasks need the
``mazelib`` package (in the ``popgym`` extra). HigherLower's oracle does not read the shuffled deck:
that is the future (the next card), so its best play without peeking is counting the cards dealt.

At every step, with probability ``random_share``, a uniformly random action replaces the oracle's
(drawn from a stream of the seed separate from the environments'). Observations are flattened and
MultiDiscrete actions turned into one Discrete index by ``rmdt.envs.gymnasium.wrappers.PopgymFlat`` (wrapper
``popgym_flat`` for evaluation). The metadata hold ``ref_max_score`` (the oracle's mean return,
no random actions) and ``ref_min_score`` (uniformly random play), each over
``oracle_play.REFERENCE_EPISODES`` episodes of seeds no dataset episode uses.
"""
from __future__ import annotations

import argparse
import re
from collections import deque

import numpy as np

from rmdt.envs import oracle_play
from rmdt.envs.recipe_cli import show_dataset
from rmdt.suggest import did_you_mean

DEFAULTS = dict(episodes=1000, random_share=0.1, seed=0)
LEVELS = ("Easy", "Medium", "Hard")
WRAPPER = "popgym_flat"


def repeat_first(env):
    return int(env.card)


def repeat_previous(env):
    if env.deck.hand_size("player") < env.k:
        return 0  # no reward yet whatever the action
    return int(env.deck.suits_idx[env.deck["player"][-env.k]])


def autoencode(env):
    return int(env.deck.suits_idx[env.deck["system"][-1]]) if env.mode.value == 0 else 0  # 0: PLAY


def count_recall(env):
    return int(env.counts[env.query])


def higher_lower(env):
    shown = int(env.deck.show("player", ["ranks_idx"]).item())
    left = 4 * env.num_decks - env.state.astype(np.int64)  # cards of each rank still in the deck
    return 0 if left[shown + 1:].sum() >= left[:shown].sum() else 1  # 0: "higher"


def concentration(env):
    values, up = env.state, set(env.deck["face_up_idx"])
    in_play = list(env.deck["in_play_idx"])
    down = [i for i in range(len(values)) if i not in up and i not in in_play]
    if in_play:
        target = env.deck_idx_type[env.deck.idx[in_play[0]]]
        return next(i for i in down if values[i] == target)
    return down[0]


def minesweeper(env):
    return np.argwhere(env.hidden_grid == 0)[0]  # 0: CLEAR (neither a mine nor opened)


def battleship(env):
    return np.argwhere((env.board == 1) & (env.guesses == 0))[0]


def multiarmed_bandit(env):
    return int(np.argmax(env.bandits))


def cartpole(env):
    x, x_dot, theta, theta_dot = env.state
    return int(0.1 * x + 0.3 * x_dot + 6.0 * theta + 1.5 * theta_dot > 0)  # 1: push right


MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))  # popgym.core.maze.Actions: left, right, up, down as (dy, dx)


def first_step_to(env, goal) -> int:
    """The first move of a shortest path (BFS over free cells) from the agent to a cell where ``goal``."""
    grid = env.maze.grid
    start = tuple(env.position)
    first = {start: None}
    queue = deque([start])
    while queue:
        y, x = cell = queue.popleft()
        if goal(cell) and cell != start:
            while first[cell] is not None and first[cell][0] != start:
                cell = first[cell][0]
            return first[cell][1]
        for action, (dy, dx) in enumerate(MOVES):
            nxt = (y + dy, x + dx)
            if 0 <= nxt[0] < grid.shape[0] and 0 <= nxt[1] < grid.shape[1] and grid[nxt] != 1 and nxt not in first:
                first[nxt] = (cell, action)
                queue.append(nxt)
    return 0  # nothing left to reach


def labyrinth_escape(env):
    return first_step_to(env, lambda cell: cell == tuple(env.maze.end))


def labyrinth_explore(env):
    return first_step_to(env, lambda cell: env.explored[cell] == 0)


ORACLES = {
    "RepeatFirst": repeat_first, "RepeatPrevious": repeat_previous, "Autoencode": autoencode,
    "CountRecall": count_recall, "HigherLower": higher_lower, "Concentration": concentration,
    "MineSweeper": minesweeper, "Battleship": battleship, "MultiarmedBandit": multiarmed_bandit,
    "PositionOnlyCartPole": cartpole, "NoisyPositionOnlyCartPole": cartpole,
    "LabyrinthEscape": labyrinth_escape, "LabyrinthExplore": labyrinth_explore,
}
TASKS = tuple(family + level for family in ORACLES for level in LEVELS)


def parse_task(task: str) -> tuple[str, str]:
    """``"RepeatFirstEasy"`` or ``"popgym-RepeatFirstEasy-v0"`` -> (task, family)."""
    name = re.sub(r"^popgym-|-v0$", "", task)
    if name not in TASKS:
        raise ValueError(f"POPGym task {task!r} has no oracle here{did_you_mean(name, TASKS)}")
    return name, next(f for f in ORACLES if name[len(f):] in LEVELS and name.startswith(f))


def env_id(task: str) -> str:
    return f"popgym-{parse_task(task)[0]}-v0"


def dataset_id(task: str, episodes: int, random_share: float, seed: int) -> str:
    share = f"{random_share:g}".replace(".", "p").replace("-", "m")
    return f"rmdt/popgym-{parse_task(task)[0]}-oracle-e{episodes}-r{share}-s{seed}-v0"


def make_env(task: str):
    from rmdt.envs.gymnasium.wrappers import make

    return make(env_id(task), WRAPPER)


def oracle_actions(task: str):
    """``make_act`` for ``rmdt.envs.oracle_play``: the task's oracle as a flat action index."""
    oracle = ORACLES[parse_task(task)[1]]
    return lambda: lambda env: env.flat_action(oracle(env.unwrapped))


def play(task: str, episodes: int, random_share: float, seed: int, progress: bool = False) -> list[tuple]:
    """``episodes`` episodes of the oracle with ``random_share`` random actions (see oracle_play.play)."""
    name = parse_task(task)[0]
    env = make_env(name)
    try:
        return oracle_play.play(env, oracle_actions(name), episodes, random_share, seed,
                                f"popgym {name}" if progress else None)
    finally:
        env.close()


def build(task: str = "RepeatFirstEasy", episodes: int = DEFAULTS["episodes"],
          random_share: float = DEFAULTS["random_share"], seed: int = DEFAULTS["seed"], root=None,
          progress: bool = False) -> str:
    """Builds the dataset unless it is already on disk; returns its id."""
    return oracle_play.build(
        dataset_id(task, episodes, random_share, seed), lambda: make_env(task), oracle_actions(task),
        env_id(task), episodes, random_share, seed, root, f"popgym {parse_task(task)[0]}" if progress else None,
        description=f"POPGym {parse_task(task)[0]}: {episodes} episodes of a privileged oracle with a share "
                    f"{random_share:g} of uniformly random actions, seed {seed}. Observations: "
                    f"gymnasium.spaces.flatten (one-hot discrete parts), float32; MultiDiscrete actions as one "
                    f"ravel_multi_index; evaluate with env wrapper {WRAPPER!r} (rmdt.envs.gymnasium.wrappers).",
        requirements=["rmdt", "popgym"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="RepeatFirstEasy", help=f"one of {', '.join(TASKS)} (or its popgym id)")
    oracle_play.add_play_arguments(parser, DEFAULTS)
    args = parser.parse_args(argv)
    name = build(args.task, args.episodes, args.random_share, args.seed, args.root, progress=True)
    show_dataset(name, args.root)
