"""Memory Maze oracle dataset: a breadth-first-search planner with a share of random actions.

The recipe is `rmdt/envs/memory_maze/recipe.py` (`data.recipe: memory_maze` in a config); this script is its
command line: `python datasets/memory_maze.py --help`.
"""
from rmdt.envs.memory_maze.recipe import main

if __name__ == "__main__":
    main()
