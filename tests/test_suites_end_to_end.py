"""POPGym and MiniGrid-Memory configs train and evaluate through the gymnasium evaluator, with the
suite's wrapper and the oracle/random references reaching the checkpoint."""
import dataclasses
import json
from pathlib import Path

import pytest

from rmdt.config import load_config
from rmdt.evaluation import evaluate_checkpoint
from rmdt.models.registry import MODELS
from rmdt.presets import PRESETS
from rmdt.training import train

ROOT = Path(__file__).resolve().parents[1]
SUITE_CONFIGS = [*sorted((ROOT / "configs" / "popgym").glob("*.yaml")),
                 *sorted((ROOT / "configs" / "minigrid").glob("*.yaml"))]
TINY_MODEL = {"d_model": 16, "n_layers": 1, "n_heads": 2, "memory_size": 4, "context_size": 2}
TINY = ["training.steps=3", "training.batch_size=4", "training.warmup_steps=1", "training.log_every=3",
        "evaluation.episodes=3", "evaluation.num_envs=2"]
SUITE_PRESETS = ("rmdt", "rmdt_replay", "dt", "dt_nk", "ffm", "linear_attention", "lru", "gru", "lstm")


def tiny(preset: str) -> list[str]:
    """TINY with the small sizes of the fields the preset's kind has."""
    fields = MODELS[PRESETS[preset].values["model"]["kind"]].fields
    return [f"model={preset}", *[f"model.{k}={v}" for k, v in TINY_MODEL.items() if k in fields], *TINY]


@pytest.mark.parametrize("path", SUITE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_suite_configs_compose_with_every_preset(path):
    suite = path.parent.name
    default = load_config(path)
    for preset in SUITE_PRESETS:
        config = load_config(path, [f"model={preset}"])
        assert config.name == f"{suite}_{path.stem}_{preset}"
        assert config.data.recipe == suite and config.evaluation.env == "gymnasium"
        assert config.evaluation.env_args.wrapper == {"popgym": "popgym_flat", "minigrid": "minigrid_symbolic"}[suite]
        assert config.model.kind == PRESETS[preset].values["model"]["kind"]
        assert config.model.d_model == default.model.d_model and config.model.obs_encoder == default.model.obs_encoder
        assert (getattr(config.model, "memory_tokens", None) == 0) == (preset in ("dt", "dt_nk"))
        assert (config.data.batching == "tape") == (preset in ("ffm", "linear_attention", "lru", "gru", "lstm"))
        assert config.training.batch_size == (16 if config.data.batching == "tape" else 64)
        assert config.training == dataclasses.replace(default.training, batch_size=config.training.batch_size)
        if preset == "dt_nk":  # the task's whole window as one segment
            assert config.data.num_segments == 1
            assert config.data.context_len == default.data.context_len * default.data.num_segments
        elif config.data.batching == "segments":
            assert config.data == default.data


@pytest.mark.parametrize("config_name, data, extra", [
    ("popgym/repeat_first_easy.yaml", "{task: RepeatFirstEasy, episodes: 12, random_share: 0.1, seed: 0}", ["gru"]),
    ("minigrid/memory.yaml", "{env_id: MiniGrid-MemoryS9-v0, episodes: 12, random_share: 0.1, seed: 0}", ["dt",
     "evaluation.env_args={id: MiniGrid-MemoryS9-v0, wrapper: minigrid_symbolic, max_episode_steps: 40}"]),
])
@pytest.mark.slow
def test_trains_and_evaluates_with_references(tmp_path, monkeypatch, config_name, data, extra):
    from rmdt.envs import oracle_play

    monkeypatch.setattr(oracle_play, "REFERENCE_EPISODES", 4)
    preset, *extra = extra
    config = load_config(ROOT / "configs" / config_name,
                         [f"data.root={tmp_path / 'minari'}", f"data.recipe_args={data}", *tiny(preset), *extra])
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
        load_config(ROOT / "configs" / "popgym" / "repeat_first_easy.yaml",
                    ["evaluation.env_args={id: popgym-RepeatFirstEasy-v0, wrapper: popgym_flatt}"])


def test_train_help_lists_every_preset(capsys, load_script):
    with pytest.raises(SystemExit):
        load_script("train.py").main(["--help"])
    shown = capsys.readouterr().out
    for name, preset in PRESETS.items():
        assert f"  {name:<18}{preset.about}" in shown
