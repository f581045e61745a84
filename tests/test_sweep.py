"""rmdt.sweep without Ray: sweep files checked and expanded into runs, bad ones named with their key,
the table and plot, --collect and --merge, failed runs in the table. (Sweeps on Ray: test_sweep_ray.py.)"""
import configparser
import json
from pathlib import Path

import pytest

from rmdt.config import load_config
from rmdt.errors import ConfigError
from rmdt.sweep import load_sweep
from rmdt.sweep.__main__ import main
from rmdt.sweep.table import plot, table

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "configs" / "sweeps"
SUITES = str(SWEEPS / "memory_suites.yaml")
CONFIGS = ROOT / "configs"


def sweep_file(tmp_path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"config_dir: {CONFIGS}\n{text}")
    return path


def evaluated(runs: Path, name: str, mean_return: float, normalised: float) -> None:
    """A run folder with an evaluation report, as a finished run leaves it."""
    report = runs / name / "eval" / "results.json"
    report.parent.mkdir(parents=True)
    row = {"mean_return": mean_return, "normalised_score": normalised, "ref_min_score": -1.0, "ref_max_score": 1.0}
    report.write_text(json.dumps({"results": [row]}))


# ---- sweep files ----
def test_memory_suites_sweep_has_a_config_for_every_task_and_model():
    """Every row the table promises is a run config users can also train with train.py."""
    sweep = load_sweep(SWEEPS / "memory_suites.yaml")
    assert len(sweep.runs) == 10 * 10 * 3 and len(sweep.tasks) == 10
    for run in sweep.runs:
        config = load_config(run.config, list(run.overrides))
        assert config.name == f"{run.task.replace('/', '_')}_{run.model}" and config.seed == run.seed, run.name
    replay = next(run for run in sweep.runs if run.model == "rmdt_replay")
    assert load_config(replay.config, list(replay.overrides)).model.memory_replay == 3


def test_quick_sweep_covers_the_same_table_on_tiny_data():
    full, quick = load_sweep(SWEEPS / "memory_suites.yaml"), load_sweep(SWEEPS / "memory_suites_quick.yaml")
    assert [(r.task, r.model) for r in quick.runs] == list(dict.fromkeys((r.task, r.model) for r in full.runs))
    run = next(r for r in quick.runs if r.task == "popgym/count_recall_easy")
    config = load_config(run.config, list(run.overrides))
    assert config.training.steps == 10 and config.evaluation.episodes == 6
    # recipe_args join the task's own recipe arguments key by key
    assert config.data.recipe_args == {"task": "CountRecallEasy", "episodes": 40, "random_share": 0.1, "seed": 0}


def test_grid_and_overrides_expand_into_one_run_per_point_and_seed(tmp_path):
    path = sweep_file(tmp_path, "tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: [0, 1]\n"
                                "grid: {training.lr: [1e-3, 3e-4], training.batch_size: [8]}\n"
                                "overrides: [training.steps=7]\n")
    runs = load_sweep(path).runs
    assert [r.name for r in runs] == [
        "popgym_repeat_first_easy_gru__training.lr=1e-3,training.batch_size=8__0",
        "popgym_repeat_first_easy_gru__training.lr=1e-3,training.batch_size=8__1",
        "popgym_repeat_first_easy_gru__training.lr=3e-4,training.batch_size=8__0",
        "popgym_repeat_first_easy_gru__training.lr=3e-4,training.batch_size=8__1"]
    configs = [load_config(r.config, list(r.overrides)) for r in runs]
    assert [(c.training.lr, c.training.batch_size, c.training.steps, c.seed) for c in configs] == [
        (1e-3, 8, 7, 0), (1e-3, 8, 7, 1), (3e-4, 8, 7, 0), (3e-4, 8, 7, 1)]
    assert runs[2].grid == {"training.lr": "3e-4", "training.batch_size": "8"}
    # the command line's lists replace the file's
    assert [r.seed for r in load_sweep(path, seeds=[5]).runs] == [5, 5]


