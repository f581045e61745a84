"""Every bench script keeps running: each one on tiny settings here, checking what it prints or writes
(bench/gpu_check.py: tests/test_gpu_check.py). The README's figures and tables come from them."""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import CONFIG

from rmdt.config import load_config
from rmdt.data import SegmentSampler
from rmdt.data.prefetch import PrefetchingSampler

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@pytest.fixture
def load(load_script):
    """``load("perf/speed")``: bench/perf/speed.py as a module (conftest's load_script)."""
    return lambda name: load_script(f"bench/{name}.py")


# ---- the folder ----
def test_every_bench_script_is_run_by_a_test():
    tests = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    scripts = sorted(p.relative_to(BENCH).as_posix() for p in BENCH.rglob("*") if p.suffix in (".py", ".sh"))
    assert len(scripts) >= 13
    for script in scripts:
        assert f'"{script.removesuffix(".py")}"' in tests or f'"{script}"' in tests, f"no test runs bench/{script}"


def test_bench_scripts_import_no_other_bench_script():
    """Shared code lives in rmdt (e.g. rmdt.data.synthetic), not in a script another one puts on sys.path."""
    stems = {p.stem for p in BENCH.rglob("*.py")}
    for path in sorted(BENCH.rglob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            assert not any(n.split(".")[0] in stems | {"bench"} for n in names), f"{path.name} imports {names}"
        # sys.path entries for code outside the repository only: the RATE reference (speed.py), another
        # rmdt checkout to compare with (op_counts.py)
        assert text.count("sys.path") == {"speed.py": 1, "op_counts.py": 2}.get(path.name, 0), path.name


# ---- perf/ ----
def test_op_counts_against_the_same_checkout_finds_no_difference(capsys, load):
    """A checkout compared with itself (imported a second time, beside the first): the same operator
    counts, the same loss and gradients; and the table has a row per asked model."""
    rows = load("perf/op_counts").main(["--quick", "--suites", "popgym", "--models", "rmdt", "dt", "--repeats", "1",
                                        "--baseline", str(ROOT), "--top", "3"])
    assert [r["model"] for r in rows] == ["rmdt", "dt"]
    for row in rows:
        assert row["train_calls"] == row["baseline"]["train_calls"] > 100
        assert row["act_calls"] == row["baseline"]["act_calls"] > 10
        assert row["loss_diff"] == 0 and row["grad_diff"] == 0 and row["flops"] > 0
    assert rows[1]["train_calls"] < rows[0]["train_calls"]  # a DT's segments run as one batch
    out = capsys.readouterr().out
    assert re.search(r"\| popgym +\| rmdt +\|", out) and "calls x" in out
    assert out.count("Self CPU time total") == 2  # --top: a profile per row
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from rmdt.models import RMDTConfig
    assert CONFIG_MAPPING["rmdt"] is RMDTConfig  # checkpoints still load as this checkout's classes


@pytest.mark.slow  # a fresh process per memory row
def test_speed_benchmark_quick_mode(tmp_path, capsys, load):
    """bench/speed.py --quick: every row of the table, ratios and the JSON, without the reference."""
    out = tmp_path / "speed.json"
    report = load("perf/speed").main(["--quick", "--threads", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert "| rmdt mrv, dropout 0.2 | 4,196 |" in text  # configs/tmaze/rate.yaml's model at --quick's sizes
    assert "| dropout 0.2 / dropout 0, rmdt mrv |" in text and "| checkpoint_segments on / off |" in text
    assert "| DT: rmdt / Hugging Face, attention dropout 0.1 |" in text
    assert json.loads(out.read_text())["best_s"] == report["best_s"]
    assert all(seconds > 0 for seconds in report["best_s"].values())
    assert report["matmul_flops"]["rmdt mrv, dropout 0.2"] > 0 and report["matmul_limit_gflops"]["square 1024"] > 0
    memory = report["memory"]["rmdt mrv, dropout 0.2"]
    assert memory["peak_gb"] >= memory["rss_before_gb"] > 0


def test_speed_benchmark_throughput_mode_reads_the_rate_config(tmp_path, capsys, load):
    """--throughput: RATE's T-Maze model of configs/tmaze/rate.yaml (--set overrides it), per precision."""
    out = tmp_path / "throughput.json"
    report = load("perf/speed").main(["--quick", "--throughput", "--batches", "1", "--precision", "no",
                                 "--set", "model.memory_update=replace", "--out", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1 threads; rmdt replace, dropout 0.2, 2 layers, d_model 16, ")
    assert lines[1].startswith("[  no] training ") and lines[2].startswith("[  no] evaluation ")
    assert "ms/step of 4 envs" in lines[2]  # evaluation.episodes, made tiny by --quick
    row = json.loads(out.read_text())["precision"]["no"]
    assert row == report["precision"]["no"] and row["train_s_per_batch"] > 0 and row["eval_env_steps_per_s"] > 0
    assert report["tokens_per_batch"] == 4 * 3 * (3 * 4 + 2 * 2)  # batch x N x (3K + 2 memory tokens)


def test_loader_benchmark_sampler_only_measures_every_data_and_start(tmp_path, capsys, load):
    out = tmp_path / "loader.json"
    load("perf/loader").main(["--sampler-only", "--tiny", "--seconds", "0.05", "--json", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["data", "starts", "windows/s", "us/window"] and len(lines) == 4
    report = json.loads(out.read_text())
    assert [(r["data"], r["starts"]) for r in report["sampler"]] == [
        ("T-Maze 200 episodes", "episode"), ("T-Maze 200 episodes", "uniform"),
        ("10,000 steps, obs 17, act 6", "uniform")]
    assert all(r["windows_per_s"] > 0 for r in report["sampler"]) and report["loader"] == []


@pytest.mark.slow
def test_loader_benchmark_tiny_run_prints_every_part(tmp_path, capsys, load):
    out = tmp_path / "loader.json"
    load("perf/loader").main(["--tiny", "--seconds", "0.02", "--repeats", "1", "--json", str(out)])
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert {r["data"] for r in report["loader"]} == {"T-Maze", "Atari", "Memory Maze"}
    assert {r["loader"] for r in report["loader"]} >= {"no prefetch", "1 thread", "2 threads", "2 processes",
                                                       "stacks on the host (before)"}
    assert all(r["windows_per_s"] > 0 for r in report["loader"]) and len(report["consumer"]) == 9
    assert [set(r["seconds"]) for r in report["step"]] == [{"pre-built batch", "sampler inline",
                                                            "prefetch 2 threads"}] * 3
    assert "sampler time hidden" in text and "windows/s eaten" in text


def test_loader_benchmark_measures_each_loader_and_step_mode(load):
    bench = load("perf/loader")
    data = bench.memory_maze_data(episodes=2, length=40)
    sampler = SegmentSampler(data, 4, 2, "uniform", seed=0)
    for make in (lambda: sampler, lambda: PrefetchingSampler(sampler, 1), lambda: bench.ProcessSampler(sampler, 1)):
        assert bench.loader_rate(make, batch_size=4, seconds=0.05) > 0
    config = load_config(CONFIG, ["model.obs_encoder=nature_cnn", "model.d_model=16", "model.n_layers=1",
                                  "model.n_heads=2", "data.context_len=4", "data.num_segments=2"])
    from rmdt.models.factory import build_policy

    times = bench.step_times(build_policy(config, data), sampler, batch_size=2, steps=1, repeats=2)
    assert set(times) == {"pre-built batch", "sampler inline", "prefetch 2 threads"}
    assert all(len(v) == 2 and min(v) > 0 for v in times.values())


def test_memoroid_benchmark_prints_ratios_to_lstm(capsys, load):
    load("perf/memoroid_vs_rnn").main(["--lengths", "4", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert "| layer | T=4 |" in lines
    assert any(line.startswith("| torch LSTM | ") and "(1.00x," in line for line in lines)
    assert sum(line.startswith("| ffm") for line in lines) == 2  # both scans


def test_rnn_resets_benchmark_compares_both_scans_and_they_agree(capsys, load):
    load("perf/rnn_resets").main(["--batch", "2", "--steps", "12", "--size", "4", "--mean-episode", "4",
                                  "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["gru", "lstm"]
    for line in lines:
        assert "packed (parallel)" in line and "step loop (sequential)" in line
        assert float(line.rsplit("max |difference| ", 1)[1]) < 1e-5


def test_tape_vs_segments_benchmark_tabulates_both_batchings(tiny, capsys, load):
    data = [o for o in tiny if o.startswith(("data.recipe_args", "data.root"))]
    load("perf/tape_vs_segments").main(["--steps", "1", "--set", *data, "data.tape_len=12", "data.context_len=4",
                                        "model.d_model=8", "model.memory_size=4", "model.context_size=2",
                                        "training.batch_size=2"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| config | batching | steps per batch (real) | ms per optimizer step | real steps/s |"
    assert lines[2].startswith("| configs/tmaze/ffm.yaml | tape | 24 (")
    assert lines[3].startswith("| configs/tmaze/ffm_segments.yaml | segments | 24 (")


def test_atari_benchmark_store_figures(capsys, load):
    load("perf/atari").store_figures(2500, seconds=0.05)
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("store: 2,500 steps") and rows[2].startswith("memory-mapped store")
    assert float(rows[2].split()[2].replace(",", "")) > 0 and rows[3].startswith("in RAM")


@pytest.mark.slow
def test_atari_benchmark_quick_run_prints_every_part(capsys, load):
    pytest.importorskip("ale_py")
    load("perf/atari").main(["--quick"])
    text = capsys.readouterr().out
    for part in ("store: 2,500 steps", "AtariEnvs (ale_py vector), 2 games", "gymnasium AtariPreprocessing",
                 "evaluation rollout, RATE-size RMDT", "training, RATE-size RMDT, batch 2 windows",
                 "DQN-Replay conversion, 2,000 real Breakout frames"):
        assert part in text, part


@pytest.mark.slow
def test_memory_maze_benchmark_quick_run(capsys, load):
    pytest.importorskip("dm_control")
    load("perf/memory_maze").main(["--steps", "4", "--envs", "1", "--reference", "1", "--reference-steps", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["env", "oracle", "eval", "random", "oracle"]
    assert float(lines[0].split()[1]) > 0 and "1 mazes x 4 steps" in lines[2]


# ---- experiments/ ----
def test_table_averages_seeds_per_model(tmp_path, capsys, load):
    for seed, rates in enumerate([(1.0, 0.5), (1.0, 1.0), (0.5, 0.5)]):
        name = "rmdt" if seed < 2 else "dt"
        report = {"results": [{"corridor_length": n, "success_rate": r} for n, r in zip((90, 900), rates)]}
        (tmp_path / f"{name}__{seed}" / "eval").mkdir(parents=True)
        (tmp_path / f"{name}__{seed}" / "eval" / "results.json").write_text(json.dumps(report))
    plot = tmp_path / "seeds.png"
    runs = [str(run) for run in sorted(tmp_path.iterdir())]
    load("experiments/tmaze_table").main([*runs, "--models", "rmdt", "dt", "--plot", str(plot)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| model | seeds | 90 | 900 |"
    assert lines[2] == "| rmdt | 2 | 1.00 (1.00-1.00) | 0.75 (0.50-1.00) |"  # in the order --models asks
    assert lines[3] == "| dt | 1 | 0.50 (0.50-0.50) | 0.50 (0.50-0.50) |"
    assert plot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_tmaze_seeds_script_trains_evaluates_and_skips_what_is_done(tiny, tmp_path):
    script = ["bash", str(BENCH / "experiments/tmaze_seeds.sh"), str(CONFIG), "0", "--", *tiny]
    env = {**os.environ, "PYTHON": sys.executable, "TAG": "tiny"}
    done = subprocess.run(script, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    run = tmp_path / "runs" / "results" / "tiny__0"
    assert done.returncode == 0, done.stderr + (tmp_path / "runs" / "results" / "tiny__0.train.log").read_text()
    assert done.stdout.strip() == "runs/results/tiny__0 done"
    assert [r["corridor_length"] for r in json.loads((run / "eval" / "results.json").read_text())["results"]] == [3, 12]
    again = subprocess.run(script, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.stdout.strip() == "runs/results/tiny__0 already evaluated: skipped"


# ---- analysis/ ----
def test_memory_drift_follows_every_boundary_and_measures_clue_separation(tmp_path, capsys, load):
    from rmdt.models import RMDTConfig, RMDTModel

    bench = load("analysis/tmaze_memory_drift")
    clue = np.array([1, -1] * 8)
    carried = torch.as_tensor(clue, dtype=torch.float32)[:, None] * torch.ones(16, 4) + 0.01 * torch.randn(16, 4)
    assert bench.separation(carried, clue) > 50  # two tight clusters far apart
    assert bench.separation(torch.randn(16, 4), np.array([1] * 8 + [-1] * 8)) < 2  # clue not in the memory
    torch.manual_seed(0)
    model = RMDTModel(RMDTConfig(obs_shape=[4], num_actions=4, context_len=3, memory_tokens=2, d_model=16,
                                 n_layers=1, n_heads=2))
    model.save_pretrained(tmp_path / "final")
    values, success = bench.drift(str(tmp_path), length=10, episodes=8, seed=1)
    assert len(values) == 3  # 11 steps at K=3: boundaries before steps 4, 7 and 10
    assert all(np.isfinite(values)) and 0 <= success <= 1
    bench.main([str(tmp_path), "--length", "10", "--episodes", "8", "--every", "1", "--plot", str(tmp_path / "d.png")])
    assert f"| {tmp_path.name} | " in capsys.readouterr().out and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_memory_drift_follows_elmur_banks_and_refuses_a_model_without_memory(tmp_path, load, tiny_policy):
    bench = load("analysis/tmaze_memory_drift")
    tiny_policy("elmur", memory_size=2).save_pretrained(tmp_path / "elmur" / "final")
    values, success = bench.drift(str(tmp_path / "elmur"), length=10, episodes=8, seed=1)
    assert len(values) == 3 and all(np.isfinite(values)) and 0 <= success <= 1
    j_old, j_in = bench.jacobians(str(tmp_path / "elmur"), episodes=8, seed=1)
    assert j_old > 0 and j_in > 0  # the banks after a segment depend on the banks before and on its steps
    tiny_policy("rmdt", memory_tokens=0).save_pretrained(tmp_path / "dt" / "final")
    with pytest.raises(SystemExit, match="carries no memory across segments"):
        bench.drift(str(tmp_path / "dt"), length=10, episodes=8, seed=1)
    tiny_policy("gru").save_pretrained(tmp_path / "gru" / "final")
    with pytest.raises(SystemExit, match="no segment memory"):
        bench.drift(str(tmp_path / "gru"), length=10, episodes=8, seed=1)


def test_decision_accuracy_splits_late_turns_from_the_rest(tiny, tmp_path, capsys, load):
    """Every oracle T-Maze episode ends with its one turn: the late-turn group counts exactly one step
    per episode that fits in a window, and no turn is early."""
    from rmdt.config import load_config
    from rmdt.data import load_config_data
    from rmdt.training import train

    config = load_config(CONFIG, tiny)
    train(config, run_dir=tmp_path / "run")
    bench = load("analysis/decision_accuracy")
    groups = bench.accuracy_groups(str(tmp_path / "run"), last=1, turns=(1, 3))
    lengths = load_config_data(config.data).episode_lengths
    fits = lengths <= config.data.context_len * config.data.num_segments  # episodes within one window
    assert groups["late turns"][0] == int(fits.sum()) > 0
    assert "early turns" not in groups and "late others" not in groups
    assert groups["early others"][0] == int(lengths[fits].sum()) - groups["late turns"][0]
    assert all(0 <= accuracy <= 1 for _, accuracy in groups.values())
    bench.main([f"{tmp_path / 'run'}/", "--last", "1", "--turns", "1", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| run | late turns | late others | early turns | early others |"
    late, early = groups["late turns"], groups["early others"]
    assert lines[2] == f"| run | {late[1]:.2f} ({late[0]}) | - | - | {early[1]:.2f} ({early[0]}) |"


def test_mrv_diagnosis_prints_every_probe_of_the_valve(tiny, capsys, load):
    load("analysis/mrv_diagnosis").main([str(CONFIG), *tiny, "model.memory_update=mrv", "--steps", "2",
                                         "--every", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["step", "loss", "dL/dmemory"] and len(lines) == 4
    for step, line in enumerate(lines[1:]):
        cells = line.split()
        assert int(cells[0]) == step and len(cells) == 8
        assert all(np.isfinite(float(c)) for c in cells[2:])  # the valve's Jacobians and slot cosine too


def test_mujoco_peers_trains_scores_and_resumes(load, tmp_path, capsys):
    """One rmdt DT row on a tiny recipe file: both targets scored and normalised, the speed and memory
    recorded, and a second call skips the finished run, but not the same run on another agent's data."""
    pytest.importorskip("stable_baselines3")
    script, out = load("experiments/mujoco_peers"), tmp_path / "rows.json"
    args = ["--tasks", "hopper", "--systems", "rmdt-dt", "--seeds", "0", "--steps", "3", "--episodes", "2",
            "--agent-steps", "128", "--medium-steps", "150", "--threads", "1", "--data-root", str(tmp_path),
            "--out", str(out)]
    script.main(args)
    (row,) = json.loads(out.read_text())
    assert (row["task"], row["label"], row["steps"]) == ("hopper", "rmdt-dt", 3)
    assert row["data"] == "hopper-medium-ppo128-m150-s0-v0.hdf5"
    assert row["scores"]["standard"]["target"] == 3600 and row["scores"]["best"]["target"] >= 0
    for score in row["scores"].values():
        low, high = score["normalised_ci95"]
        assert len(score["returns"]) == 2 and low <= score["normalised"] <= high
    assert row["ms_per_step"] > 0 and row["peak_rss_mb"] > 0
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    script.main(args)
    assert len(json.loads(out.read_text())) == 1  # not run again
    assert "| hopper-medium-ppo128-m150-s0 | rmdt-dt | 1 |" in capsys.readouterr().out
    script.main([*args, "--agent", "sac"])
    assert [r["data"] for r in json.loads(out.read_text())][1:] == ["hopper-medium-sac128-m150-s0-v0.hdf5"]


def test_the_d3rlpy_runner_parses_its_arguments_without_d3rlpy():
    """It runs under d3rlpy's own venv (docs/mujoco.md); here only its command line, which imports no d3rlpy."""
    done = subprocess.run([sys.executable, str(BENCH / "experiments/peers/d3rlpy_dt.py"), "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "--warmup-steps" in done.stdout and "--targets" in done.stdout
