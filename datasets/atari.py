"""Atari episodes recorded into a frame store, so users can make data without downloading anything.

The recipe is `rmdt/envs/atari/recipe.py` (`data.recipe: atari` in a config); this script is its
command line: `python datasets/atari.py --help`.
"""
from rmdt.envs.atari.recipe import main

if __name__ == "__main__":
    main()