@pytest.mark.parametrize("text, match", [
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseed: [0]\n",
     r"unknown sweep key 'seed' \(did you mean seeds\?\)"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [grux]\nseeds: [0]\n",
     r"models: unknown model preset 'grux' \(did you mean gru\?\)"),
    ("tasks: [popgym/repeat_frist_easy]\nmodels: [gru]\nseeds: [0]\n",
     r"tasks: no run config .*popgym/repeat_frist_easy.yaml for task 'popgym/repeat_frist_easy' "
     r"\(did you mean popgym/repeat_first_easy\?\)"),
    ("tasks: []\nmodels: [gru]\nseeds: [0]\n", r"tasks is empty: name at least one"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: []\n", r"seeds is empty"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\n", r"seeds is missing \(a list of integer training seeds\)"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: [0, one]\n", r"seeds: 'one' is not an integer"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru, gru]\nseeds: [0]\n", r"models: 'gru' is listed twice"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: [0]\ngrid: {training.lr: []}\n",
     r"grid.training.lr must be a non-empty list"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: [0]\ngrid: {seed: [1, 2]}\n",
     r"grid.seed: list seeds under seeds"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: [0]\ngrid: {training.lrr: [0.1]}\n",
     r"task popgym/repeat_first_easy with model=gru: override training.lrr=0.1: unknown config key training.lrr "
     r"\(did you mean training.lr\?\)"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: [0]\noverrides: [training.steps=abc]\n",
     r"override training.steps=abc: training.steps must be int"),
    ("tasks: [popgym/repeat_first_easy]\nmodels: [gru]\nseeds: [0]\noverrides: training.steps=3\n",
     r"overrides must be a list of KEY=VALUE overrides"),
])
def test_bad_sweep_files_name_the_file_and_the_key(tmp_path, text, match):
    path = sweep_file(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as caught:
        load_sweep(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_missing_or_shapeless_sweep_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="sweep file not found: .*absent.yaml"):
        load_sweep(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- popgym/repeat_first_easy\n")
    with pytest.raises(ConfigError, match=r"list.yaml: a sweep file is a mapping with the keys tasks, models, seeds"):
        load_sweep(tmp_path / "list.yaml")
    with pytest.raises(SystemExit, match=r"error: .*models: unknown model preset 'grux'"):
        main([SUITES, "--models", "grux", "--collect"])


def test_the_console_entry_point_is_the_command_line():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "rmdt-sweep = rmdt.sweep.__main__:main" in setup["options.entry_points"]["console_scripts"]
    assert "ray[tune]" in setup["options.extras_require"]["sweep"]


# ---- the table ----
def test_table_spreads_seeds_and_averages_popgym_tasks(tmp_path):
    rows = [dict(task=t, model=m, seed=s, **{"return": r, "normalised": n, "ref_min": -0.5, "ref_max": 1.0})
            for t, m, s, r, n in [("popgym/a", "gru", 0, 1.0, 100.0), ("popgym/a", "gru", 1, 0.25, 50.0),
                                  ("popgym/b", "gru", 0, -0.5, 0.0), ("minigrid/memory", "gru", 0, 0.4, 30.0),
                                  ("popgym/b", "rmdt", 0, 0.5, 66.66), ("popgym/b", "rmdt", 1, 0.5, 66.69)]]
    lines = table(rows).splitlines()
    assert lines[2] == "| popgym/a | gru | 2 | 0.62 (0.25 to 1.00) | 75.00 (50.00 to 100.00) | 1.000 | -0.500 |"
    grid = lines[lines.index("") + 1:]
    assert grid[0] == "| normalised, mean (min to max) over seeds | gru | rmdt |"  # in the order of the rows
    assert grid[2:] == ["| popgym/a | 75.0 (50.0 to 100.0) | - |", "| popgym/b | 0.0 | 66.7 |",
                        "| minigrid/memory | 30.0 | - |",  # the mean of the tasks' means; MiniGrid left out:
                        "| POPGym mean over tasks | 37.5 (2 tasks) | 66.7 (1 task) |"]
    plot(rows, tmp_path / "scores.png")
    assert (tmp_path / "scores.png").read_bytes()[:4] == b"\x89PNG"


def test_table_names_grid_points_and_lists_failed_runs_with_their_error():
    row = dict(task="popgym/a", model="gru", seed=0, grid={"training.lr": "1e-3"},
               **{"return": 1.0, "normalised": 100.0, "ref_min": -0.5, "ref_max": 1.0})
    lines = table([row], {"popgym_a_lstm__0": "Traceback ...\nDataError: no | such data\n"}).splitlines()
    assert lines[2].startswith("| popgym/a | gru training.lr=1e-3 | 1 | ")
    assert lines[-3:] == ["| failed run | error |", "|---|---|", "| popgym_a_lstm__0 | DataError: no / such data |"]


# ---- the command line without training ----
def test_collect_tabulates_evaluated_runs_and_trains_nothing(tmp_path, capsys):
    args = [SUITES, "--collect", "--out", str(tmp_path), "--tasks", "popgym/count_recall_easy"]
    with pytest.raises(SystemExit, match="no evaluated runs"):
        main(args)
    evaluated(tmp_path / "runs", "popgym_count_recall_easy_ffm__1", 0.5, 75.0)
    assert main(args) == 0
    line = "| popgym/count_recall_easy | ffm | 1 | 0.50 (0.50 to 0.50) | 75.00 (75.00 to 75.00) |"
    assert line in capsys.readouterr().out and line in (tmp_path / "table.md").read_text()
    assert [r["model"] for r in json.loads((tmp_path / "results.json").read_text())] == ["ffm"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["popgym_count_recall_easy_ffm__1"]
    assert not (tmp_path / "tune").exists()  # nothing trained, no Ray


def test_collect_lists_failed_runs_and_exits_with_1(tmp_path, capsys):
    args = [SUITES, "--collect", "--out", str(tmp_path), "--tasks", "popgym/count_recall_easy",
            "--models", "gru", "lstm", "--seeds", "0"]
    evaluated(tmp_path / "runs", "popgym_count_recall_easy_gru__0", 0.5, 75.0)
    (tmp_path / "runs" / "popgym_count_recall_easy_lstm__0").mkdir()
    (tmp_path / "runs" / "popgym_count_recall_easy_lstm__0" / "sweep_error.txt").write_text("OSError: disk full\n")
    assert main(args) == 1
    assert "| popgym_count_recall_easy_lstm__0 | OSError: disk full |" in capsys.readouterr().out
    evaluated(tmp_path / "runs", "popgym_count_recall_easy_lstm__0", 0.25, 60.0)  # a later attempt succeeded
    assert main(args) == 0
    assert "failed run" not in (tmp_path / "table.md").read_text()


def test_merge_joins_results_made_elsewhere_and_prefers_runs_here(tmp_path):
    evaluated(tmp_path / "runs", "popgym_count_recall_easy_ffm__1", 0.5, 75.0)
    row = dict(task="popgym/count_recall_easy", model="ffm", seed=1, ref_min=-1.0, ref_max=1.0,
               **{"return": -1.0, "normalised": 0.0})
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps([row, {**row, "model": "gru", "seed": 0}, {**row, "model": "gru", "seed": 7},
                                   {**row, "task": "popgym/repeat_first_easy"},
                                   {**row, "model": "gru", "seed": 2, "grid": {"training.lr": "1"}}]))
    main([SUITES, "--collect", "--out", str(tmp_path), "--tasks", "popgym/count_recall_easy", "--merge", str(earlier)])
    rows = json.loads((tmp_path / "results.json").read_text())
    # rows of other tasks, seeds or grid points are not this sweep's; in the sweep's order
    assert [(r["model"], r["seed"], r["normalised"]) for r in rows] == [("ffm", 1, 75.0), ("gru", 0, 0.0)]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match="bad.json"):
        main([SUITES, "--collect", "--out", str(tmp_path), "--merge", str(tmp_path / "bad.json")])
