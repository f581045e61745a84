"""gymnasium's MuJoCo locomotion tasks (Hopper, HalfCheetah, Walker2d): D4RL-layout datasets made by a
stable-baselines3 agent (recipe.py). Evaluation is the gymnasium evaluator's (``evaluation: {env: gymnasium}``;
the id and the reference returns come from the file's metadata)."""

EVALUATOR = "rmdt.envs.gymnasium"  # its settings and evaluator
