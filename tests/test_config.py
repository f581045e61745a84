from pathlib import Path

import pytest

from rmdt.config import Config, ConfigError, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.data.context_len >= 1


def test_overrides_apply_with_yaml_types(tmp_path):
    config = load_config(CONFIGS[0], ["training.steps=2000", "model.memory_tokens=8", "training.lr=3e-4",
                                      "model.grad_segments=null", "evaluation.corridor_lengths=[9, 90]"])
    assert config.training.steps == 2000 and config.model.memory_tokens == 8
    assert config.training.lr == pytest.approx(3e-4) and config.model.grad_segments is None
    assert config.evaluation.corridor_lengths == [9, 90]
    config.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config  # the resolved config round-trips


def test_defaults_without_file():
    assert load_config() == Config()


@pytest.mark.parametrize("override, match", [
    ("training.stpes=5", r"unknown config key training\.stpes \(did you mean training\.steps\?\)"),
    ("modle.d_model=5", r"unknown config key modle"),
    ("training.steps=abc", r"training\.steps must be int, got 'abc'"),
    ("training.steps=true", r"training\.steps must be int"),
    ("data.context_len=0", r"data\.context_len \(K\) must be >= 1"),
    ("data.num_segments=0", r"data\.num_segments \(N\) must be >= 1"),
    ("training.mixed_precision=fp8", "mixed_precision"),
    ("training.steps", "must look like section.key=value"),
])
def test_bad_values_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_bad_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  stesp: 3\n")
    with pytest.raises(ConfigError, match=f"{bad}: unknown config key training.stesp"):
        load_config(bad)


def test_evaluation_overrides_are_checked_against_the_evaluation_settings():
    from rmdt.config import evaluation_overrides

    assert evaluation_overrides(["episode_steps=500", "gif=ep.gif", "corridor_lengths=[3, 9]"]) == \
        {"episode_steps": 500, "gif": "ep.gif", "corridor_lengths": [3, 9]}
    with pytest.raises(ConfigError, match="did you mean evaluation.episodes"):
        evaluation_overrides(["episodez=3"])
    with pytest.raises(ConfigError, match="evaluation.episodes must be int"):
        evaluation_overrides(["episodes=many"])
