"""Checkpoints and run configs written by an earlier rmdt (before the model and environment registries)
still load, act and evaluate to the numbers that version gave.

tests/fixtures/legacy_checkpoints/<name>/ holds a tiny run's ``final/`` directory, its ``config.yaml``,
``expected_eval.json`` (that version's ``evaluate.py`` report, checkpoint path removed) and
``expected_act.npy`` (its ``act`` outputs on the input sequence of ``act_outputs`` below).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rmdt.config import load_config
from rmdt.evaluation import evaluate_policy, load_policy

FIXTURES = Path(__file__).parent / "fixtures" / "legacy_checkpoints"
NAMES = ["rmdt", "ffm", "popgym_gru", "popgym_dt"]


def act_outputs(policy, batch: int = 3, steps: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    state = policy.initial_state(batch)
    last_action = torch.zeros(batch, dtype=torch.long)
    outputs = []
    with torch.no_grad():
        for _ in range(steps):
            obs = torch.as_tensor(rng.normal(size=(batch, *policy.config.obs_shape)), dtype=torch.float32)
            out, state = policy.act(state, obs, last_action, torch.zeros(batch), torch.ones(batch))
            outputs.append(out.numpy())
            last_action = out.argmax(-1)
    return np.stack(outputs)


@pytest.mark.parametrize("name", NAMES)
def test_legacy_checkpoint_acts_as_before(name):
    policy = load_policy(FIXTURES / name)
    np.testing.assert_allclose(act_outputs(policy), np.load(FIXTURES / name / "expected_act.npy"), rtol=0, atol=1e-6)


def _without_timing(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if not key.endswith("_per_second")} for row in rows]


@pytest.mark.parametrize("name", NAMES)
def test_legacy_checkpoint_evaluates_as_before(name):
    expected = json.loads((FIXTURES / name / "expected_eval.json").read_text())
    policy = load_policy(FIXTURES / name)
    overrides = {"episodes": expected["episodes"], "env_args": {}}
    if expected["env"] == "tmaze":
        overrides["env_args"]["corridor_lengths"] = expected["env_args"]["corridor_lengths"]
    report = evaluate_policy(policy, policy.config.evaluation, overrides, progress=False)
    assert report["env_args"] == expected["env_args"]
    assert _without_timing(report["results"]) == _without_timing(expected["results"])


@pytest.mark.parametrize("name", NAMES)
def test_legacy_run_config_loads(name):
    config = load_config(FIXTURES / name / "config.yaml")
    written = yaml.safe_load((FIXTURES / name / "config.yaml").read_text())
    assert config.seed == written["seed"] and config.data.recipe == written["data"]["recipe"]
    assert config.evaluation.env == written["evaluation"]["env"]
