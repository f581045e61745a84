"""Any registered gymnasium id: the generic evaluator, its settings, and the wrappers that show an environment
the way rmdt's datasets stored it (popgym_flat, minigrid_symbolic, flattened dict observations)."""
