"""ELMUR: the LRU write, shapes and gradients, causality, memory across segments, padding, act == forward
across segment boundaries (also with rows at different steps), resets, the probe's hook, attention
maps, checkpoints and config errors, and a run through train.py and evaluate.py."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import assert_gradients_reach

from rmdt.config import load_config
from rmdt.data.segments import Batch
from rmdt.evaluation import load_policy
from rmdt.models.elmur import ELMURModel, lru_write

K, N, OBS = 3, 4, 4
ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [dict(), dict(lru_blend_alpha=0.6), dict(memory_size=1, n_layers=1),
            dict(position_embedding="sinusoidal", relative_range=2)]
VARIANT_IDS = ["replace", "blend", "one-slot", "sinusoidal-short-range"]


@pytest.fixture
def make_model(tiny_policy):
    """A tiny ELMUR: 2 layers of 2 slots, so a window of 4 segments rewrites slots (LRU) in every layer."""
    return tiny_policy.with_defaults("elmur", obs_shape=[OBS], num_actions=5, n_layers=2, memory_size=2)


def make_batch(config, batch_size=3, seed=0, length=N * K) -> Batch:
    g = torch.Generator().manual_seed(seed)
    actions = (torch.randint(0, config.num_actions, (batch_size, length), generator=g) if config.num_actions
               else torch.rand(batch_size, length, config.act_dim, generator=g) * 2 - 1)
    return Batch(returns_to_go=torch.randn(batch_size, length, generator=g),
                 observations=torch.randn(batch_size, length, OBS, generator=g), actions=actions,
                 rewards=torch.zeros(batch_size, length), timesteps=torch.arange(length).expand(batch_size, length),
                 mask=torch.ones(batch_size, length, dtype=torch.bool))


def run(model, batch, **kwargs):
    return model(batch.returns_to_go, batch.observations, batch.actions, batch.mask, **kwargs)


def rollout(model, batch, state=None, steps=None):
    """act over the batch's steps; (outputs (B, steps, ...), final state)."""
    state = model.initial_state(batch.returns_to_go.shape[0]) if state is None else state
    got = []
    for t in range(steps or batch.returns_to_go.shape[1]):
        last_action = batch.actions[:, t - 1] if t else torch.zeros_like(batch.actions[:, 0])
        output, state = model.act(state, batch.observations[:, t], last_action, batch.rewards[:, t],
                                  batch.returns_to_go[:, t])
        got.append(output)
    return torch.stack(got, dim=1), state


def test_lru_write_fills_unwritten_slots_in_order_then_blends_the_least_recent():
    memory, slot_time = torch.zeros(1, 3, 2), torch.full((1, 3), -1)
    written = []
    for now in (10, 20, 30, 40, 50):
        candidate = torch.full((1, 3, 2), float(now))
        memory, slot_time = lru_write(memory, slot_time, candidate, torch.tensor([now]), alpha=0.25)
        written.append(slot_time[0].tolist())
    assert written == [[10, -1, -1], [10, 20, -1], [10, 20, 30], [40, 20, 30], [40, 50, 30]]
    # empty slots take their write whole; a full bank's oldest blends 0.25 of the new one in
    assert memory[0, :, 0].tolist() == [0.25 * 40 + 0.75 * 10, 0.25 * 50 + 0.75 * 20, 30.0]
    # rows choose their own slot
    memory, slot_time = lru_write(torch.zeros(2, 2, 1), torch.tensor([[5, 3], [-1, 7]]), torch.ones(2, 2, 1),
                                  torch.tensor([9, 9]), alpha=1.0)
    assert slot_time.tolist() == [[5, 9], [9, 7]] and memory[..., 0].tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize("actions", [dict(num_actions=5), dict(act_dim=2)], ids=["discrete", "continuous"])
def test_shapes_loss_and_gradients_reach_every_parameter(actions, make_model):
    model = make_model(**actions).train()
    batch = make_batch(model.config)
    out = run(model, batch)
    assert out.action_preds.shape == (3, N * K, 5 if model.discrete else 2)
    assert out.memory.shape == (3, 2, 2, 16) and out.slot_time.tolist() == [[[26, 35]] * 2] * 3
    loss, metrics = model.loss(batch)
    loss.backward()
    assert loss.ndim == 0 and "loss" in metrics
    assert_gradients_reach(model)


