"""Run configuration: typed dataclasses (the comment on each field is its documentation), YAML files
under ``configs/`` and dotted command-line overrides such as ``training.steps=2000``.

A key that no dataclass knows is an error naming it (with the closest known key), so a typo never
silently trains with a default.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rmdt.atomic import write_text


RECURRENT_KINDS = ("ffm", "linear_attention", "lru", "gru", "lstm")  # rmdt.models.recurrent: memoroids, then RNNs
MODEL_KINDS = ("rmdt", *RECURRENT_KINDS)


class ConfigError(ValueError):
    """A configuration problem; the message names the file or key. ``keys``: the dotted keys at fault,
    so ``load_config`` can say whether the file or a command-line override set them."""

    def __init__(self, message: str, *keys: str):
        super().__init__(message)
        self.keys = keys


@dataclass
class DataConfig:
    recipe: str | None = "tmaze"  # build the dataset with that env's recipe (reused if on disk); null: use `dataset`
    recipe_args: dict = field(default_factory=dict)  # keyword arguments of that recipe's build()
    dataset: str | None = None  # Minari dataset id or directory, D4RL-layout .hdf5 file, or frame store (Atari)
    root: str | None = None  # Minari datasets directory (default: read $MINARI_DATASETS_PATH then ~/.minari/datasets, build into the first)
    num_actions: int | None = None  # discrete action count for D4RL files with integer actions
    context_len: int = 30  # K: steps per segment (the transformer's context)
    num_segments: int = 3  # N: segments per training window; windows are N*K steps
    num_segments_schedule: list | str | None = None  # curriculum: [[step, N], ...] from step 0, or "linear A->B over S"; step s trains on the first N(s) segments of its windows (null: always N)
    window_starts: str = "episode"  # "episode": windows begin at episode starts; "uniform": at any step
    discount: float = 1.0  # discount of the return-to-go
    return_scale: float = 1.0  # return-to-go is divided by this before it enters the model
    batching: str = "segments"  # "segments": padded windows of N*K steps; "tape": whole episodes end to end (recurrent models)
    tape_len: int = 180  # steps per tape (batch row) when batching is "tape"
    prefetch: int = 2  # threads building the batches of the next steps during the current one (0: none)


@dataclass
class ModelConfig:
    kind: str = "rmdt"  # model family: "rmdt" (a DT is rmdt with memory_tokens 0), a memoroid ("ffm", "linear_attention", "lru") or an RNN ("gru", "lstm")
    memory_tokens: int = 8  # M: memory tokens read and written per segment; 0 gives a plain DT
    cache_len: int = 0  # C: trajectory tokens also attend to the detached hidden states of the last C tokens before their segment (RATE's mem_len; 0: no cache)
    d_model: int = 64  # width of every token embedding
    n_layers: int = 2  # transformer blocks
    n_heads: int = 4  # attention heads (d_model must be divisible by it)
    dropout: float = 0.0  # dropout on embeddings and residual branches
    attn_dropout: float = 0.0  # rmdt: dropout on attention weights (slow on CPU: see README, Measured)
    feed_forward: bool = True  # rmdt: false leaves the blocks' MLP out (RATE's skip_dec_ffn)
    mrv_heads: int | None = None  # rmdt: heads of the Memory Retention Valve (null: n_heads)
    obs_encoder: str = "mlp"  # observation encoder: "mlp" for vectors (image encoders register more)
    memory_update: str = "replace"  # "replace": write outputs become memory; "mrv": Memory Retention Valve;
    #                                   "mrv_residual": LayerNorm(write outputs + valve output);
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
    scan: str = "auto"  # recurrent models: "auto" (faster for the device), "parallel" (GRU/LSTM: packed runs between resets) or "sequential"


@dataclass
class TrainingConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # windows per optimizer step, over all processes and accumulation steps
    grad_accum: int = 1  # micro-batches accumulated per optimizer step
    lr: float = 1e-3  # peak learning rate of AdamW
    weight_decay: float = 0.01  # AdamW weight decay of weight matrices and kernels (never of norms, biases, embedding tables, positions, memory)
    betas: list = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # clip the global gradient norm (0 disables)
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (autocast through Accelerate)
    log_every: int = 20  # steps between log lines / TensorBoard points
    checkpoint_every: int = 250  # steps between checkpoints (the last step is always saved)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    eval_every: int = 0  # steps between evaluations in the environment during training (0: never)
    max_bad_steps: int = 0  # steps with a non-finite loss or gradient norm skipped before the run stops (0: stop at the first)
    collective_timeout_s: float = 300.0  # several processes: seconds a process waits for the others before the run stops
    trackers: list = field(default_factory=lambda: ["tensorboard"])  # Accelerate trackers: tensorboard, wandb, mlflow, aim ([]: none)
    checkpoint_segments: bool = False  # rmdt: recompute each segment's activations in backward (memory of one segment, ~1.5x time)
    compile: bool = False  # torch.compile the policy's loss (see README, Measured: where it wins)


@dataclass
class EvaluationConfig:
    env: str = "tmaze"  # environment to evaluate in: a name in rmdt.envs.registry.ENVS
    episodes: int = 100  # episodes per evaluated setting (e.g. per T-Maze corridor length)
    num_envs: int | None = None  # environments stepped at once (null: all episodes at once)
    seed: int = 12345  # evaluation seed (unseen by training)
    target_return: float | list | None = 1.0  # return-to-go at t=0 (before scaling): a number, a list of numbers
    #                   (each evaluated, reported side by side) or null: the env's default (Atari: the DT paper's)
    sample_actions: bool = False  # sample actions from the policy (seeded by `seed`) instead of the most likely
    periodic_episodes: int | None = None  # episodes per setting every training.eval_every steps (null: episodes)
    env_args: dict = field(default_factory=dict)  # the env's own settings: its `Settings` in
    #                   rmdt/envs/<env>/settings.py; a mapping in YAML, that typed dataclass once loaded

    def __post_init__(self) -> None:
        self.env_args = env_settings(self.env, self.env_args)
        targets = self.target_returns()
        if not targets or any(isinstance(t, bool) or not isinstance(t, (int, float, type(None))) for t in targets):
            raise ConfigError(f"evaluation.target_return must be a number, a non-empty list of numbers or null, "
                              f"got {self.target_return!r}")
        for key in ("episodes", "num_envs", "periodic_episodes"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"evaluation.{key} must be >= 1, got {getattr(self, key)}")

    def target_returns(self) -> list[float | None]:
        """``target_return`` as a list: each entry is one evaluation (None: the env's default)."""
        return list(self.target_return) if isinstance(self.target_return, list) else [self.target_return]


# Settings of the flat EvaluationConfig written before `env_args` (checkpoints and config.yaml files):
# old key -> (env it belonged to, its name in that env's Settings). Every old file holds all of them.
FLAT_EVALUATION_KEYS = {
    "corridor_lengths": ("tmaze", "corridor_lengths"), "periodic_lengths": ("tmaze", "periodic_lengths"),
    "game": ("atari", "game"), "sticky_actions": ("atari", "sticky_actions"), "max_steps": ("atari", "max_steps"),
    "maze_size": ("memory_maze", "maze_size"), "episode_steps": ("memory_maze", "max_steps"),
    "gif": ("memory_maze", "gif"),
}


def env_settings(env: str, values):
    """The typed ``Settings`` of ``env`` built from ``values`` (a mapping, or such a Settings itself);
    ConfigError naming the key on an unknown env, a typo, a setting of another env or a bad value."""
    from rmdt.envs.registry import ENVS

    if env not in ENVS:
        raise ConfigError(f"evaluation.env {env!r} is unknown{_suggest(env, ENVS, '')}")
    settings = ENVS.settings(env)
    if isinstance(values, settings):
        return values
    if dataclasses.is_dataclass(values):
        raise ConfigError(f"evaluation.env_args hold {type(values).__module__}.{type(values).__name__}, "
                          f"not the settings of env {env!r}")
    names = [f.name for f in dataclasses.fields(settings)]
    for key in values if isinstance(values, dict) and not set(values) <= set(names) else ():
        owners = [other for other in ENVS if other != env and key in _field_names(other)]
        if key not in names and owners:
            raise ConfigError(f"evaluation.env_args.{key} is a setting of env {owners[0]!r}, not of {env!r} "
                              f"(known for {env}: {', '.join(names)})")
    return _build(settings, values, "evaluation.env_args.")


def _field_names(env: str) -> list[str]:
    from rmdt.envs.registry import ENVS

    return [f.name for f in dataclasses.fields(ENVS.settings(env))]


def _suggest(key: str, known, prefix: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else f" (known: {', '.join(known)})"


def _upgrade_flat_evaluation(values):
    """A flat evaluation dict written before ``env_args`` (it holds every old key) in today's shape:
    the chosen env's settings move to ``env_args``, the other envs' (unused then too) are dropped."""
    if not isinstance(values, dict) or "env_args" in values or not set(FLAT_EVALUATION_KEYS) <= set(values):
        return values
    env = values.get("env", "tmaze")
    upgraded = {key: value for key, value in values.items() if key not in FLAT_EVALUATION_KEYS}
    upgraded["env_args"] = {new: values[old] for old, (owner, new) in FLAT_EVALUATION_KEYS.items() if owner == env}
    return upgraded


def _misplaced_evaluation_key(key: str) -> str | None:
    """The hint for ``evaluation.KEY`` when KEY is an env setting written outside ``env_args``."""
    from rmdt.envs.registry import ENVS

    owners = [env for env in ENVS if key in _field_names(env)]
    if key in FLAT_EVALUATION_KEYS and not owners:
        owners, key = [FLAT_EVALUATION_KEYS[key][0]], FLAT_EVALUATION_KEYS[key][1]
    if owners:
        return f" (env settings live in env_args: did you mean evaluation.env_args.{key}? env {', '.join(owners)})"
    return None


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
        raise ConfigError(f"{key} must be {getattr(expected, '__name__', expected)}, got {value!r}", key)
    return value


def _build(cls, values: dict, prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}", prefix.rstrip("."))
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            hint = cls is EvaluationConfig and _misplaced_evaluation_key(key) or _suggest(key, names, prefix)
            raise ConfigError(f"unknown config key {prefix}{key}{hint}", prefix + key)
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


def _nest_evaluation(values: dict) -> dict:
    """Flat evaluation settings in today's shape: a key that ``EvaluationConfig`` has stays, ``env_args``
    (a mapping) and ``env_args.KEY`` go to ``env_args``, and any other KEY is a setting of the env."""
    common = {f.name for f in dataclasses.fields(EvaluationConfig)} - {"env_args"}
    nested: dict = {"env_args": {}}
    for key, value in values.items():
        if key == "env_args":
            if not isinstance(value, dict) and not dataclasses.is_dataclass(value):
                raise ConfigError(f"evaluation.env_args must be a mapping, got {value!r}")
            nested["env_args"].update(value if isinstance(value, dict) else dataclasses.asdict(value))
        elif key in common:
            nested[key] = value
        else:
            nested["env_args"][key.removeprefix("env_args.")] = value
    return nested


def evaluation_overrides(texts: typing.Sequence[str]) -> dict:
    """``["episodes=10", "corridor_lengths=[9, 30]"]`` -> ``{"episodes": 10, "env_args": {"corridor_lengths":
    [9, 30]}}``, for changing a checkpoint's evaluation settings (see ``_nest_evaluation`` for the rule).

    Names that no env knows fail here with a did-you-mean; `override_evaluation` checks the rest
    against the checkpoint's env.
    """
    from rmdt.envs.registry import ENVS

    values: dict = {}
    for text in texts:
        if "=" not in text:
            raise ConfigError(f"evaluation setting {text!r} must look like key=value")
        key, raw = text.split("=", 1)
        values[key.strip()] = yaml.safe_load(raw) if raw else None
    nested = _nest_evaluation(values)
    common = [f.name for f in dataclasses.fields(EvaluationConfig) if f.name != "env_args"]
    known = common + sorted({name for env in ENVS for name in _field_names(env)} - set(common))
    for key in nested["env_args"]:
        if key not in known:
            raise ConfigError(f"unknown evaluation setting {key}{_suggest(key, known, '')}")
    return nested


def evaluation_config(values: dict) -> EvaluationConfig:
    """An EvaluationConfig from its dict: today's shape, env settings also given flat (the rule of
    ``_nest_evaluation``), or the flat dict of checkpoints written before ``env_args`` existed
    (converted: the chosen env's settings kept, the other envs' dropped)."""
    return _build(EvaluationConfig, _nest_evaluation(_upgrade_flat_evaluation(values)), "evaluation.")


def override_evaluation(evaluation: EvaluationConfig, overrides: dict) -> EvaluationConfig:
    """``evaluation`` with ``overrides`` (flat or nested, see ``_nest_evaluation``) applied and checked;
    a new ``env`` starts from that env's default settings."""
    overrides = _nest_evaluation(overrides)
    values = dataclasses.asdict(evaluation)
    if overrides.get("env", evaluation.env) != evaluation.env:
        values["env_args"] = {}
    values.update({key: value for key, value in overrides.items() if key != "env_args"})
    values["env_args"].update(overrides["env_args"])
    return evaluation_config(values)


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file, then ``key=value`` overrides, checked against the dataclasses and
    for usable values. An error names the key and where it was set: the file or the override."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if isinstance(values, dict) and "evaluation" in values:  # a config.yaml written before env_args
        values["evaluation"] = _upgrade_flat_evaluation(values["evaluation"])
    parsed = []
    for text in overrides:
        try:
            parsed.append((text, parse_override(text)))
        except yaml.YAMLError as error:
            raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from None
        values = _merge(values, parsed[-1][1])
    try:
        config = _build(Config, values, "")
        validate(config)
    except ConfigError as error:
        raise ConfigError(f"{_origin(error.keys, parsed, path)}{error}", *error.keys) from None
    return config


def _origin(keys: tuple[str, ...], overrides: list[tuple[str, dict]], path: Path | None) -> str:
    """``"override training.steps=abc: "`` when the last override touching ``keys`` set them, else the file."""
    def leaves(tree: dict, prefix: str = ""):
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    for text, tree in reversed(overrides):
        if any(key == leaf or key.startswith(leaf + ".") or leaf.startswith(key + ".")
               for leaf in leaves(tree) for key in keys):
            return f"override {text}: "
    return f"{path}: " if path is not None else ""


def validate(config: Config) -> None:
    """Checks values that are well typed but unusable, before any data is loaded or folder made."""
    d, m, t = config.data, config.model, config.training
    world = int(os.environ.get("WORLD_SIZE", "1"))  # processes under `accelerate launch` / torchrun
    checks = [
        (d.recipe is not None or d.dataset is not None, ("data.recipe", "data.dataset"),
         "data.recipe or data.dataset must be set"),
        (d.context_len >= 1, ("data.context_len",), f"data.context_len (K) must be >= 1, got {d.context_len}"),
        (d.num_segments >= 1, ("data.num_segments",), f"data.num_segments (N) must be >= 1, got {d.num_segments}"),
        (d.window_starts in ("episode", "uniform"), ("data.window_starts",),
         f"data.window_starts must be 'episode' or 'uniform', got {d.window_starts!r}"),
        (0 < d.discount <= 1, ("data.discount",), f"data.discount must be in (0, 1], got {d.discount}"),
        (d.return_scale > 0, ("data.return_scale",), f"data.return_scale must be > 0, got {d.return_scale}"),
        (d.num_actions is None or d.num_actions >= 1, ("data.num_actions",),
         f"data.num_actions must be null or >= 1, got {d.num_actions}"),
        (m.memory_tokens >= 0, ("model.memory_tokens",), f"model.memory_tokens must be >= 0, got {m.memory_tokens}"),
        (m.kind in MODEL_KINDS, ("model.kind",), f"model.kind must be one of {', '.join(MODEL_KINDS)}, got {m.kind!r}"),
        (d.batching in ("segments", "tape"), ("data.batching",),
         f"data.batching must be 'segments' or 'tape', got {d.batching!r}"),
        (d.batching == "segments" or m.kind != "rmdt", ("data.batching", "model.kind"),
         f"data.batching 'tape' needs a recurrent model.kind ({', '.join(RECURRENT_KINDS)}), not rmdt"),
        (d.tape_len >= 1, ("data.tape_len",), f"data.tape_len must be >= 1, got {d.tape_len}"),
        (d.prefetch >= 0, ("data.prefetch",), f"data.prefetch must be >= 0 (0: no prefetch), got {d.prefetch}"),
        (t.steps >= 1, ("training.steps",), f"training.steps must be >= 1, got {t.steps}"),
        (t.batch_size >= 1, ("training.batch_size",), f"training.batch_size must be >= 1, got {t.batch_size}"),
        (t.grad_accum >= 1, ("training.grad_accum",), f"training.grad_accum must be >= 1, got {t.grad_accum}"),
        (t.batch_size % (world * max(t.grad_accum, 1)) == 0, ("training.batch_size", "training.grad_accum"),
         f"training.batch_size={t.batch_size} must be divisible by processes ({world}) x training.grad_accum "
         f"({t.grad_accum})"),
        (t.lr > 0, ("training.lr",), f"training.lr must be > 0, got {t.lr}"),
        (t.weight_decay >= 0, ("training.weight_decay",), f"training.weight_decay must be >= 0, got {t.weight_decay}"),
        (len(t.betas) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in t.betas), ("training.betas",),
         f"training.betas must be two numbers in [0, 1), got {t.betas}"),
        (t.warmup_steps >= 0, ("training.warmup_steps",), f"training.warmup_steps must be >= 0, got {t.warmup_steps}"),
        (0 <= t.min_lr_ratio <= 1, ("training.min_lr_ratio",),
         f"training.min_lr_ratio must be in [0, 1], got {t.min_lr_ratio}"),
        (t.grad_clip >= 0, ("training.grad_clip",), f"training.grad_clip must be >= 0 (0 disables), got {t.grad_clip}"),
        (t.mixed_precision in ("no", "bf16", "fp16"), ("training.mixed_precision",),
         f"training.mixed_precision must be no, bf16 or fp16, got {t.mixed_precision!r}"),
        (t.log_every >= 1, ("training.log_every",), f"training.log_every must be >= 1, got {t.log_every}"),
        (t.checkpoint_every >= 1, ("training.checkpoint_every",),
         f"training.checkpoint_every must be >= 1, got {t.checkpoint_every}"),
        (t.keep_checkpoints >= 0, ("training.keep_checkpoints",),
         f"training.keep_checkpoints must be >= 0 (0 keeps all), got {t.keep_checkpoints}"),
        (t.eval_every >= 0, ("training.eval_every",), f"training.eval_every must be >= 0 (0: never), got {t.eval_every}"),
        (not t.checkpoint_segments or m.kind == "rmdt", ("training.checkpoint_segments",),
         f"training.checkpoint_segments needs model.kind rmdt (segments), got {m.kind!r}"),
    ]
    for ok, keys, message in checks:
        if not ok:
            raise ConfigError(message, *keys)
    if d.recipe is not None:
        _check_recipe(d.recipe, d.recipe_args)
    if d.num_segments_schedule is not None:
        from rmdt.data.curriculum import parse_schedule

        try:
            parse_schedule(d.num_segments_schedule, d.num_segments)
        except ValueError as error:
            raise ConfigError(str(error), "data.num_segments_schedule") from None
    _check_model(config)
    validate_run_settings(t)


def _check_recipe(name: str, arguments: dict) -> None:
    """The recipe exists and its ``build`` takes these arguments (before it runs for an hour)."""
    import inspect

    from rmdt.envs.registry import ENVS

    try:
        build = ENVS.recipe(name).build
    except ValueError as error:
        raise ConfigError(f"data.recipe: {error}", "data.recipe") from None
    parameters = [p for p in inspect.signature(build).parameters if p != "root"]
    for key in arguments:
        if key not in parameters:
            close = difflib.get_close_matches(key, parameters, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(parameters)})"
            raise ConfigError(f"data.recipe_args: recipe {name} has no argument {key!r}{hint}", "data.recipe_args")


