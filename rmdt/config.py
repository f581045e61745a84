"""Run configuration: typed dataclasses (the comment on each field is its documentation), YAML files
under ``configs/`` and dotted command-line overrides such as ``training.steps=2000``.

A key that no dataclass knows is an error naming it (with the closest known key), so a typo never
silently trains with a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rmdt.atomic import write_text


MODEL_KINDS = ("rmdt", "ffm", "linear_attention", "lru")


class ConfigError(ValueError):
    """A configuration problem; the message names the file or key."""


@dataclass
class DataConfig:
    recipe: str | None = "tmaze"  # build the dataset with datasets/<recipe>.py (reused if on disk); null: use `dataset`
    recipe_args: dict = field(default_factory=dict)  # keyword arguments of that recipe's build()
    dataset: str | None = None  # Minari dataset id or directory, D4RL-layout .hdf5 file, or frame store (Atari)
    root: str | None = None  # Minari datasets directory (default $MINARI_DATASETS_PATH, else data/minari)
    num_actions: int | None = None  # discrete action count for D4RL files with integer actions
    context_len: int = 30  # K: steps per segment (the transformer's context)
    num_segments: int = 3  # N: segments per training window; windows are N*K steps
    num_segments_schedule: list | str | None = None  # curriculum: [[step, N], ...] from step 0, or "linear A->B over S"; step s trains on the first N(s) segments of its windows (null: always N)
    window_starts: str = "episode"  # "episode": windows begin at episode starts; "uniform": at any step
    discount: float = 1.0  # discount of the return-to-go
    return_scale: float = 1.0  # return-to-go is divided by this before it enters the model
    batching: str = "segments"  # "segments": padded windows of N*K steps; "tape": whole episodes end to end (recurrent models)
    tape_len: int = 180  # steps per tape (batch row) when batching is "tape"


@dataclass
class ModelConfig:
    kind: str = "rmdt"  # model family: "rmdt" (a DT is rmdt with memory_tokens 0), or a memoroid: "ffm", "linear_attention", "lru"
    memory_tokens: int = 8  # M: memory tokens read and written per segment; 0 gives a plain DT
    cache_len: int = 0  # C: trajectory tokens also attend to the detached hidden states of the last C tokens before their segment (RATE's mem_len; 0: no cache)
    d_model: int = 64  # width of every token embedding
    n_layers: int = 2  # transformer blocks
    n_heads: int = 4  # attention heads (d_model must be divisible by it)
    dropout: float = 0.0  # dropout in attention and MLPs
    obs_encoder: str = "mlp"  # observation encoder: "mlp" for vectors (image encoders register more)
    memory_update: str = "replace"  # "replace": write outputs become memory; "mrv": Memory Retention Valve;
    #                                   "gated": m + z * (write - m) with a learned gate z per channel
    gate_bias_init: float = -3.0  # initial gate bias of the "gated" update (z starts near 0.05: memory kept)
    memory_replay: int = 0  # training only: each segment but the last writes memory 1 + U{0..this} times
    memory_noise: float = 0.0  # training only: std of Gaussian noise added to the memory after each segment
    grad_segments: int | None = None  # segments the gradient crosses through memory; null: all of them
    position_embedding: str = "learned"  # "learned" or "sinusoidal" positions within a segment
    dt_context: str = "segments"  # DT rollouts (memory_tokens 0): "segments" (fresh context every K steps, as trained) or "sliding" (the last K steps, as the DT paper plays)
    memory_size: int = 32  # memoroids: FFM traces m; LRU complex state size; linear attention key size per head
    context_size: int = 4  # FFM contexts c (state of m * c complex numbers)
    horizon: int = 1024  # FFM initialisation: longest expected episode (sets decays and periods)
    scan: str = "auto"  # memoroids: "auto" (faster for the device), "parallel" or "sequential"


@dataclass
class TrainingConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # windows per optimizer step, over all processes and accumulation steps
    grad_accum: int = 1  # micro-batches accumulated per optimizer step
    lr: float = 1e-3  # peak learning rate of AdamW
    weight_decay: float = 0.01  # AdamW weight decay (not applied to norms, biases and embeddings)
    betas: list = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # clip the global gradient norm (0 disables)
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (autocast through Accelerate)
    log_every: int = 20  # steps between log lines / TensorBoard points
    checkpoint_every: int = 250  # steps between checkpoints (the last step is always saved)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    eval_every: int = 0  # steps between evaluations in the environment during training (0: never)


@dataclass
class EvaluationConfig:
    env: str = "tmaze"  # environment to roll out in
    target_return: float | None = 1.0  # return-to-go at t=0 (before scaling); null: the env's default
    #                                      (Atari: the DT paper's target for the game, e.g. Breakout 90)
    corridor_lengths: list = field(default_factory=lambda: [9, 30, 90, 150, 300, 600, 900])  # T-Maze lengths
    episodes: int = 100  # episodes per corridor length (all run at once)
    periodic_lengths: list = field(default_factory=lambda: [90])  # lengths evaluated every training.eval_every steps
    seed: int = 12345  # seed of evaluation environments (unseen by training)
    game: str = "Breakout"  # Atari: ALE game (Breakout, Pong, Qbert, Seaquest, ...)
    sticky_actions: float = 0.0  # Atari: probability of repeating the last action (0 in DT/RATE, 0.25 in Dopamine)
    max_steps: int = 27000  # Atari: agent steps before an episode is cut (108k frames at frame skip 4)
    maze_size: int = 9  # Memory Maze: maze side without outer walls (9, 11, 13 or 15)
    episode_steps: int = 1000  # Memory Maze: steps per evaluation episode (1000: the 9x9 benchmark)
    gif: str | None = None  # Memory Maze: save the first evaluation episode as this GIF (null: none)


@dataclass
class Config:
    name: str = "tmaze_rmdt"  # run name prefix: runs/{name}__{seed}__{time}
    seed: int = 0  # seed of model initialisation and of the window sampler
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def _check_type(value, annotation, key: str):
    """Returns ``value`` converted to the field's type, or raises ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    expected = origin or annotation
    if expected is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # YAML 1.1 reads 3e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(f"{key} must be {getattr(expected, '__name__', expected)}, got {value!r}")
    return value


