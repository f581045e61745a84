"""The environment registry: every registered env keeps the evaluator and recipe contracts, names resolve
(with did-you-mean errors), packages load lazily, and the recipes' command lines run as scripts."""
import dataclasses
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from rmdt.envs.protocol import Evaluator, Recipe
from rmdt.envs.registry import ENVS, GYMNASIUM_IDS, UnknownEnv, register_env
from rmdt.suggest import did_you_mean

ROOT = Path(__file__).resolve().parents[1]
CONFIG_NAMES = {"recipe": ("tmaze", "atari", "memory_maze", "popgym", "minigrid", "double_pendulum", "d4rl_mujoco"),
                "env": ("tmaze", "atari", "memory_maze", "gymnasium")}  # values in configs and checkpoints


def _parameters(function) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("name", list(ENVS))
def test_every_evaluator_keeps_the_protocol_with_its_signatures(name):
    evaluator = ENVS.evaluator(name)
    assert isinstance(evaluator, Evaluator)
    assert dataclasses.is_dataclass(evaluator.Settings) and evaluator.Settings is ENVS.settings(name)
    for hook in ("evaluate", "plot", "describe", "scalars", "default_target", "settings_from_data"):
        assert _parameters(getattr(evaluator, hook)) == _parameters(getattr(Evaluator, hook)), (name, hook)


@pytest.mark.parametrize("name", ENVS.recipe_names())
def test_every_recipe_keeps_the_protocol(name):
    recipe = ENVS.recipe(name)
    assert isinstance(recipe, Recipe)
    root = inspect.signature(recipe.build).parameters["root"]
    assert root.default is None and root.kind in (root.POSITIONAL_OR_KEYWORD, root.KEYWORD_ONLY)
    assert _parameters(recipe.main) == _parameters(Recipe.main)


def test_the_names_configs_use_resolve():
    assert set(CONFIG_NAMES["recipe"]) == set(ENVS.recipe_names())  # oracle_play and helpers are no recipes
    for name in CONFIG_NAMES["env"]:
        assert ENVS.evaluator(name).__name__ == f"rmdt.envs.{name}.evaluator"
    for name in ("popgym", "minigrid", "double_pendulum", "d4rl_mujoco"):  # their packages name the gymnasium evaluator
        assert ENVS.evaluator(name) is ENVS.evaluator("gymnasium")


def test_unknown_names_fail_with_the_closest_name():
    with pytest.raises(UnknownEnv, match=r"unknown environment 'tmze' \(did you mean tmaze\?\)"):
        ENVS.evaluator("tmze")
    with pytest.raises(UnknownEnv, match=r"unknown dataset recipe 'popgm' \(did you mean popgym\?\)"):
        ENVS.recipe("popgm")
    with pytest.raises(UnknownEnv, match=r"environment 'gymnasium' has no dataset recipe \(known: tmaze, atari"):
        ENVS.recipe("gymnasium")
    assert did_you_mean("lenght", ["length", "width"]) == " (did you mean length?)"
    assert did_you_mean("zzz", ["a", "b"]) == " (known: a, b)"


def test_a_name_is_registered_once_unless_replaced(monkeypatch):
    monkeypatch.setattr(ENVS, "entries", dict(ENVS.entries))
    register_env("tmaze", "rmdt.envs.tmaze")  # the same again: nothing to do
    with pytest.raises(ValueError, match="already registered as 'rmdt.envs.tmaze'"):
        register_env("tmaze", "my.tmaze")
    register_env("tmaze", "rmdt.envs.atari", replace=True)
    assert ENVS.settings("tmaze") is ENVS.settings("atari")


def test_an_env_of_one_module_outside_rmdt_registers_and_resolves(monkeypatch, tmp_path):
    (tmp_path / "toy_env.py").write_text(
        "from dataclasses import dataclass\n\n@dataclass\nclass Settings:\n    size: int = 3  # cells\n\n"
        "def evaluate(policy, evaluation, settings, target_return, device='cpu', progress=True, periodic=False):\n"
        "    return [{'size': settings.size}]\n\n"
        "def build(size=3, root=None):\n    return f'toy-{size}'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ENVS, "entries", dict(ENVS.entries))
    register_env("toy", "toy_env")
    assert ENVS.settings("toy")().size == 3 and ENVS.recipe("toy").build(5) == "toy-5" and "toy" in ENVS.recipe_names()
    from rmdt.config import evaluation_config

    assert evaluation_config({"env": "toy", "env_args": {"size": 4}}).env_args.size == 4


def test_rmdts_gymnasium_ids_are_registered_and_old_entry_points_still_load():
    import rmdt  # noqa: F401  (registers them)

    for env_id, spec in GYMNASIUM_IDS.items():
        assert gym.spec(env_id).entry_point == spec["entry_point"]
    env = gym.make("rmdt/TMaze-v0", corridor_length=3)
    assert env.unwrapped.corridor_length == 3
    env.close()
    from rmdt.envs.memory_maze.settings import NATIVE_STEPS
    from rmdt.envs.tmaze.env import TMazeEnv

    assert {f"rmdt/MemoryMaze-{n}x{n}-v0" for n in NATIVE_STEPS} <= set(GYMNASIUM_IDS)
    # datasets written before the packages recorded the entry point module:attribute of the old modules
    assert gym.envs.registration.load_env_creator("rmdt.envs.tmaze:TMazeEnv") is TMazeEnv
    assert gym.envs.registration.load_env_creator("rmdt.envs.memory_maze:MemoryMazeEnv").__name__ == "MemoryMazeEnv"


def test_env_settings_build_without_torch_or_an_envs_packages():
    code = ("import sys\nfrom rmdt.envs.registry import ENVS\n"
            "ENVS.settings('memory_maze')(max_steps=8)\n"
            "[ENVS.settings(name)() for name in ENVS]\n"  # Atari's checks its game name with ale_py (if installed)
            "heavy = {'torch', 'transformers', 'popgym', 'minigrid', 'mujoco', 'dm_control'}\n"
            "print(sorted(heavy & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("script, args, package", [
    ("popgym", ["--task", "RepeatFirstEasy", "--episodes", "3"], "popgym"),
    ("minigrid", ["--env-id", "MiniGrid-MemoryS9-v0", "--episodes", "2"], "minigrid"),
])
def test_a_recipe_script_named_like_its_suite_still_finds_the_suite(tmp_path, script, args, package):
    """``python datasets/popgym.py`` puts datasets/ first on sys.path, where popgym.py is not the package."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    out = subprocess.run([sys.executable, str(ROOT / "datasets" / f"{script}.py"), *args, "--root", str(tmp_path)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dataset rmdt/" in out.stdout and "episodes" in out.stdout
