"""T-Maze oracle dataset: episodes of the optimal policy with corridor lengths drawn from a range.

The recipe is `rmdt/envs/tmaze/recipe.py` (`data.recipe: tmaze` in a config); this script is its
command line: `python datasets/tmaze.py --help`.
"""
from rmdt.envs.tmaze.recipe import main

if __name__ == "__main__":
    main()
