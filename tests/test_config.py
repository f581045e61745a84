import dataclasses
import inspect
import json
import re
from pathlib import Path

import pytest
from training_helpers import CONFIG

from rmdt.config import ConfigError, DataConfig, evaluation_config, load_config, override_evaluation
from rmdt.envs.registry import ENVS

ROOT = Path(__file__).resolve().parents[1]
# Run configs: configs/sweeps/ holds sweep files, which name run configs (tests/test_sweep.py loads them)
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if p.parent.name != "sweeps")
NAMED = "model: dt\ndata: {recipe: tmaze}\nevaluation: {env: tmaze}\n"  # what a config must name
# The whole `evaluation` of a checkpoint's config.json written before env_args existed (flat, every env's keys)
OLD_FLAT_EVALUATION = {
    "env": "memory_maze", "target_return": 4.0, "corridor_lengths": [9, 30, 90, 150, 300, 600, 900],
    "episodes": 16, "periodic_lengths": [90], "seed": 12345, "game": "Breakout", "sticky_actions": 0.0,
    "max_steps": 27000, "maze_size": 9, "episode_steps": 90, "gif": None}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.data.context_len >= 1


def test_overrides_apply_with_yaml_types(tmp_path):
    config = load_config(CONFIG, ["training.steps=2000", "model.memory_tokens=8", "training.lr=3e-4",
                                      "model.grad_segments=null", "evaluation.env_args.corridor_lengths=[9, 90]",
                                      "evaluation.target_return=[1, 0.5]"])
    assert config.training.steps == 2000 and config.model.memory_tokens == 8
    assert config.training.lr == pytest.approx(3e-4) and config.model.grad_segments is None
    assert config.evaluation.env_args.corridor_lengths == [9, 90]
    assert config.evaluation.env_args.periodic_lengths == [90]  # the rest of env_args keeps its defaults
    assert config.evaluation.target_returns() == [1, 0.5]
    config.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config  # the resolved config round-trips


def test_without_file_the_model_and_the_environment_must_be_named():
    with pytest.raises(ConfigError,
                       match=r"model.kind must be set \(a model kind: rmdt, elmur, ffm, .*\), or name a preset"):
        load_config()
    config = load_config(None, ["model=dt", "evaluation.env=tmaze", "data.recipe=tmaze"])
    assert config.model.kind == "rmdt" and config.model.memory_tokens == 0 and config.evaluation.env == "tmaze"
    assert config.data == dataclasses.replace(DataConfig(), recipe="tmaze")


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
        load_config(CONFIG, [override])


def test_bad_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  stesp: 3\n")
    with pytest.raises(ConfigError, match=f"{bad}: unknown config key training.stesp"):
        load_config(bad)


def test_every_env_has_typed_settings_with_a_comment_per_field():
    for env in ENVS:
        settings = ENVS.settings(env)
        source = Path(inspect.getsourcefile(settings)).read_text()
        for field in settings.__dataclass_fields__.values():
            line = next(line for line in source.splitlines() if line.strip().startswith(f"{field.name}:"))
            assert "  # " in line, f"{env}.Settings.{field.name} has no comment"
        assert ENVS.evaluator(env).Settings is settings, env


def test_only_the_chosen_envs_settings_are_kept_typed():
    config = load_config(ROOT / "configs" / "memory_maze" / "tiny.yaml")
    settings = config.evaluation.env_args
    assert type(settings) is ENVS.settings("memory_maze") and settings.max_steps == 8
    assert config.to_dict()["evaluation"]["env_args"] == {"maze_size": 9, "max_steps": 8, "gif": None}


@pytest.mark.parametrize("override, match", [
    ("evaluation.env=tmze", r"evaluation\.env 'tmze' is unknown \(did you mean tmaze\?\)"),
    ("evaluation.env_args.corridor_lenghts=[3]",
     r"unknown config key evaluation\.env_args\.corridor_lenghts "
     r"\(did you mean evaluation\.env_args\.corridor_lengths\?\)"),
    ("evaluation.env_args.game=Pong", r"evaluation\.env_args\.game is a setting of env 'atari', not of 'tmaze'"),
    ("evaluation.corridor_lengths=[3]", r"did you mean evaluation\.env_args\.corridor_lengths\?"),
    ("evaluation.episode_steps=50", r"did you mean evaluation\.env_args\.max_steps\? env memory_maze"),
    ("evaluation.env_args.corridor_lengths=[0, 3]", r"corridor_lengths must be a non-empty list of ints >= 1"),
    ("evaluation.env_args.corridor_lengths=abc", r"evaluation\.env_args\.corridor_lengths must be list"),
    ("evaluation.target_return=[]", r"target_return must be a number, a non-empty list"),
    ("evaluation.target_return=[1, high]", r"target_return must be a number, a non-empty list"),
    ("evaluation.episodes=0", r"evaluation\.episodes must be >= 1"),
])
def test_bad_evaluation_settings_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIG, [override])


