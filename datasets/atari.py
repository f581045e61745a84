"""Atari episodes recorded into a frame store, so users can make data without downloading anything.

The recipe is the module `rmdt.recipes.atari` (`data.recipe: atari` in a config); this script is its
command line: `python datasets/atari.py --help`.
"""
from rmdt.recipes.atari import main

if __name__ == "__main__":
    main()
