"""A sweep file names tasks x models x seeds (x a grid of overrides) as data; ``load_sweep`` checks it
and expands it into runs, each a task's run config composed with a model preset, a seed and overrides.

A sweep file is not a run config: it names run configs (``<config_dir>/<task>.yaml``) and presets
(``rmdt.presets``). Every run's config is loaded here, before anything trains, so a mistake anywhere
in the file fails at once with the file and the key at fault.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from rmdt.errors import ConfigError
from rmdt.presets import PRESETS
from rmdt.suggest import did_you_mean
from rmdt.typed import read_yaml

# The keys of a sweep file, each with what it holds (the error messages quote these).
KEYS = {
    "tasks": "a list of task names: configs/<task>.yaml (config_dir/<task>.yaml), e.g. popgym/repeat_first_easy",
    "models": "a list of model presets (rmdt.presets), each composed as model=NAME",
    "seeds": "a list of integer training seeds",
    "grid": "a mapping of dotted config keys to lists of values: every combination is a run",
    "overrides": "a list of KEY=VALUE overrides every run gets, as on train.py's command line",
    "recipe_args": "a mapping merged key by key into each task's data.recipe_args (e.g. {episodes: 40})",
    "config_dir": "the folder of the task configs, relative to the sweep file (default: its parent folder's parent)",
}
REQUIRED = ("tasks", "models", "seeds")


@dataclass(frozen=True)
class Run:
    """One (task, model, seed, grid point) of a sweep: what to train and where."""
    task: str  # the task config's name, e.g. popgym/repeat_first_easy
    model: str  # the model preset
    seed: int
    grid: dict  # dotted key -> value (as written in an override) of this run's grid point; {} without a grid
    config: str  # the task's run config, an absolute path
    overrides: tuple  # load_config overrides: model=, seed=, the sweep's overrides, recipe_args, the grid point
    name: str  # the run folder's name under <out>/runs

    @property
    def key(self) -> tuple:
        """What identifies the run in results.json (merged rows too)."""
        return run_key(self.task, self.model, self.seed, self.grid)


def run_key(task: str, model: str, seed: int, grid: dict | None) -> tuple:
    return task, model, seed, tuple(sorted((grid or {}).items()))


@dataclass(frozen=True)
class Sweep:
    path: Path  # the sweep file
    runs: list  # Run, in the order tasks x models x grid points x seeds

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(run.task for run in self.runs))


def value_text(value) -> str:
    """A YAML value as an override writes it (``training.lr=0.001``, ``x=[1, 2]``, ``x=null``)."""
    return value if isinstance(value, str) else json.dumps(value)


def run_name(task: str, model: str, seed: int, grid: dict) -> str:
    """``popgym_repeat_first_easy_gru__0``; a grid point goes between: ``..._gru__training.lr=0.001__0``."""
    point = ",".join(f"{key}={value}" for key, value in grid.items())
    name = f"{task.replace('/', '_')}_{model}" + (f"__{point}" if point else "") + f"__{seed}"
    return re.sub(r"[^\w.,=+-]", "-", name)


def _fail(path: Path, message: str, key: str) -> ConfigError:
    return ConfigError(f"{path}: {message}", key)


def _nonempty_list(path: Path, values: dict, key: str) -> list:
    value = values.get(key)
    if value is None:
        raise _fail(path, f"{key} is missing ({KEYS[key]})", key)
    if not isinstance(value, list):
        raise _fail(path, f"{key} must be {KEYS[key]}, got {value!r}", key)
    if not value:
        raise _fail(path, f"{key} is empty: name at least one ({KEYS[key]})", key)
    repeated = [item for i, item in enumerate(value) if item in value[:i]]
    if repeated:
        raise _fail(path, f"{key}: {repeated[0]!r} is listed twice", key)
    return value


def known_tasks(config_dir: Path) -> list[str]:
    """Every run config below ``config_dir`` by task name (sweep files left out)."""
    return sorted(p.relative_to(config_dir).with_suffix("").as_posix() for p in config_dir.rglob("*.yaml")
                  if "sweeps" not in p.relative_to(config_dir).parts)


def _tasks(path: Path, values: dict, config_dir: Path) -> dict[str, Path]:
    found = {}
    for task in _nonempty_list(path, values, "tasks"):
        file = config_dir / f"{task}.yaml" if isinstance(task, str) else None
        if file is None or not file.is_file():
            raise _fail(path, f"tasks: no run config {file or config_dir} for task {task!r}"
                        f"{did_you_mean(task, known_tasks(config_dir))}", "tasks")
        found[task] = file.resolve()
    return found


def _models(path: Path, values: dict) -> list[str]:
    models = _nonempty_list(path, values, "models")
    for model in models:
        if not isinstance(model, str) or model not in PRESETS:
            raise _fail(path, f"models: unknown model preset {model!r}{did_you_mean(model, PRESETS)}", "models")
    return models


def _seeds(path: Path, values: dict) -> list[int]:
    seeds = _nonempty_list(path, values, "seeds")
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise _fail(path, f"seeds: {seed!r} is not an integer", "seeds")
    return seeds


def _grid(path: Path, values: dict) -> list[dict]:
    """The grid's points: every combination of its values, the first key slowest."""
    grid = values.get("grid") or {}
    if not isinstance(grid, dict):
        raise _fail(path, f"grid must be {KEYS['grid']}, got {grid!r}", "grid")
    for key, options in grid.items():
        if key in ("model", "seed"):
            raise _fail(path, f"grid.{key}: list {key}s under {key}s, not in the grid", f"grid.{key}")
        if not isinstance(key, str) or "." not in key:
            raise _fail(path, f"grid: {key!r} is not a dotted config key (section.key, e.g. training.lr)", "grid")
        if not isinstance(options, list) or not options:
            raise _fail(path, f"grid.{key} must be a non-empty list of values, got {options!r}", f"grid.{key}")
    texts = [[value_text(v) for v in options] for options in grid.values()]
    return [dict(zip(grid, point)) for point in itertools.product(*texts)]


