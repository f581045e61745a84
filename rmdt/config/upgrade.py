"""Run configs and checkpoint settings in the shapes older rmdt versions wrote, brought to today's.

Two old shapes exist: a flat evaluation section (every environment's settings side by side, before
``env_args``) and a model section holding every field of every model kind (before each kind owned its
fields). Both were written whole, so each is recognised by holding all of its old keys.
"""
from __future__ import annotations

# Settings of the flat evaluation section: old key -> (env it belonged to, its name in that env's Settings).
FLAT_EVALUATION_KEYS = {
    "corridor_lengths": ("tmaze", "corridor_lengths"), "periodic_lengths": ("tmaze", "periodic_lengths"),
    "game": ("atari", "game"), "sticky_actions": ("atari", "sticky_actions"), "max_steps": ("atari", "max_steps"),
    "maze_size": ("memory_maze", "maze_size"), "episode_steps": ("memory_maze", "max_steps"),
    "gif": ("memory_maze", "gif"),
}

# The model section of every run config written before the model registry: the union of all kinds' fields.
UNION_MODEL_KEYS = (
    "kind", "memory_tokens", "cache_len", "d_model", "n_layers", "n_heads", "dropout", "attn_dropout",
    "feed_forward", "mrv_heads", "obs_encoder", "memory_update", "gate_bias_init", "memory_replay", "memory_noise",
    "grad_segments", "position_embedding", "dt_context", "memory_size", "context_size", "horizon", "scan")


def upgrade_evaluation(values):
    """A flat evaluation dict in today's shape: the chosen env's settings move to ``env_args``, the
    other envs' (unused then too) are dropped. Anything else is returned as it is."""
    if not isinstance(values, dict) or "env_args" in values or not set(FLAT_EVALUATION_KEYS) <= set(values):
        return values
    env = values.get("env", "tmaze")
    upgraded = {key: value for key, value in values.items() if key not in FLAT_EVALUATION_KEYS}
    upgraded["env_args"] = {new: values[old] for old, (owner, new) in FLAT_EVALUATION_KEYS.items() if owner == env}
    return upgraded


def flat_evaluation_owner(key: str) -> tuple[str, str] | None:
    """``(env, today's name)`` of a key of the flat evaluation section, else None."""
    return FLAT_EVALUATION_KEYS.get(key)


def upgrade_model(values, fields_of):
    """A union model section (all of ``UNION_MODEL_KEYS``) reduced to its kind's fields; ``fields_of(kind)``
    lists a kind's fields. The dropped fields were unused by that kind then too."""
    if not isinstance(values, dict) or not set(UNION_MODEL_KEYS) <= set(values):
        return values
    keep = {"kind", *fields_of(values["kind"])}
    return {key: value for key, value in values.items() if key in keep}


def upgrade_run_config(values, fields_of):
    """A run config mapping (config.yaml) with both old shapes upgraded."""
    if not isinstance(values, dict):
        return values
    upgraded = dict(values)
    if "evaluation" in upgraded:
        upgraded["evaluation"] = upgrade_evaluation(upgraded["evaluation"])
    if "model" in upgraded:
        upgraded["model"] = upgrade_model(upgraded["model"], fields_of)
    return upgraded
