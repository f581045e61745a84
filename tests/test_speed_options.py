"""Options that trade speed and memory: attention dropout apart from dropout, blocks without
feed-forward, the valve's own head count, recomputed segments and the compiled loss (the scans under
autocast: test_autocast_scans.py)."""

import pytest
import torch
from training_helpers import CONFIG, assert_gradients_reach

from rmdt.config import ConfigError, load_config
from rmdt.data.segments import Batch
from rmdt.models.transformer import Attention
from rmdt.training.trainer import LossForward

K, N = 4, 3


@pytest.fixture
def make_model(tiny_policy):
    """``make_model(**fields)``: this module's tiny RMDT, four heads so the valve can have fewer."""
    return tiny_policy.with_defaults("rmdt", obs_shape=[3], num_actions=5, context_len=K, n_layers=2, n_heads=4)


def make_batch(lengths=(12, 7, 3), seed=1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    B, L = len(lengths), N * K
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    return Batch(returns_to_go=torch.randn(B, L, generator=g), observations=torch.randn(B, L, 3, generator=g),
                 actions=torch.randint(0, 5, (B, L), generator=g), rewards=torch.zeros(B, L),
                 timesteps=torch.arange(L).expand(B, L).clone(), mask=mask)


def test_dropout_acts_on_the_output_and_attn_dropout_on_the_weights():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 16)
    residual_only = Attention(16, 4, dropout=0.5, attn_dropout=0.0)
    reference = residual_only.eval()(x)[0]
    out = residual_only.train()(x)[0]
    kept = out != 0
    assert 0 < kept.float().mean() < 1  # whole output entries dropped ...
    torch.testing.assert_close(out[kept], 2 * reference[kept])  # ... and the kept ones scaled, weights untouched
    weights_only = Attention(16, 4, dropout=0.0, attn_dropout=0.5)
    weights_only.load_state_dict(residual_only.state_dict())
    dropped = weights_only.train()(x)[0]
    assert not torch.allclose(dropped, reference) and (dropped != 0).all()


def test_blocks_without_feed_forward_and_valve_heads(make_model):
    full, lean = make_model(memory_update="mrv"), make_model(memory_update="mrv", feed_forward=False, mrv_heads=2)
    assert all(block.mlp is None and block.ln_2 is None for block in lean.blocks)
    mlp = sum(p.numel() for b in full.blocks for m in (b.mlp, b.ln_2) for p in m.parameters())
    assert sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in lean.parameters()) == mlp
    assert lean.mrv.n_heads == 2 and lean.blocks[0].attn.n_heads == 4
    loss, _ = lean.train().loss(make_batch())
    loss.backward()
    assert torch.isfinite(loss)
    assert_gradients_reach(lean)


@pytest.mark.parametrize("overrides", [dict(memory_update="mrv", memory_replay=2, grad_segments=2),
                                       dict(memory_update="gated", memory_noise=0.1)])
def test_checkpointed_segments_give_the_same_loss_and_gradients(overrides, make_model):
    """Recomputation in backward draws the same dropout masks (the RNG state is restored), and the
    replay counts and memory noise are drawn once, outside the recomputed segment."""
    model = make_model(dropout=0.2, attn_dropout=0.1, **overrides).train()
    batch = make_batch()

    def run(checkpointed: bool):
        model.checkpoint_segments = checkpointed
        model.zero_grad()
        torch.manual_seed(5)
        loss, _ = model.loss(batch)
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    (loss, grads), (loss_ck, grads_ck) = run(False), run(True)
    assert torch.equal(loss, loss_ck)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ck[name], grad, rtol=0, atol=0, msg=name)


def test_checkpointing_stores_less_for_backward(make_model):
    """Only each segment's inputs are kept: the tensors saved for backward shrink."""
    model = make_model(n_layers=3).train()
    batch = make_batch()

    def saved_bytes(checkpointed: bool) -> int:
        model.checkpoint_segments = checkpointed
        total = []
        def pack(t):
            total.append(t.numel() * t.element_size())
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model.loss(batch)
        return sum(total)

    assert saved_bytes(True) < 0.5 * saved_bytes(False)


def test_compiled_loss_is_what_the_trainer_calls(monkeypatch, make_model):
    compiled, steps = [], []
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: compiled.append((fn, mode)) or (
        lambda batch: ("compiled", batch)))
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    model = make_model()
    assert LossForward(model, compile=True)("b") == ("compiled", "b") and compiled == [(model.loss, None)]
    assert not steps
    graphs = LossForward(model, compile="cuda_graphs")  # graphs: each step marks the last one's outputs consumed
    assert graphs("b") == ("compiled", "b") and graphs("c") == ("compiled", "c")
    assert compiled[1] == (model.loss, "reduce-overhead")
    assert len(steps) == 2
    assert LossForward(model)(make_batch())[0].ndim == 0


def test_cuda_graphs_are_refused_off_cuda_before_the_run_folder_exists(tiny, tmp_path):
    from rmdt.training import train

    with pytest.raises(ConfigError, match="training.compile=cuda_graphs captures CUDA graphs, and this run is on cpu"):
        train(load_config(CONFIG, [*tiny, "training.compile=cuda_graphs"]), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="training.compile must be one of False, True, cuda_graphs, got 'graphs'"):
        load_config(CONFIG, ["training.compile=graphs"])


def test_config_options_are_checked(make_model):
    with pytest.raises(ValueError, match="RMDTConfig.attn_dropout"):
        make_model(attn_dropout=1.0)
    with pytest.raises(ValueError, match="RMDTConfig.mrv_heads"):
        make_model(mrv_heads=3)
    with pytest.raises(ConfigError, match=r"checkpoint_segments needs a model kind that recomputes segments "
                                          r"\(rmdt\), got .ffm."):
        load_config(CONFIG, ["model.kind=ffm", "training.checkpoint_segments=true"])
    assert load_config(CONFIG, ["training.checkpoint_segments=true", "training.compile=true"]).training.compile