def _overrides(path: Path, values: dict) -> list[str]:
    overrides = values.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise _fail(path, f"overrides must be {KEYS['overrides']}, got {overrides!r}", "overrides")
    return overrides


def _recipe_args(path: Path, values: dict) -> dict:
    args = values.get("recipe_args") or {}
    if not isinstance(args, dict):
        raise _fail(path, f"recipe_args must be {KEYS['recipe_args']}, got {args!r}", "recipe_args")
    return args


def read_sweep_file(path: str | Path) -> dict:
    """The sweep file's mapping, its keys checked."""
    path = Path(path)
    values = read_yaml(path, "sweep file")
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with the keys {', '.join(KEYS)}; got {values!r}")
    for key in values:
        if key not in KEYS:
            raise _fail(path, f"unknown sweep key {key!r}{did_you_mean(key, KEYS)}", str(key))
    return values


def load_sweep(path: str | Path, tasks: list | None = None, models: list | None = None,
               seeds: list | None = None) -> Sweep:
    """The sweep file's runs; ``tasks``, ``models`` and ``seeds`` replace the file's lists when given
    (checked the same way). Loads every run's config, so any bad key or value fails here."""
    from rmdt.config import load_config

    path = Path(path)
    values = read_sweep_file(path)
    values.update({k: v for k, v in (("tasks", tasks), ("models", models), ("seeds", seeds)) if v is not None})
    config_dir = (path.parent / values.get("config_dir", "..")).resolve()
    task_files, model_list, seed_list = _tasks(path, values, config_dir), _models(path, values), _seeds(path, values)
    points, overrides, recipe_args = _grid(path, values), _overrides(path, values), _recipe_args(path, values)
    runs = []
    for (task, file), model in itertools.product(task_files.items(), model_list):
        common = [f"model={model}", *overrides]
        try:
            if recipe_args:
                merged = {**load_config(file, common).data.recipe_args, **recipe_args}
                common.append(f"data.recipe_args={json.dumps(merged)}")
            for point in points:
                grid = [f"{key}={value}" for key, value in point.items()]
                load_config(file, common + grid)
                runs += [Run(task, model, seed, point, str(file), (common[0], f"seed={seed}", *common[1:], *grid),
                             run_name(task, model, seed, point)) for seed in seed_list]
        except ConfigError as error:
            raise ConfigError(f"{path}: task {task} with model={model}: {error}", *error.keys) from None
    return Sweep(path, runs)
