"""Faults a run must survive or refuse clearly (issue 14): non-finite training, damaged checkpoints,
changed settings on resume, full disks, hung ranks, and the optimizer's weight-decay groups."""
from pathlib import Path

import pytest
import torch

from rmdt.config import load_config
from rmdt.models import RecurrentConfig, RecurrentModel, RMDTConfig, RMDTModel
from rmdt.training.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tmaze" / "quickstart.yaml"


def decayed_names(model):
    optimizer, _ = make_optimizer(model, load_config(CONFIG))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["weight_decay"] > 0: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}
    assert groups[True].isdisjoint(groups[False])
    assert groups[True] | groups[False] == set(names.values())
    return groups[True]


@pytest.mark.parametrize("encoder, obs_shape", [("mlp", [4]), ("nature_cnn", [4, 84, 84])])
def test_weight_decay_by_shape_and_module_type_on_rmdt(encoder, obs_shape):
    model = RMDTModel(RMDTConfig(obs_shape=obs_shape, num_actions=3, context_len=3, memory_tokens=2, d_model=16,
                                 n_heads=2, n_layers=1, obs_encoder=encoder))
    decayed = decayed_names(model)
    encoder_matrices = {n for n, p in model.named_parameters() if n.startswith("embed_obs") and p.ndim >= 2}
    assert encoder_matrices and encoder_matrices <= decayed  # the name rule left the encoders undecayed
    assert {"blocks.0.attn.query.weight", "blocks.0.mlp.fc.weight", "head.weight", "embed_return.proj.weight"} <= decayed
    for name in ("memory", "position.weight", "embed_action.embed.weight", "blocks.0.ln_1.weight", "head.bias"):
        assert name not in decayed, name


def test_weight_decay_on_a_recurrent_model():
    model = RecurrentModel(RecurrentConfig(layer="lru", obs_shape=[4], num_actions=3, d_model=16, n_heads=2,
                                           n_layers=1, memory_size=4))
    decayed = decayed_names(model)
    assert {"embed_obs.net.0.weight", "blocks.0.memory.B.weight", "blocks.0.mlp.0.weight"} <= decayed
    for name in ("no_action", "embed_action.embed.weight", "blocks.0.memory.nu_log", "blocks.0.memory.D",
                 "blocks.0.ln_1.weight", "ln_f.bias"):
        assert name not in decayed, name
