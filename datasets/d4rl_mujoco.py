"""Hopper / HalfCheetah / Walker2d: D4RL-layout medium and medium-replay files from a stable-baselines3 agent.

The recipe is `rmdt/envs/d4rl_mujoco/recipe.py` (`data.recipe: d4rl_mujoco` in a config); this script is its
command line: `python datasets/d4rl_mujoco.py --help`.
"""
from rmdt.envs.d4rl_mujoco.recipe import main

if __name__ == "__main__":
    main()
