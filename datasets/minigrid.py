"""MiniGrid-Memory offline datasets from a privileged oracle, with a share of random actions mixed in.

The recipe is `rmdt/envs/minigrid/recipe.py` (`data.recipe: minigrid` in a config); this script is its
command line: `python datasets/minigrid.py --help`.
"""
from rmdt.envs.minigrid.recipe import main

if __name__ == "__main__":
    main()
