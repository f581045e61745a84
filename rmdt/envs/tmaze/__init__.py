"""T-Maze: the corridor environment (env.py), its oracle dataset recipe, its evaluator and its settings."""


def __getattr__(name: str):
    # Datasets written before this package existed record the entry point rmdt.envs.tmaze:TMazeEnv.
    if name in ("TMazeEnv", "TMazeVectorEnv"):
        from rmdt.envs.tmaze import env

        return getattr(env, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
