"""POPGym (popgym-*-v0 ids): privileged-oracle datasets (recipe.py). Evaluation is the gymnasium evaluator's
(``evaluation: {env: gymnasium, env_args: {id: popgym-RepeatFirstEasy-v0}}``; wrapper popgym_flat by default)."""

EVALUATOR = "rmdt.envs.gymnasium"  # its settings and evaluator