def test_window_must_be_whole_segments(make_model):
    model = make_model()
    batch = make_batch(model.config, length=N * K - 1)
    with pytest.raises(ValueError, match="not a multiple of context_len K=3"):
        run(model, batch)


@pytest.mark.parametrize("t", [1, 3, 5, 8])
@pytest.mark.parametrize("name", ["returns_to_go", "observations", "actions"])
def test_future_tokens_do_not_change_earlier_actions(t, name, make_model):
    model = make_model()
    batch = make_batch(model.config)
    base = run(model, batch).action_preds
    changed = dict(batch.__dict__)
    g = torch.Generator().manual_seed(1)
    value = changed[name].clone()
    value[:, t + 1:] = (torch.randint(0, 5, value[:, t + 1:].shape, generator=g) if name == "actions"
                        else torch.randn(value[:, t + 1:].shape, generator=g))
    changed[name] = value
    future = run(model, Batch(**changed)).action_preds
    torch.testing.assert_close(future[:, :t + 1], base[:, :t + 1], atol=1e-6, rtol=0)
    assert (future[:, t + 1:] - base[:, t + 1:]).abs().max() > 1e-4


@pytest.mark.parametrize("t", [1, 2, 7])
def test_action_at_t_is_not_seen_by_its_own_prediction(t, make_model):
    model = make_model()
    batch = make_batch(model.config)
    base = run(model, batch).action_preds
    actions = batch.actions.clone()
    actions[:, t] = (actions[:, t] + 1) % 5
    changed = run(model, Batch(**{**batch.__dict__, "actions": actions})).action_preds
    torch.testing.assert_close(changed[:, :t + 1], base[:, :t + 1], atol=1e-6, rtol=0)
    assert (changed[:, t + 1] - base[:, t + 1]).abs().max() > 1e-4


@pytest.mark.parametrize("grad_segments", [None, 1])
def test_memory_carries_segment_1_to_the_last_and_gradients_cross_unless_truncated(grad_segments, make_model):
    model = make_model(grad_segments=grad_segments)
    batch = make_batch(model.config)
    observations = batch.observations.clone().requires_grad_(True)
    preds = model(batch.returns_to_go, observations, batch.actions, batch.mask).action_preds
    shifted = observations.detach().clone()
    shifted[:, :K] += 1.0
    with torch.no_grad():
        moved = model(batch.returns_to_go, shifted, batch.actions, batch.mask).action_preds
    assert (moved[:, -K:] - preds[:, -K:]).abs().max() > 1e-4  # the last segment reads what the first wrote
    preds[:, -K:].sum().backward()
    reach = observations.grad[:, :K].abs().max()
    assert reach > 0 if grad_segments is None else reach == 0


def test_a_window_continued_from_the_memory_of_the_previous_one_equals_one_long_window(make_model):
    model = make_model(lru_blend_alpha=0.5)
    batch = make_batch(model.config)
    whole = run(model, batch)
    parts = [{name: getattr(batch, name)[:, cut] for name in ("returns_to_go", "observations", "actions")}
             for cut in (slice(0, 2 * K), slice(2 * K, None))]
    first = model(**parts[0])
    second = model(**parts[1], memory=(first.memory, first.slot_time))
    torch.testing.assert_close(torch.cat([first.action_preds, second.action_preds], 1), whole.action_preds,
                               atol=1e-5, rtol=0)
    assert torch.equal(second.slot_time, whole.slot_time)


def test_padding_changes_no_real_step_and_a_segment_of_padding_writes_nothing(make_model):
    model = make_model()
    batch = make_batch(model.config)
    lengths = torch.tensor([N * K, 2 * K + 1, K])
    mask = torch.arange(N * K)[None] < lengths[:, None]
    padded = Batch(**{**batch.__dict__, "mask": mask})
    noisy = dict(padded.__dict__)
    for name in ("returns_to_go", "observations"):
        value = noisy[name].clone()
        value[~mask] = 5 * torch.randn(value[~mask].shape) + 2
        noisy[name] = value
    a, b = run(model, padded), run(model, Batch(**noisy))
    torch.testing.assert_close(a.action_preds[mask], b.action_preds[mask], atol=1e-6, rtol=0)
    # the last row's episode ends in its first segment: the later segments leave its banks as they were
    first = model(*(getattr(batch, name)[2:, :K] for name in ("returns_to_go", "observations", "actions")))
    torch.testing.assert_close(a.memory[2], first.memory[0], atol=1e-6, rtol=0)
    assert a.slot_time[2].tolist() == first.slot_time[0].tolist() == [[8, -1]] * 2