def _check_model(config: Config) -> None:
    """Runs the model config's own field checks (encoder and memory-update names, d_model divisible by
    n_heads, ...) on placeholder data shapes, naming the run-config key of a bad field."""
    from rmdt.models.embeddings import OBS_ENCODERS
    from rmdt.models.factory import policy_config
    from rmdt.models.memoroid import SCANS
    from rmdt.models.policy_config import FieldError
    from rmdt.models.rmdt import MEMORY_UPDATES, POSITION_EMBEDDINGS

    try:
        policy_config(config, obs_shape=[1], num_actions=2)
    except FieldError as error:
        key = {"context_len": "data.context_len", "return_scale": "data.return_scale", "layer": "model.kind"}.get(
            error.field, f"model.{error.field}")
        names = {"obs_encoder": OBS_ENCODERS, "memory_update": MEMORY_UPDATES,
                 "position_embedding": POSITION_EMBEDDINGS, "scan": SCANS}.get(error.field, ())
        close = difflib.get_close_matches(str(error.value), list(names), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        also = ("model.n_heads",) if error.field == "d_model" else ()
        raise ConfigError(f"{key} must be {error.what}, got {error.value!r}{hint}", key, *also) from None


TRACKERS = ("tensorboard", "wandb", "mlflow", "aim")


def validate_run_settings(t: TrainingConfig) -> None:
    """The trainer's fault and tracking settings (rmdt.training.guard, rmdt.training.logs)."""
    if t.max_bad_steps < 0:
        raise ConfigError(f"training.max_bad_steps must be >= 0, got {t.max_bad_steps}", "training.max_bad_steps")
    if not t.collective_timeout_s > 0:
        raise ConfigError(f"training.collective_timeout_s must be > 0, got {t.collective_timeout_s}",
                          "training.collective_timeout_s")
    for name in t.trackers:
        if name not in TRACKERS:
            close = difflib.get_close_matches(str(name), TRACKERS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"training.trackers: unknown tracker {name!r}{hint} (known: {', '.join(TRACKERS)})",
                              "training.trackers")
