"""The bench scripts keep running: the README's figures and table come from them."""
import json

import numpy as np
import pytest

from rmdt.data import SegmentSampler, Trajectories
from training_helpers import CONFIG


@pytest.fixture
def load(load_script):
    """``load(name)``: the bench script ``bench/<name>.py`` as a module."""
    return lambda name: load_script(f"bench/{name}.py")


def test_table_averages_seeds_per_model(tmp_path, capsys, load):
    for seed, rates in enumerate([(1.0, 0.5), (1.0, 1.0), (0.5, 0.5)]):
        name = "rmdt" if seed < 2 else "dt"
        report = {"results": [{"corridor_length": n, "success_rate": r} for n, r in zip((90, 900), rates)]}
        (tmp_path / f"{name}__{seed}" / "eval").mkdir(parents=True)
        (tmp_path / f"{name}__{seed}" / "eval" / "results.json").write_text(json.dumps(report))
    plot = tmp_path / "seeds.png"
    load("tmaze_table").main([*map(str, sorted(tmp_path.iterdir())), "--models", "rmdt", "dt", "--plot", str(plot)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | seeds | 90 | 900 |"
    assert lines[2] == "| rmdt | 2 | 1.00 (1.00-1.00) | 0.75 (0.50-1.00) |"  # in the order --models asks
    assert lines[3] == "| dt | 1 | 0.50 (0.50-0.50) | 0.50 (0.50-0.50) |"
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_sampler_benchmark_measures(load):
    data = Trajectories.from_episodes([(np.zeros((40, 3), np.float32), np.zeros(40, np.int64),
                                        np.zeros(40, np.float32))] * 5, num_actions=2)
    assert load("sampler").measure(SegmentSampler(data, 4, 3), batch_size=8, seconds=0.05) > 0


@pytest.mark.slow
def test_speed_benchmark_quick_mode(tmp_path, capsys, load):
    """bench/speed.py --quick: every row of the table, ratios and the JSON, without the reference."""
    out = tmp_path / "speed.json"
    report = load("speed").main(["--quick", "--threads", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert "| dropout 0.2 / dropout 0, rmdt mrv |" in text and "| checkpoint_segments on / off |" in text
    assert "| DT: rmdt / Hugging Face, attention dropout 0.1 |" in text
    assert json.loads(out.read_text())["best_s"] == report["best_s"]
    assert all(seconds > 0 for seconds in report["best_s"].values())
    assert report["matmul_flops"]["rmdt mrv, dropout 0.2"] > 0 and report["matmul_limit_gflops"]["square 1024"] > 0
    memory = report["memory"]["rmdt mrv, dropout 0.2"]
    assert memory["peak_gb"] >= memory["rss_before_gb"] > 0


def test_memory_suites_table_spreads_seeds_and_averages_popgym_tasks(tmp_path, load):
    bench = load("memory_suites")
    rows = [dict(task=t, model=m, seed=s, **{"return": r, "normalised": n, "ref_min": -0.5, "ref_max": 1.0})
            for t, m, s, r, n in [("popgym/a", "gru", 0, 1.0, 100.0), ("popgym/a", "gru", 1, 0.25, 50.0),
                                  ("popgym/b", "gru", 0, -0.5, 0.0), ("minigrid/memory", "gru", 0, 0.4, 30.0),
                                  ("popgym/b", "rmdt", 0, 0.5, 66.66), ("popgym/b", "rmdt", 1, 0.5, 66.69)]]
    lines = bench.table(rows).splitlines()
    assert lines[2] == "| popgym/a | gru | 2 | 0.62 (0.25 to 1.00) | 75.00 (50.00 to 100.00) | 1.000 | -0.500 |"
    grid = lines[lines.index("") + 1:]
    assert grid[0] == "| normalised, mean (min to max) over seeds | rmdt | gru |"  # models in MODELS order
    assert grid[2:] == ["| popgym/a | - | 75.0 (50.0 to 100.0) |", "| popgym/b | 66.7 | 0.0 |",
                        "| minigrid/memory | - | 30.0 |",  # the mean of the tasks' means; MiniGrid left out:
                        "| POPGym mean over tasks | 66.7 (1 task) | 37.5 (2 tasks) |"]
    bench.plot(rows, tmp_path / "scores.png")
    assert (tmp_path / "scores.png").stat().st_size > 0


def test_memory_suites_has_a_config_for_every_task_and_model(load):
    """A row the table promises must have a config users can train with train.py."""
    bench = load("memory_suites")
    for task in bench.TASKS:
        for model in bench.MODELS:
            assert bench.config_path(task, model).is_file(), (task, model)
    assert bench.config_path("popgym/count_recall_easy", "rmdt_replay").name == "count_recall_easy_rmdt.yaml"


@pytest.mark.slow
def test_memory_drift_follows_every_boundary_and_measures_clue_separation(tmp_path, capsys, load, tiny_policy):
    import torch

    bench = load("tmaze_memory_drift")
    clue = np.array([1, -1] * 8)
    carried = torch.as_tensor(clue, dtype=torch.float32)[:, None] * torch.ones(16, 4) + 0.01 * torch.randn(16, 4)
    assert bench.separation(carried, clue) > 50  # two tight clusters far apart
    assert bench.separation(torch.randn(16, 4), np.array([1] * 8 + [-1] * 8)) < 2  # clue not in the memory
    model = tiny_policy(initializer_range=0.02)
    model.save_pretrained(tmp_path / "final")
    values, success = bench.drift(str(tmp_path), length=10, episodes=8, seed=1)
    assert len(values) == 3  # 11 steps at K=3: boundaries before steps 4, 7 and 10
    assert all(np.isfinite(values)) and 0 <= success <= 1
    bench.main([str(tmp_path), "--length", "10", "--episodes", "8", "--every", "1", "--plot", str(tmp_path / "d.png")])
    assert f"| {tmp_path.name} | " in capsys.readouterr().out and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_memory_suites_collect_tabulates_evaluated_runs_and_trains_nothing(tmp_path, capsys, load):
    import pytest

    bench = load("memory_suites")
    with pytest.raises(SystemExit, match="no evaluated runs"):
        bench.main(["--collect", "--out", str(tmp_path), "--tasks", "popgym/count_recall_easy"])
    report = tmp_path / "runs" / "popgym_count_recall_easy_ffm__1" / "eval" / "results.json"
    report.parent.mkdir(parents=True)
    row = {"mean_return": 0.5, "normalised_score": 75.0, "ref_min_score": -1.0, "ref_max_score": 1.0}
    report.write_text(json.dumps({"results": [row]}))
    bench.main(["--collect", "--out", str(tmp_path), "--tasks", "popgym/count_recall_easy"])
    assert "| popgym/count_recall_easy | ffm | 1 | 0.50 (0.50 to 0.50) | 75.00 (75.00 to 75.00) |" in capsys.readouterr().out
    assert [r["model"] for r in json.loads((tmp_path / "results.json").read_text())] == ["ffm"]
    assert not (tmp_path / "runs" / "popgym_count_recall_easy_rmdt__0").exists()  # nothing trained


def test_memory_suites_merges_results_made_elsewhere_and_prefers_runs_here(tmp_path, capsys, load):
    import pytest

    bench = load("memory_suites")
    report = tmp_path / "runs" / "popgym_count_recall_easy_ffm__1" / "eval" / "results.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"results": [{"mean_return": 0.5, "normalised_score": 75.0, "ref_min_score": -1.0,
                                               "ref_max_score": 1.0}]}))
    row = dict(task="popgym/count_recall_easy", model="ffm", seed=1, ref_min=-1.0, ref_max=1.0,
               **{"return": -1.0, "normalised": 0.0})
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps([row, {**row, "model": "gru", "seed": 0}, {**row, "model": "gru", "seed": 7},
                                   {**row, "task": "popgym/repeat_first_easy"}]))
    bench.main(["--collect", "--out", str(tmp_path), "--tasks", "popgym/count_recall_easy", "--merge", str(earlier)])
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(r["model"], r["seed"], r["normalised"]) for r in rows] == [("ffm", 1, 75.0), ("gru", 0, 0.0)]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match="bad.json"):
        bench.main(["--collect", "--out", str(tmp_path), "--merge", str(tmp_path / "bad.json")])


@pytest.mark.slow
def test_decision_accuracy_splits_late_turns_from_the_rest(tiny, tmp_path, load):
    """Every oracle T-Maze episode ends with its one turn: the late-turn group counts exactly one step
    per episode that fits in a window, and no turn is early."""
    from rmdt.config import load_config
    from rmdt.data import load_config_data
    from rmdt.training import train

    config = load_config(CONFIG, tiny)
    train(config, run_dir=tmp_path / "run")
    groups = load("decision_accuracy").accuracy_groups(str(tmp_path / "run"), last=1, turns=(1, 3))
    lengths = load_config_data(config.data).episode_lengths
    fits = lengths <= config.data.context_len * config.data.num_segments  # episodes within one window
    assert groups["late turns"][0] == int(fits.sum()) > 0
    assert "early turns" not in groups and "late others" not in groups
    assert groups["early others"][0] == int(lengths[fits].sum()) - groups["late turns"][0]
    assert all(0 <= accuracy <= 1 for _, accuracy in groups.values())
