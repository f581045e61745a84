"""Memory Maze: the gymnasium environments (env.py), the BFS-oracle recipe, the evaluator and its settings."""


def __getattr__(name: str):
    # Datasets written before this package existed record the entry point rmdt.envs.memory_maze:MemoryMazeEnv.
    if name == "MemoryMazeEnv":
        from rmdt.envs.memory_maze import env

        return env.MemoryMazeEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
