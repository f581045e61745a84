"""POPGym and MiniGrid-Memory configs train and evaluate through the gymnasium evaluator, with the
suite's wrapper and the oracle/random references reaching the checkpoint."""
import json
from pathlib import Path

import pytest

from rmdt.config import load_config
from rmdt.evaluation import evaluate_checkpoint
from rmdt.training import train

ROOT = Path(__file__).resolve().parents[1]
SUITE_CONFIGS = sorted((ROOT / "configs" / "popgym").glob("*.yaml")) + sorted((ROOT / "configs" / "minigrid").glob("*.yaml"))
TINY = ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "model.memory_size=4", "model.context_size=2",
        "training.steps=3", "training.batch_size=4", "training.warmup_steps=1", "training.log_every=3",
        "evaluation.episodes=3", "evaluation.num_envs=2"]
MODELS = ("rmdt", "dt", "dt_nk", "ffm", "linear_attention", "lru", "gru", "lstm")


@pytest.mark.parametrize("path", SUITE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_suite_configs_load(path):
    config = load_config(path)
    suite = path.parent.name
    assert config.data.recipe == suite and config.evaluation.env == "gymnasium"
    assert config.evaluation.env_args.wrapper == {"popgym": "popgym_flat", "minigrid": "minigrid_symbolic"}[suite]
    kind = next(k for k in MODELS if path.stem.endswith("_" + k))
    assert config.model.kind == (kind if kind not in ("rmdt", "dt", "dt_nk") else "rmdt")
    assert (config.model.memory_tokens == 0) == (kind in ("dt", "dt_nk"))
    assert (config.data.batching == "tape") == (kind in ("ffm", "linear_attention", "lru", "gru", "lstm"))
    if kind == "dt_nk":  # the DT-K config's whole window as one segment
        dt = load_config(path.with_name(path.name.replace("_dt_nk", "_dt")))
        assert config.data.num_segments == 1
        assert config.data.context_len == dt.data.context_len * dt.data.num_segments


@pytest.mark.parametrize("config_name, data, extra", [
    ("popgym/repeat_first_easy_gru.yaml", "{task: RepeatFirstEasy, episodes: 12, random_share: 0.1, seed: 0}", []),
    ("minigrid/memory_dt.yaml", "{env_id: MiniGrid-MemoryS9-v0, episodes: 12, random_share: 0.1, seed: 0}",
     ["evaluation.env_args={id: MiniGrid-MemoryS9-v0, wrapper: minigrid_symbolic, max_episode_steps: 40}"]),
])
@pytest.mark.slow
def test_trains_and_evaluates_with_references(tmp_path, monkeypatch, config_name, data, extra):
    from rmdt.recipes import oracle_play

    monkeypatch.setattr(oracle_play, "REFERENCE_EPISODES", 4)
    config = load_config(ROOT / "configs" / config_name, [f"data.root={tmp_path / 'minari'}", f"data.recipe_args={data}",
                                                          *TINY, *extra])
    run = train(config, run_dir=tmp_path / "run").run_dir
    saved = json.loads((run / "final" / "config.json").read_text())["evaluation"]["env_args"]
    assert saved["wrapper"] == config.evaluation.env_args.wrapper
    assert saved["ref_max_score"] > saved["ref_min_score"]  # from the dataset's metadata
    report = json.loads(evaluate_checkpoint(run).read_text())
    row, = report["results"]
    assert row["episodes"] == 3 and len(row["returns"]) == 3
    assert row["ref_max_score"] == pytest.approx(saved["ref_max_score"])
    assert "normalised_score" in row


def test_unknown_wrapper_is_named():
    from rmdt.config import ConfigError

    with pytest.raises(ConfigError, match="env_args.wrapper must be one of popgym_flat, minigrid_symbolic"):
        load_config(ROOT / "configs" / "popgym" / "repeat_first_easy_gru.yaml",
                    ["evaluation.env_args={id: popgym-RepeatFirstEasy-v0, wrapper: popgym_flatt}"])
