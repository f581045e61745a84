"""POPGym offline datasets from privileged oracles, with a share of random actions mixed in.

The recipe is `rmdt/envs/popgym/recipe.py` (`data.recipe: popgym` in a config); this script is its
command line: `python datasets/popgym.py --help`.
"""
from rmdt.envs.popgym.recipe import main

if __name__ == "__main__":
    main()
