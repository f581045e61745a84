"""Today's RMDT computes the loss and gradients that the code of tests/fixtures/step_reference
computed, from the same weights on the same batch: batching the segments of a DT, skipping padded
rows and steps, cached masks and fused kernels reorganise the work, never the maths."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from rmdt.data.segments import Batch
from rmdt.models import RMDTConfig, RMDTModel
from rmdt.models.rmdt import model as rmdt_model

FIXTURE = Path(__file__).parent / "fixtures" / "step_reference"
CASES = torch.load(FIXTURE / "cases.pt", weights_only=True)


def make_module():
    spec = importlib.util.spec_from_file_location("step_reference_make", FIXTURE / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_of(case) -> RMDTModel:
    model = RMDTModel(RMDTConfig(**case["config"]))
    model.load_state_dict(case["state_dict"])
    return model


def test_the_fixture_holds_every_case_of_its_script():
    assert list(CASES) == list(make_module().CASES)


@pytest.mark.parametrize("compact", [True, False], ids=["padding skipped", "everything computed"])
@pytest.mark.parametrize("name", list(CASES))
def test_loss_and_gradients_match_the_reference(name, compact, monkeypatch):
    """On CPU padded rows and steps are skipped; on other devices (here: compaction off) all is computed."""
    if not compact:
        monkeypatch.setattr(rmdt_model, "compaction", lambda mask, K: None)
    case = CASES[name]
    loss, grads = make_module().run(model_of(case), Batch(**case["batch"]))
    assert torch.allclose(loss, case["loss"], rtol=0, atol=1e-5), (float(loss), float(case["loss"]))
    assert grads.keys() == case["grads"].keys()
    for key, grad in grads.items():
        assert torch.allclose(grad, case["grads"][key], rtol=1e-4, atol=1e-5), key


@pytest.mark.parametrize("name", ["rmdt", "dt"])
def test_a_change_of_the_maths_is_caught(name):
    """The comparison is sharp enough to see a perturbation of one weight by 1e-3."""
    case = CASES[name]
    model = model_of(case)
    with torch.no_grad():
        model.head.weight[0, 0] += 1e-3
    _, grads = make_module().run(model, Batch(**case["batch"]))
    assert not all(torch.allclose(g, case["grads"][k], rtol=1e-4, atol=1e-5) for k, g in grads.items())