@pytest.mark.parametrize("overrides, match", [
    (["evaluation.env=atari", "evaluation.env_args.game=Breakot"], r"game: unknown Atari game 'Breakot'"),
    (["evaluation.env=memory_maze", "evaluation.env_args.max_steps=1001"], r"max_steps must be in \[1, 1000\]"),
    (["evaluation.env=memory_maze", "evaluation.env_args.maze_size=10"], r"maze_size must be one of"),
    (["evaluation.env=atari", "evaluation.env_args.sticky_actions=2"], r"sticky_actions must be in \[0, 1\]"),
])
def test_bad_settings_of_each_env_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONFIG, overrides)


def test_bad_evaluation_settings_fail_before_any_data_is_built(monkeypatch, capsys, tmp_path, load_script):
    """train.py stops at load_config: no recipe runs, no data loads, no run folder is made."""
    import rmdt.training.trainer

    def refuse(*args, **kwargs):
        raise AssertionError("data was built before the evaluation settings were checked")

    monkeypatch.setattr(ENVS, "recipe", refuse)
    monkeypatch.setattr(rmdt.training.trainer, "load_config_data", refuse)
    cli = load_script("train.py")
    run = tmp_path / "run"
    for override, message in [("evaluation.env=tmze", "did you mean tmaze?"),
                              ("evaluation.env_args.corridor_lenghts=[3]", "did you mean evaluation.env_args.corr"),
                              ("evaluation.env_args.maze_size=9", "a setting of env 'memory_maze'")]:
        assert cli.main([str(CONFIG), override, "--run-dir", str(run)]) == 2
        assert message in capsys.readouterr().err
        assert not run.exists()


def test_an_old_flat_evaluation_converts_to_the_chosen_envs_settings(tmp_path):
    evaluation = evaluation_config(OLD_FLAT_EVALUATION)
    assert evaluation.env == "memory_maze" and evaluation.episodes == 16 and evaluation.target_return == 4.0
    assert evaluation.env_args == ENVS.settings("memory_maze")(maze_size=9, max_steps=90, gif=None)
    first = evaluation_config({"env": "tmaze", "target_return": 1.0, "corridor_lengths": [9], "episodes": 5,
                               "seed": 1})  # the very first checkpoints: T-Maze keys only
    assert first.env_args.corridor_lengths == [9] and first.episodes == 5
    atari = evaluation_config({**OLD_FLAT_EVALUATION, "env": "atari", "max_steps": 30})
    assert atari.env_args == ENVS.settings("atari")(game="Breakout", sticky_actions=0.0, max_steps=30)
    old_yaml = tmp_path / "config.yaml"  # a run's config.yaml written before env_args
    old_yaml.write_text(CONFIG.read_text().split("evaluation:")[0] + "evaluation:\n" + "".join(
        f"  {key}: {value if value is not None else 'null'}\n" for key, value in
        {**OLD_FLAT_EVALUATION, "env": "tmaze", "corridor_lengths": [9, 30]}.items()))
    assert load_config(old_yaml).evaluation.env_args.corridor_lengths == [9, 30]


def test_evaluation_overrides_are_checked_against_the_evaluation_settings():
    from rmdt.config import evaluation_overrides

    assert evaluation_overrides(["max_steps=500", "gif=ep.gif", "env_args.corridor_lengths=[3, 9]", "episodes=4"]) == \
        {"episodes": 4, "env_args": {"max_steps": 500, "gif": "ep.gif", "corridor_lengths": [3, 9]}}
    with pytest.raises(ConfigError, match="unknown evaluation setting episodez \\(did you mean episodes\\?\\)"):
        evaluation_overrides(["episodez=3"])
    with pytest.raises(ConfigError, match="did you mean corridor_lengths"):
        evaluation_overrides(["corridor_length=[3]"])
    tmaze = load_config(CONFIG).evaluation
    changed = override_evaluation(tmaze, evaluation_overrides(["episodes=4", "corridor_lengths=[3]"]))
    assert changed.episodes == 4 and changed.env_args.corridor_lengths == [3] and tmaze.episodes == 100
    with pytest.raises(ConfigError, match="evaluation.episodes must be int"):
        override_evaluation(tmaze, evaluation_overrides(["episodes=many"]))
    with pytest.raises(ConfigError, match="evaluation.env_args.game is a setting of env 'atari', not of 'tmaze'"):
        override_evaluation(tmaze, evaluation_overrides(["game=Pong"]))
    maze = override_evaluation(tmaze, {"env": "memory_maze", "max_steps": 50})  # a new env starts from its defaults
    assert maze.env_args == ENVS.settings("memory_maze")(maze_size=9, max_steps=50, gif=None)


