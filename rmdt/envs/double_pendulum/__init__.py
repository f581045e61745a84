"""InvertedDoublePendulum-v5 (gymnasium's MuJoCo): LQR-controller datasets (recipe.py). Evaluation is the gymnasium
evaluator's (``evaluation: {env: gymnasium}``; the id and reference returns come from the dataset)."""

EVALUATOR = "rmdt.envs.gymnasium"  # its settings and evaluator
