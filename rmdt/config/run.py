"""The run config: data, model, training and evaluation sections from a YAML file under ``configs/``,
composed with a model preset, and dotted command-line overrides such as ``training.steps=2000`` or
``model=ffm``. The model section belongs to its kind (rmdt.models.registry), the evaluation's
``env_args`` to its environment (rmdt.envs): this module names neither.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rmdt.atomic import write_text
from rmdt.config import upgrade
from rmdt.config.evaluation import EvaluationConfig
from rmdt.errors import ConfigError
from rmdt.models.registry import MODELS, check_model_section, model_section, run_facts
from rmdt.presets import ATOMIC_KEYS, PRESETS
from rmdt.suggest import did_you_mean
from rmdt.typed import build, merge, parse_override, read_yaml


@dataclass
class DataConfig:
    recipe: str | None = None  # build the dataset with this environment's recipe (rmdt.envs; reused if on disk)
    #                            null: use `dataset`
    recipe_args: dict = field(default_factory=dict)  # keyword arguments of that recipe's build()
    dataset: str | None = None  # Minari dataset id or directory, D4RL-layout .hdf5 file, or frame store (Atari)
    root: str | None = None  # Minari datasets directory (default: read $MINARI_DATASETS_PATH then
    #                          ~/.minari/datasets, build into the first)
    num_actions: int | None = None  # discrete action count for D4RL files with integer actions
    context_len: int = 30  # K: steps per segment (the transformer's context)
    num_segments: int = 3  # N: segments per training window; windows are N*K steps
    num_segments_schedule: list | str | None = None  # curriculum: [[step, N], ...] from step 0, or "linear A->B
    #                      over S"; step s trains on the first N(s) segments of its windows (null: always N)
    window_starts: str = "episode"  # "episode": windows begin at episode starts; "uniform": at any step
    discount: float = 1.0  # discount of the return-to-go
    return_scale: float = 1.0  # return-to-go is divided by this before it enters the model
    batching: str = "segments"  # "segments": padded windows of N*K steps; "tape": whole episodes end to end
    #                             (recurrent models)
    tape_len: int = 180  # steps per tape (batch row) when batching is "tape"
    prefetch: int = 2  # threads building the batches of the next steps during the current one (0: none)


@dataclass
class TrainingConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # windows per optimizer step, over all processes and accumulation steps
    grad_accum: int = 1  # micro-batches accumulated per optimizer step
    lr: float = 1e-3  # peak learning rate of AdamW
    weight_decay: float = 0.01  # AdamW weight decay of weight matrices and kernels (never of norms, biases,
    #                             embedding tables, positions, memory)
    betas: list = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0  # clip the global gradient norm (0 disables)
    mixed_precision: str = "no"  # "no", "bf16" or "fp16" (autocast through Accelerate)
    log_every: int = 20  # steps between log lines / TensorBoard points
    checkpoint_every: int = 250  # steps between checkpoints (the last step is always saved)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    eval_every: int = 0  # steps between evaluations in the environment during training (0: never)
    max_bad_steps: int = 0  # steps with a non-finite loss or gradient norm skipped before the run stops
    #                         (0: stop at the first)
    collective_timeout_s: float = 300.0  # several processes: seconds one waits for the others before the run stops
    trackers: list = field(default_factory=lambda: ["tensorboard"])  # Accelerate trackers: tensorboard, wandb,
    #                                                                  mlflow, aim ([]: none)
    checkpoint_segments: bool = False  # segment models: recompute each segment's activations in backward
    #                                    (the memory of one segment, for about 1.5x the time)
    compile: bool | str = False  # true: torch.compile the policy's loss; "cuda_graphs": also capture its
    #                              forward and backward as CUDA graphs (CUDA only; docs/performance.md)


COMPILE_MODES = (False, True, "cuda_graphs")  # training.compile: off, torch.compile, torch.compile + CUDA graphs


@dataclass
class Config:
    name: str = "run"  # run name prefix: runs/{name}__{seed}__{time}; "{model}" is replaced by the preset's name
    seed: int = 0  # seed of model initialisation and of the window sampler
    data: DataConfig = field(default_factory=DataConfig)
    model: typing.Any = None  # {kind: ..., <that kind's fields>} (rmdt.models.registry), or a preset name
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def _with_preset_section(values: dict) -> dict:
    """``model: NAME`` (a file's or ``model=NAME`` on the command line) as ``model: {preset: NAME}``."""
    return {**values, "model": {"preset": values["model"]}} if isinstance(values.get("model"), str) else values


def compose(values: dict) -> dict:
    """A run config mapping with its model preset applied underneath it (the preset's values first,
    the file and the command line over them), ``{model}`` in the name filled, ``preset`` dropped."""
    model = values.get("model")
    name = model.get("preset") if isinstance(model, dict) else None
    if name is None:
        return values
    if name not in PRESETS:
        raise ConfigError(f"model preset {name!r} is unknown{did_you_mean(name, PRESETS)}", "model")
    own = {**values, "model": {k: v for k, v in model.items() if k != "preset"}}
    composed = PRESETS[name].apply(own, dataclasses.asdict(DataConfig()))
    if isinstance(composed.get("name"), str):
        composed["name"] = composed["name"].replace("{model}", name)
    return composed


def _apply_override(values: dict, tree: dict) -> dict:
    """``values`` with the override ``tree`` merged in. ``model=NAME`` picks a preset; an override that
    changes the model (a preset or ``model.kind``) keeps only the fields of the file's model section that
    the new kind has (sizes, the encoder), and one that changes ``evaluation.env`` drops the file's
    ``env_args``: the file wrote those for its own model and environment."""
    tree = _with_preset_section(tree)
    change = tree.get("model") if isinstance(tree.get("model"), dict) else {}
    kind = change.get("kind")
    if kind is None and change.get("preset") in PRESETS:
        kind = PRESETS[change["preset"]].values["model"]["kind"]
    if kind in MODELS and isinstance(values.get("model"), dict):
        keep = {"preset", *MODELS[kind].fields} - ({"preset"} if "kind" in change else set())
        values = {**values, "model": {k: v for k, v in values["model"].items() if k in keep}}
    evaluation = values.get("evaluation")
    new_env = tree["evaluation"].get("env") if isinstance(tree.get("evaluation"), dict) else None
    if new_env is not None and isinstance(evaluation, dict) and evaluation.get("env") != new_env:
        values = {**values, "evaluation": {k: v for k, v in evaluation.items() if k != "env_args"}}
    return merge(values, tree, atomic=ATOMIC_KEYS)


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """The YAML file, then ``key=value`` overrides, composed with the model preset they name, over the
    dataclass defaults, checked for usable values. An error names the key and where it was set: the file
    or the override."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        values = read_yaml(path)
    parsed = []
    for text in overrides:
        try:
            parsed.append((text, parse_override(text)))
        except yaml.YAMLError as error:
            raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from None
    try:
        values = upgrade.upgrade_run_config(values, lambda kind: MODELS[kind].fields if kind in MODELS else ())
        values = _with_preset_section(values) if isinstance(values, dict) else values
        for _, tree in parsed:
            values = _apply_override(values, tree)
        config = _build_config(compose(values))
        validate(config)
    except ConfigError as error:
        raise ConfigError(f"{_origin(error.keys, parsed, path)}{error}", *error.keys) from None
    return config


def _build_config(values) -> Config:
    if not isinstance(values, dict):
        raise ConfigError(f"config must be a mapping, got {values!r}")
    rest = build(Config, {k: v for k, v in values.items() if k not in ("model", "evaluation")}, "")
    return dataclasses.replace(rest, model=model_section(values.get("model")),
                               evaluation=build(EvaluationConfig, values.get("evaluation") or {}, "evaluation."))


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
    model = MODELS[m.kind].model_class
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
        (d.batching in ("segments", "tape"), ("data.batching",),
         f"data.batching must be 'segments' or 'tape', got {d.batching!r}"),
        (d.batching not in ("segments", "tape") or d.batching in model.batchings, ("data.batching", "model.kind"),
         f"data.batching {d.batching!r} needs a model kind that trains on it "
         f"({', '.join(k for k, e in MODELS.items() if d.batching in e.model_class.batchings)}), not {m.kind!r}"),
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
        (t.eval_every >= 0, ("training.eval_every",),
         f"training.eval_every must be >= 0 (0: never), got {t.eval_every}"),
        (t.compile in COMPILE_MODES, ("training.compile",),
         f"training.compile must be one of {', '.join(map(str, COMPILE_MODES))}, got {t.compile!r}"),
        (not t.checkpoint_segments or model.checkpointable_segments, ("training.checkpoint_segments",),
         f"training.checkpoint_segments needs a model kind that recomputes segments "
         f"({', '.join(k for k, e in MODELS.items() if e.model_class.checkpointable_segments)}), got {m.kind!r}"),
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
    check_model_section(config.model, run_facts(d))
    validate_run_settings(t)


def _check_recipe(name: str, arguments: dict) -> None:
    """The recipe exists and its ``build`` takes these arguments (before it runs for an hour)."""
    import inspect

    from rmdt.envs.registry import load_recipe

    try:
        recipe = load_recipe(name)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"data.recipe: {error}", "data.recipe") from None
    parameters = [p for p in inspect.signature(recipe.build).parameters if p != "root"]
    for key in arguments:
        if key not in parameters:
            raise ConfigError(f"data.recipe_args: recipe {name} has no argument {key!r}{did_you_mean(key, parameters)}",
                              "data.recipe_args")


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
            hint = did_you_mean(name, TRACKERS, list_known=False)
            raise ConfigError(f"training.trackers: unknown tracker {name!r}{hint} (known: {', '.join(TRACKERS)})",
                              "training.trackers")