def test_an_old_checkpoint_still_evaluates_and_cli_settings_follow_its_env(tmp_path, capsys, load_script, tiny_policy):
    cli = load_script("evaluate.py")
    model = tiny_policy(context_len=4, evaluation={**OLD_FLAT_EVALUATION, "env": "tmaze", "target_return": 1.0})
    model.save_pretrained(tmp_path / "old" / "final")
    out = tmp_path / "report.json"
    assert cli.main([str(tmp_path / "old"), "episodes=3", "target_return=[1, 0.5]", "--lengths", "2", "5",
                     "--out", str(out)]) == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["env"] == "tmaze" and report["env_args"] == {"corridor_lengths": [2, 5], "periodic_lengths": [90]}
    assert [(r["target_return"], r["corridor_length"], r["episodes"]) for r in report["results"]] == \
        [(1.0, 2, 3), (1.0, 5, 3), (0.5, 2, 3), (0.5, 5, 3)]
    assert cli.main([str(tmp_path / "old"), "game=Pong"]) == 2
    assert "evaluation.env_args.game is a setting of env 'atari', not of 'tmaze'" in capsys.readouterr().err
    maze = tiny_policy(context_len=4, evaluation=OLD_FLAT_EVALUATION)
    maze.save_pretrained(tmp_path / "maze")
    assert cli.main([str(tmp_path / "maze"), "--lengths", "9"]) == 2
    assert "corridor_lengths is a setting of env 'tmaze', not of 'memory_maze'" in capsys.readouterr().err


@pytest.mark.parametrize("override, match", [
    ("training.checkpoint_every=0", r"training\.checkpoint_every must be >= 1, got 0"),
    ("training.log_every=0", r"training\.log_every must be >= 1, got 0"),
    ("training.lr=0", r"training\.lr must be > 0"),
    ("training.lr=-1e-3", r"training\.lr must be > 0"),
    ("data.return_scale=0", r"data\.return_scale must be > 0"),
    ("training.keep_checkpoints=-1", r"training\.keep_checkpoints must be >= 0"),
    ("training.eval_every=-5", r"training\.eval_every must be >= 0"),
    ("training.warmup_steps=-1", r"training\.warmup_steps must be >= 0"),
    ("training.grad_accum=3",
     r"training\.batch_size=64 must be divisible by processes \(1\) x training\.grad_accum \(3\)"),
    ("model.n_heads=5", r"model\.d_model must be a positive integer divisible by n_heads=5, got 64"),
    ("model.memory_update=grated", r"model\.memory_update must be one of .*got 'grated' \(did you mean gated\?\)"),
    ("model.obs_encoder=nature_cn",
     r"model\.obs_encoder must be one of \['mlp', 'nature_cnn'.*\(did you mean nature_cnn\?\)"),
    ("model.dropout=1.5", r"model\.dropout must be in \[0, 1\)"),
])
def test_unusable_values_fail_in_load_config_naming_the_override(override, match):
    """Each of these passed load_config before and failed only after the data was loaded (or never)."""
    with pytest.raises(ConfigError, match=rf"^override {re.escape(override)}: {match}"):
        load_config(CONFIG, [override])


def test_batch_size_must_split_over_the_processes_of_a_launch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match=r"divisible by processes \(3\) x training\.grad_accum \(1\)"):
        load_config(CONFIG, ["training.batch_size=64"])
    assert load_config(CONFIG, ["training.batch_size=63"]).training.batch_size == 63


def test_errors_name_the_file_or_the_override_that_set_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(NAMED + "training:\n  steps: abc\n  lr: 0.001\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: training\.steps must be int, got 'abc'"):
        load_config(bad)
    assert load_config(bad, ["training.steps=5"]).training.steps == 5  # an override can repair the file
    good = tmp_path / "good.yaml"
    good.write_text(NAMED + "training:\n  lr: 0.001\n")
    with pytest.raises(ConfigError, match=r"^override training\.steps=abc: training\.steps must be int, got 'abc'"):
        load_config(good, ["model.d_model=32", "training.steps=abc"])
    with pytest.raises(ConfigError, match=r"^override training\.lr=0: training\.lr must be > 0"):
        load_config(good, ["training.lr=0"])
    good.write_text(NAMED + "training:\n  lr: 0\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(good))}: training\.lr must be > 0"):
        load_config(good, ["training.steps=10"])
    with pytest.raises(ConfigError, match=r"^override model\.n_heads=3: model\.d_model must be .*n_heads=3"):
        load_config(CONFIG, ["model.n_heads=3"])  # a check of two keys blames the override that set either
    with pytest.raises(ConfigError, match=r"^override 'training\.steps=\[1': the value is not valid YAML"):
        load_config(CONFIG, ["training.steps=[1"])


def test_the_recipe_and_its_arguments_are_checked_before_any_build():
    with pytest.raises(ConfigError, match=r"^override data\.recipe=tmaz: data\.recipe: unknown dataset recipe "
                                          r"'tmaz' \(did you mean tmaze\?\)"):
        load_config(CONFIG, ["data.recipe=tmaz"])
    with pytest.raises(ConfigError, match=r"recipe tmaze has no argument 'episodez' \(did you mean episodes\?\)"):
        load_config(CONFIG, ["data.recipe_args={episodez: 3}"])

