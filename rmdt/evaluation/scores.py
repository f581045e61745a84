"""Normalised scores: ``100 * (return - ref_min) / (ref_max - ref_min)``, the figure D4RL papers report.

The D4RL MuJoCo references are those of d4rl/infos.py (REF_MIN_SCORE / REF_MAX_SCORE): one pair
per environment (a random policy's and an expert's average return), shared by every dataset of it
(random, medium, medium-replay, medium-expert, expert, full-replay) and every version (v0, v1, v2).
Minari datasets carry their own ``ref_min_score`` / ``ref_max_score`` in their metadata.
"""
from __future__ import annotations

D4RL_REFERENCES = {  # environment -> (ref_min_score, ref_max_score), from d4rl/infos.py
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
D4RL_DATASETS = ("random", "medium", "medium-replay", "medium-expert", "expert", "full-replay")
D4RL_ENV_IDS = {  # gymnasium environment a D4RL MuJoCo dataset is evaluated in (same observation layout)
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
}  # ant: D4RL's 111-dim observations (with contact forces) match no Ant-v5 setting; set env_args.id yourself


def d4rl_name(name: str) -> tuple[str, str] | None:
    """``(environment, dataset)`` of a D4RL MuJoCo dataset name such as ``hopper-medium-replay-v2``
    (underscores, as in D4RL's file names, count as dashes); None for any other name."""
    parts = name.lower().replace("_", "-").split("-")
    if len(parts) < 3 or not parts[-1].startswith("v") or parts[0] not in D4RL_REFERENCES:
        return None
    dataset = "-".join(parts[1:-1])
    return (parts[0], dataset) if dataset in D4RL_DATASETS else None


def d4rl_references(name: str) -> tuple[float, float] | None:
    """The D4RL reference min / max returns for a dataset name, or None if it is not a D4RL MuJoCo dataset."""
    found = d4rl_name(name)
    return D4RL_REFERENCES[found[0]] if found else None


def normalise(value, ref_min: float, ref_max: float):
    """``100 * (value - ref_min) / (ref_max - ref_min)``: 0 is the random policy, 100 the expert."""
    if ref_max == ref_min:
        raise ValueError(f"reference scores must differ, got min = max = {ref_min}")
    return 100.0 * (value - ref_min) / (ref_max - ref_min)
