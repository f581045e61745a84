import re
from pathlib import Path

import pytest

from rmdt.config import Config, ConfigError, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "tmaze" / "quickstart.yaml"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.data.context_len >= 1


def test_overrides_apply_with_yaml_types(tmp_path):
    config = load_config(QUICKSTART, ["training.steps=2000", "model.memory_tokens=8", "training.lr=3e-4",
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


@pytest.mark.parametrize("override, match", [
    ("training.checkpoint_every=0", r"training\.checkpoint_every must be >= 1, got 0"),
    ("training.log_every=0", r"training\.log_every must be >= 1, got 0"),
    ("training.lr=0", r"training\.lr must be > 0"),
    ("training.lr=-1e-3", r"training\.lr must be > 0"),
    ("data.return_scale=0", r"data\.return_scale must be > 0"),
    ("training.keep_checkpoints=-1", r"training\.keep_checkpoints must be >= 0"),
    ("training.eval_every=-5", r"training\.eval_every must be >= 0"),
    ("training.warmup_steps=-1", r"training\.warmup_steps must be >= 0"),
    ("training.grad_accum=3", r"training\.batch_size=64 must be divisible by processes \(1\) x training\.grad_accum \(3\)"),
    ("model.n_heads=5", r"model\.d_model must be a positive integer divisible by n_heads=5, got 64"),
    ("model.memory_update=grated", r"model\.memory_update must be one of .*got 'grated' \(did you mean gated\?\)"),
    ("model.obs_encoder=nature_cn", r"model\.obs_encoder must be one of \['mlp', 'nature_cnn'.*\(did you mean nature_cnn\?\)"),
    ("model.dropout=1.5", r"model\.dropout must be in \[0, 1\)"),
])
def test_unusable_values_fail_in_load_config_naming_the_override(override, match):
    """Each of these passed load_config before and failed only after the data was loaded (or never)."""
    with pytest.raises(ConfigError, match=rf"^override {re.escape(override)}: {match}"):
        load_config(QUICKSTART, [override])


def test_batch_size_must_split_over_the_processes_of_a_launch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match=r"divisible by processes \(3\) x training\.grad_accum \(1\)"):
        load_config(None, ["training.batch_size=64"])
    assert load_config(None, ["training.batch_size=63"]).training.batch_size == 63


def test_errors_name_the_file_or_the_override_that_set_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  steps: abc\n  lr: 0.001\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: training\.steps must be int, got 'abc'"):
        load_config(bad)
    assert load_config(bad, ["training.steps=5"]).training.steps == 5  # an override can repair the file
    good = tmp_path / "good.yaml"
    good.write_text("training:\n  lr: 0.001\n")
    with pytest.raises(ConfigError, match=r"^override training\.steps=abc: training\.steps must be int, got 'abc'"):
        load_config(good, ["model.d_model=32", "training.steps=abc"])
    with pytest.raises(ConfigError, match=r"^override training\.lr=0: training\.lr must be > 0"):
        load_config(good, ["training.lr=0"])
    good.write_text("training:\n  lr: 0\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(good))}: training\.lr must be > 0"):
        load_config(good, ["training.steps=10"])
    with pytest.raises(ConfigError, match=r"^override model\.n_heads=3: model\.d_model must be .*n_heads=3"):
        load_config(None, ["model.n_heads=3"])  # a check of two keys blames the override that set either
    with pytest.raises(ConfigError, match=r"^override 'training\.steps=\[1': the value is not valid YAML"):
        load_config(None, ["training.steps=[1"])


def test_the_recipe_and_its_arguments_are_checked_before_any_build():
    with pytest.raises(ConfigError, match=r"^override data\.recipe=tmaz: data\.recipe: unknown dataset recipe "
                                          r"'tmaz' \(did you mean tmaze\?\); known: .*memory_maze.*tmaze"):
        load_config(QUICKSTART, ["data.recipe=tmaz"])
    with pytest.raises(ConfigError, match=r"recipe tmaze has no argument 'episodez' \(did you mean episodes\?\)"):
        load_config(QUICKSTART, ["data.recipe_args={episodez: 3}"])