@pytest.mark.parametrize("actions", [dict(num_actions=5), dict(act_dim=2)], ids=["discrete", "continuous"])
@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_act_step_by_step_matches_forward_across_segment_boundaries(actions, variant, make_model):
    model = make_model(**actions, **variant)
    batch = make_batch(model.config, batch_size=4)
    with torch.no_grad():
        expected = run(model, batch)
    got, state = rollout(model, batch)
    torch.testing.assert_close(got, expected.action_preds, atol=1e-5, rtol=0)
    assert state.step.tolist() == [K] * 4 and state.segment.tolist() == [N - 1] * 4


def test_rows_reset_at_different_steps_act_as_their_own_episodes(make_model):
    """Each row restarts at its own step (reset of single rows); every row's outputs after its restart
    equal a forward pass over its new episode alone."""
    model = make_model(lru_blend_alpha=0.5)
    batch = make_batch(model.config, batch_size=3, length=N * K + 5)
    restart = [0, 4, 5]  # row r starts its second episode at this step (row 0: never)
    state, got = model.initial_state(3), []
    for t in range(N * K + 5):
        done = [bool(start) and t == start for start in restart]
        state = model.reset(state, torch.tensor(done)) if any(done) else state
        first = [t == start for start in restart]
        last_action = torch.where(torch.tensor(first), 0, batch.actions[:, t - 1] if t else 0)
        output, state = model.act(state, batch.observations[:, t], last_action, batch.rewards[:, t],
                                  batch.returns_to_go[:, t])
        got.append(output)
    got = torch.stack(got, dim=1)
    with torch.no_grad():
        for row, start in enumerate(restart):
            episode = {name: getattr(batch, name)[row:row + 1, start:start + N * K]
                       for name in ("returns_to_go", "observations", "actions")}
            expected = model(**episode).action_preds
            torch.testing.assert_close(got[row:row + 1, start:start + N * K], expected, atol=1e-5, rtol=0)


def test_memory_hook_sees_every_layers_bank_at_each_boundary_and_zeroing_it_changes_later_steps(make_model):
    model = make_model()
    batch = make_batch(model.config, batch_size=2)
    intact, _ = rollout(model, batch)
    seen = []

    def zero(memory):
        seen.append(tuple(memory.shape))
        return torch.zeros_like(memory)

    model.set_memory_hook(zero)
    zeroed, _ = rollout(model, batch)
    model.set_memory_hook(None)
    assert seen == [(2, 4, 16)] * (N - 1)  # 2 layers x 2 slots, at the three boundaries
    torch.testing.assert_close(zeroed[:, :K], intact[:, :K], atol=0, rtol=0)
    assert (zeroed[:, K:] - intact[:, K:]).abs().max() > 1e-4
    again, _ = rollout(model, batch)
    torch.testing.assert_close(again, intact, atol=0, rtol=0)


