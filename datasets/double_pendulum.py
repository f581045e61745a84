"""InvertedDoublePendulum-v5: LQR controller, noisy-controller and random episodes.

The recipe is `rmdt/envs/double_pendulum/recipe.py` (`data.recipe: double_pendulum` in a config); this script is its
command line: `python datasets/double_pendulum.py --help`.
"""
from rmdt.envs.double_pendulum.recipe import main

if __name__ == "__main__":
    main()
