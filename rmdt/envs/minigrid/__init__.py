"""MiniGrid-Memory: privileged-oracle datasets (recipe.py). Evaluation is the gymnasium evaluator's
(``evaluation: {env: gymnasium, env_args: {id: MiniGrid-MemoryS13Random-v0}}``; wrapper minigrid_symbolic
by default)."""

EVALUATOR = "rmdt.envs.gymnasium"  # its settings and evaluator