def test_output_attentions_place_read_self_and_write_maps_in_the_segment_layout_and_change_nothing(make_model):
    model = make_model()
    batch = make_batch(model.config)
    mask = torch.arange(N * K)[None] < torch.tensor([[N * K], [K + 2], [N * K]])
    batch = Batch(**{**batch.__dict__, "mask": mask})
    plain = run(model, batch)
    out = run(model, batch, output_attentions=True)
    torch.testing.assert_close(out.action_preds, plain.action_preds, atol=1e-5, rtol=0)
    M, T = 2, 3 * K  # [bank M ; (R, o, a) x K ; write M]
    assert [tuple(w.shape) for w in out.attentions] == [(3, N, 2, 2 * M + T, 2 * M + T)] * 2
    w = out.attentions[0]
    tokens, write = slice(M, M + T), slice(M + T, None)
    ones = torch.ones(3, N, 2)
    torch.testing.assert_close(w[..., tokens, :M].sum(-1), ones[..., None].expand(-1, -1, -1, T), atol=1e-5, rtol=0)
    torch.testing.assert_close(w[..., tokens, tokens].sum(-1), ones[..., None].expand(-1, -1, -1, T), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(w[..., write, :].sum(-1), ones[..., None].expand(-1, -1, -1, M), atol=1e-5, rtol=0)
    assert (w[..., :M, :] == 0).all() and (w[..., tokens, write] == 0).all() and (w[..., write, :M] == 0).all()
    assert (w[..., tokens, tokens][..., torch.ones(T, T).triu(1).bool()] == 0).all()  # no token sees a later one
    second = w[1, 1, :, write, tokens]  # row 1's second segment: its steps after K+2 are padding
    assert (second[..., 6:] == 0).all() and (second[..., :6] > 0).all()
    allowed = model.attention_mask(mask[:, K:2 * K])[:, 0]
    assert ((w[:, 1].sum(1) > 0) <= allowed).all()  # nothing outside what the model may attend


def test_attention_export_of_an_elmur_rollout_equals_its_window_maps(make_model):
    from rmdt.evaluation.attention import episode_maps, memory_summary, window_maps
    from rmdt.evaluation.rollout import Episode

    model = make_model()
    batch = make_batch(model.config, batch_size=1)
    window = window_maps(model, batch.returns_to_go, batch.observations, batch.actions)[0]
    episode = Episode(observations=batch.observations[0].numpy(), actions=batch.actions[0].numpy(),
                      rewards=batch.rewards[0].numpy(), returns_to_go=batch.returns_to_go[0].numpy(),
                      length=N * K + 1)  # the episode went on: every segment's action and write ran
    stepwise = episode_maps(model, [episode])[0]
    np.testing.assert_allclose(stepwise.weights, window.weights, atol=1e-6)
    assert window.token_label[:2].tolist() == ["m0", "m1"] and not window.computed[:, :2].any()
    read, write = memory_summary(window)
    np.testing.assert_allclose(read.sum(-1), 1, atol=1e-5)  # a token's read is a softmax over the bank
    np.testing.assert_allclose(write.sum(-1), 1, atol=1e-5)  # a write slot's attention over the tokens


def test_save_load_round_trip(tmp_path, make_model):
    model = make_model(act_dim=2, lru_blend_alpha=0.7, obs_mean=[0.5, 0.0, 1.0, 0.0], obs_std=[2.0, 1.0, 1.0, 1.0])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(tmp_path)
    loaded = load_policy(tmp_path)
    assert isinstance(loaded, ELMURModel) and loaded.config.lru_blend_alpha == 0.7
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    batch = make_batch(model.config)
    with torch.no_grad():
        torch.testing.assert_close(run(loaded, batch).action_preds, run(model, batch).action_preds)


@pytest.mark.parametrize("field, overrides", [("memory_size", dict(memory_size=0)),
                                              ("lru_blend_alpha", dict(lru_blend_alpha=0.0)),
                                              ("d_model", dict(d_model=15)),
                                              ("relative_range", dict(relative_range=0)),
                                              ("position_embedding", dict(position_embedding="rope"))])
def test_bad_config_names_the_field(field, overrides, make_model):
    with pytest.raises(ValueError, match=f"ELMURConfig.{field}"):
        make_model(**overrides)


@pytest.mark.slow
def test_trains_and_evaluates_through_the_scripts(tiny, tmp_path, load_script):
    config, run, out = ROOT / "configs" / "tmaze" / "elmur.yaml", tmp_path / "run", tmp_path / "report.json"
    overrides = [o for o in tiny if not o.startswith("model.memory_tokens")] + ["model.memory_size=2"]
    assert load_config(config, overrides).model.kind == "elmur"
    assert load_script("train.py").main([str(config), *overrides, "--run-dir", str(run)]) == 0
    assert isinstance(load_policy(run / "final"), ELMURModel)
    assert load_script("evaluate.py").main([str(run), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [row["corridor_length"] for row in rows] == [3, 12] and all(0 <= row["success_rate"] <= 1 for row in rows)
