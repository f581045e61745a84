import pytest

from rmdt.envs.registry import ENVS


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