def _build(cls, values: dict, prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (known: {', '.join(names)})"
            raise ConfigError(f"unknown config key {prefix}{key}{hint}")
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(value, hints[key], prefix + key)
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "recipe_args":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict:
    """``"training.steps=2000"`` -> ``{"training": {"steps": 2000}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    dotted, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw else None
    for part in reversed(dotted.strip().split(".")):
        value = {part: value}
    return value


def evaluation_overrides(texts: typing.Sequence[str]) -> dict:
    """``["episode_steps=500", "gif=ep.gif"]`` -> checked ``{"episode_steps": 500, "gif": "ep.gif"}``
    (keys and types of ``EvaluationConfig``), for changing a checkpoint's evaluation settings."""
    values: dict = {}
    for text in texts:
        values = _merge(values, parse_override(text))
    checked = _build(EvaluationConfig, values, "evaluation.")
    return {key: getattr(checked, key) for key in values}


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file, then ``key=value`` overrides, checked against the dataclasses."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from error
    for text in overrides:
        values = _merge(values, parse_override(text))
    try:
        config = _build(Config, values, "")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}" if path else str(error)) from None
    validate(config)
    return config


def validate(config: Config) -> None:
    """Checks values that are well typed but unusable, before any data is loaded."""
    d, m, t = config.data, config.model, config.training
    checks = [
        (d.recipe is not None or d.dataset is not None, "data.recipe or data.dataset must be set"),
        (d.context_len >= 1, f"data.context_len (K) must be >= 1, got {d.context_len}"),
        (d.num_segments >= 1, f"data.num_segments (N) must be >= 1, got {d.num_segments}"),
        (d.window_starts in ("episode", "uniform"),
         f"data.window_starts must be 'episode' or 'uniform', got {d.window_starts!r}"),
        (m.memory_tokens >= 0, f"model.memory_tokens must be >= 0, got {m.memory_tokens}"),
        (m.kind in MODEL_KINDS, f"model.kind must be one of {', '.join(MODEL_KINDS)}, got {m.kind!r}"),
        (d.batching in ("segments", "tape"), f"data.batching must be 'segments' or 'tape', got {d.batching!r}"),
        (d.batching == "segments" or m.kind != "rmdt",
         "data.batching 'tape' needs a recurrent model.kind (ffm, linear_attention, lru), not rmdt"),
        (d.tape_len >= 1, f"data.tape_len must be >= 1, got {d.tape_len}"),
        (t.steps >= 1, f"training.steps must be >= 1, got {t.steps}"),
        (t.batch_size >= 1, f"training.batch_size must be >= 1, got {t.batch_size}"),
        (t.grad_accum >= 1, f"training.grad_accum must be >= 1, got {t.grad_accum}"),
        (t.mixed_precision in ("no", "bf16", "fp16"),
         f"training.mixed_precision must be no, bf16 or fp16, got {t.mixed_precision!r}"),
        (len(t.betas) == 2, f"training.betas must be two numbers, got {t.betas}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if d.num_segments_schedule is not None:
        from rmdt.data.curriculum import parse_schedule

        try:
            parse_schedule(d.num_segments_schedule, d.num_segments)
        except ValueError as error:
            raise ConfigError(str(error)) from None
