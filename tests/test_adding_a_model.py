"""The "Adding a model" guide works as written: its toy model, defined outside the package and
registered with one call, trains and evaluates through train.py and evaluate.py with ``--import``,
and no rmdt file names it."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "adding_a_model.md"


def guide_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.S)


@pytest.mark.slow
def test_guide_model_trains_and_evaluates_from_outside_the_package(tmp_path):
    (tmp_path / "toy_model.py").write_text(guide_blocks("python")[0])
    config = yaml.safe_load((ROOT / "configs" / "tmaze" / "quickstart.yaml").read_text())
    config["model"] = yaml.safe_load(guide_blocks("yaml")[0])["model"]
    config["data"].update(recipe_args={"episodes": 40, "min_length": 1, "max_length": 10, "seed": 1},
                          root=str(tmp_path / "data"), context_len=4)
    config["training"].update(steps=4, batch_size=8, warmup_steps=1, log_every=2, checkpoint_every=2, trackers=[])
    config["evaluation"].update(episodes=5, env_args={"corridor_lengths": [3]})
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(config))

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)

    trained = run(str(ROOT / "train.py"), "toy.yaml", "--import", "toy_model", "--run-dir", "runs/toy")
    assert trained.returncode == 0, trained.stderr
    written = json.loads((tmp_path / "runs/toy/final/config.json").read_text())
    assert written["model_type"] == "toy" and written["d_model"] == 32
    evaluated = run(str(ROOT / "evaluate.py"), "runs/toy", "--import", "toy_model")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((tmp_path / "runs/toy/eval/results.json").read_text())
    assert [row["corridor_length"] for row in report["results"]] == [3]
    assert report["results"][0]["episodes"] == 5

    without = run(str(ROOT / "evaluate.py"), "runs/toy")  # the kind is unknown unless its module is imported
    assert without.returncode == 2 and "toy" in without.stderr
    refused = run(str(ROOT / "train.py"), "toy.yaml", "--import", "toy_model", "model.memory_tokens=2")
    assert refused.returncode == 2 and "model.memory_tokens is a field of model kind rmdt" in refused.stderr
    missing = run(str(ROOT / "train.py"), "toy.yaml", "--import", "no_such_module")
    assert missing.returncode == 2 and "--import no_such_module" in missing.stderr


def test_no_rmdt_file_names_the_guide_model():
    sources = [p for p in (ROOT / "rmdt").rglob("*.py")] + [ROOT / "train.py", ROOT / "evaluate.py"]
    assert not [p for p in sources if "ToyModel" in p.read_text() or '"toy"' in p.read_text()]
