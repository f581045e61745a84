"""bench/gpu_check.py keeps running (its CPU tiny mode) without minari or ale_py, as on the GPU machine."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rmdt.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"
# minari and ale_py are not installed where the check runs: make them unimportable here too.
NO_OPTIONAL = ("import runpy, sys; sys.modules['minari'] = None; sys.modules['ale_py'] = None; "
               "sys.argv = [sys.argv[1]] + sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.mark.slow
def test_tiny_cpu_run_covers_every_model_and_precision_without_minari_or_ale(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "-c", NO_OPTIONAL, str(SCRIPT), "--device", "cpu", "--tiny",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert not [r for r in rows if "error" in r or r["problems"]]
    eager = {(r["env"], r["model"], r["precision"]) for r in rows if not r["compile"]}
    assert eager == {(e, k, p) for e in ("tmaze", "atari") for k in ("dt", *MODELS) for p in ("fp32", "bf16")}
    assert {(r["env"], r["model"]) for r in rows if r["compile"]} == {("tmaze", "rmdt"), ("atari", "rmdt")}
    for row in rows:
        assert len(row["losses"]) == report["steps"] and row["step_ms"] > 0 and row["flops_per_step"] > 0
    assert all(r["act_steps_per_s"] > 0 for r in rows if not r["compile"])
    assert "loss first->last" in done.stdout and "wrote" in done.stdout


def test_checks_flag_divergent_and_non_finite_losses(load_script):
    module = load_script(SCRIPT.relative_to(ROOT).as_posix())
    fp32 = {"precision": "fp32", "compile": False, "losses": [1.4, 1.2, 1.0, 0.8]}
    assert module.check(fp32, fp32) == []
    assert module.check({**fp32, "precision": "bf16", "losses": [1.41, 1.2, 1.0, 0.82]}, fp32) == []
    assert "first loss" in module.check({**fp32, "precision": "bf16", "losses": [1.6, 1.2, 1.0, 0.8]}, fp32)[0]
    assert "mean loss" in module.check({**fp32, "precision": "fp16", "losses": [1.4, 1.2, 1.0, 1.3]}, fp32)[0]
    assert "non-finite" in module.check({**fp32, "precision": "fp16", "losses": [1.4, float("nan"), 1.0, 0.8]}, fp32)[0]


def test_the_sweep_is_the_popgym_easy_table_packed_on_the_gpu(load_script):
    """The sweep part (run on a GPU only): its command line is the memory-suite sweep's POPGym tasks, every
    model, 3 seeds, each run holding one CPU and its share of the GPU."""
    from rmdt.presets import PRESETS
    from rmdt.sweep import load_sweep
    from rmdt.sweep.__main__ import parser

    module = load_script(SCRIPT.relative_to(ROOT).as_posix())
    args = module.parse_args(["--device", "cuda", "--sweep-gpus-per-run", "0.25", "--sweep-out", "/tmp/s"])
    assert args.sweep and args.rows
    parsed = parser().parse_args(module.sweep_args(args))
    assert (parsed.gpus_per_run, parsed.cpus_per_run, parsed.out) == (0.25, 1, "/tmp/s")
    runs = load_sweep(parsed.sweep, parsed.tasks, parsed.models, parsed.seeds).runs
    assert len(runs) == 9 * 10 * 3 and {r.task.split("/")[0] for r in runs} == {"popgym"}
    assert {r.model for r in runs} <= set(PRESETS) and {r.seed for r in runs} == {0, 1, 2}
    assert not module.parse_args(["--device", "cpu", "--tiny"]).sweep  # the CPU test runs the rows only
    assert module.parse_args(["--device", "cpu", "--no-rows", "--sweep"]).rows is False


def test_cuda_graph_rows_are_read_against_their_goals(load_script):
    gpu_check = load_script("bench/gpu_check.py")
    rows = [{"env": "tmaze", "model": "rmdt", "precision": "fp32", "compile": "cuda_graphs", "step_ms": 4.2},
            {"env": "atari", "model": "rmdt", "precision": "bf16", "compile": "cuda_graphs", "step_ms": 9.0,
             "mfu": 0.12},
            {"env": "atari", "model": "rmdt", "precision": "bf16", "compile": True, "step_ms": 9.0, "mfu": 0.5},
            {"env": "tmaze", "model": "rmdt", "precision": "bf16", "compile": "cuda_graphs", "error": "boom"}]
    assert gpu_check.goal_lines(rows) == ["goal: T-Maze RMDT fp32 step 4.20 ms (within 5 ms)",
                                          "goal: Atari RMDT bf16 MFU 12.0% (below 15%)"]
