"""Fixtures the test modules share: a tiny T-Maze dataset and run, a tiny policy factory, a script loader.

Plain helpers that are not fixtures live beside it (training_helpers.py, clue_task.py); no test module
imports another."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from rmdt.envs.registry import ENVS

ROOT = Path(__file__).resolve().parents[1]
# What every tiny policy starts from (the fields its kind has); initializer_range 0.2: effects well above rounding.
TINY_POLICY = dict(obs_shape=[4], num_actions=4, context_len=3, d_model=16, n_layers=1, n_heads=2,
                   initializer_range=0.2, memory_tokens=2, memory_size=4, context_size=2)


class TinyPolicies:
    """The tiny-policy factory. ``make(kind=None, seed=0, **fields)`` builds one in eval mode with its
    weights drawn from ``seed``, of any kind of the model registry (rmdt: RMDT / DT; ffm, lru, ...: the
    recurrent policy of that memory layer). ``fields`` are config fields over the defaults;
    an ``act_dim`` makes the actions continuous (unless ``num_actions`` is given too).
    ``with_defaults(kind, **fields)`` is a factory with a test module's own kind and fields."""

    def __init__(self, kind: str = "rmdt", **defaults) -> None:
        self.kind, self.defaults = kind, defaults

    def with_defaults(self, kind: str | None = None, **defaults) -> "TinyPolicies":
        return TinyPolicies(kind or self.kind, **{**self.defaults, **defaults})

    def __call__(self, kind: str | None = None, seed: int = 0, **fields):
        from rmdt.models.registry import MODELS, config_fields

        entry = MODELS[kind or self.kind]
        declared = config_fields(entry.config_class)
        args = {key: value for key, value in TINY_POLICY.items() if key in declared}
        args.update(entry.implied)
        args.update(self.defaults)
        if fields.get("act_dim") is not None:
            args["num_actions"] = None
        torch.manual_seed(seed)
        return entry.model_class(entry.config_class(**{**args, **fields})).eval()


@pytest.fixture
def tiny_policy() -> TinyPolicies:
    """The one tiny-policy factory (TinyPolicies): ``tiny_policy("ffm", n_layers=2)``."""
    return TinyPolicies()


@pytest.fixture
def load_script(monkeypatch):
    """``load_script("train.py")``: a script of the repository (by its path from the root) imported as a
    module; registered in sys.modules for the test, so pool workers can unpickle what it defines."""
    def load(relative: str):
        name = "script_" + re.sub(r"\W", "_", Path(relative).with_suffix("").as_posix())
        spec = importlib.util.spec_from_file_location(name, ROOT / relative)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tmaze_recipe():
    return ENVS.recipe("tmaze")


@pytest.fixture(scope="session")
def tiny_tmaze(tmp_path_factory, tmaze_recipe):
    """A small oracle dataset on disk: (root, dataset id, build arguments)."""
    root = tmp_path_factory.mktemp("minari")
    args = dict(episodes=40, min_length=1, max_length=12, seed=3)
    return root, tmaze_recipe.build(**args, root=root), args


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps one process-wide state; each test's trainer may ask for another precision."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Overrides of configs/tmaze/quickstart.yaml for a seconds-long run on a tiny T-Maze dataset."""
    root = tmp_path_factory.mktemp("data")
    return ["data.recipe_args={episodes: 40, min_length: 1, max_length: 10, seed: 1}", f"data.root={root}",
            "data.context_len=4", "data.num_segments=3", "model.memory_tokens=2", "model.d_model=16",
            "model.n_layers=1", "model.n_heads=2", "training.steps=6", "training.batch_size=8",
            "training.warmup_steps=2", "training.log_every=2", "training.checkpoint_every=3",
            "evaluation.env_args.corridor_lengths=[3, 12]", "evaluation.episodes=10"]
