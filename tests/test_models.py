"""RMDT / DT: shapes, causality, memory, gradients, padding, act == forward, checkpoints, config."""
import json

import pytest
import torch
from clue_task import clue_batch

from rmdt.data.segments import Batch
from rmdt.models import RMDTConfig, RMDTModel, hidden_cache
from rmdt.models.rmdt import model as rmdt_model
from rmdt.models.rmdt import segment_mask

K, N, OBS = 4, 3, 3  # context length, segments per window, observation size


def make_config(**overrides) -> RMDTConfig:
    args = dict(obs_shape=[OBS], num_actions=5, context_len=K, memory_tokens=2, d_model=16, n_layers=2,
                n_heads=2, dropout=0.0, initializer_range=0.2)  # large init: effects well above rounding
    if overrides.get("act_dim") is not None:
        args["num_actions"] = None
    args.update(overrides)
    return RMDTConfig(**args)


@pytest.fixture
def make_model(tiny_policy):
    """``make_model(**fields)``: this module's tiny RMDT (no dropout: outputs compared exactly)."""
    return tiny_policy.with_defaults("rmdt", obs_shape=[OBS], num_actions=5, context_len=K, n_layers=2, dropout=0.0)

def make_batch(config: RMDTConfig, batch_size: int = 3, lengths=None, seed: int = 1) -> Batch:
    """Random (B, N*K) windows; ``lengths`` real steps per row, the rest zeroed padding."""
    g = torch.Generator().manual_seed(seed)
    B, L = batch_size, N * K
    if config.num_actions is not None:
        actions = torch.randint(0, config.num_actions, (B, L), generator=g)
    else:
        actions = torch.rand(B, L, config.act_dim, generator=g) * 2 - 1
    mask = torch.ones(B, L, dtype=torch.bool)
    if lengths is not None:
        mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    batch = Batch(returns_to_go=torch.randn(B, L, generator=g),
                  observations=torch.randn(B, L, *config.obs_shape, generator=g),
                  actions=actions, rewards=torch.zeros(B, L),
                  timesteps=torch.arange(L).expand(B, L).clone(), mask=mask)
    for value in (batch.returns_to_go, batch.observations, batch.actions, batch.rewards, batch.timesteps):
        value[~mask] = 0
    return batch


def run(model, batch, **kw):
    return model(batch.returns_to_go, batch.observations, batch.actions, batch.mask, timesteps=batch.timesteps, **kw)


def perturbed(batch: Batch, name: str, steps, num_actions=None, seed: int = 7) -> Batch:
    """A copy of ``batch`` whose field ``name`` is changed at ``steps`` (a slice or index list)."""
    g = torch.Generator().manual_seed(seed)
    fields = {name: value.clone() for name, value in batch.__dict__.items()}
    value = fields[name]
    if name == "actions" and num_actions is not None:
        value[:, steps] = (value[:, steps] + 1) % num_actions
    else:
        value[:, steps] = value[:, steps] + 1 + torch.rand(value[:, steps].shape, generator=g)
    return Batch(**fields)


ACTION_KINDS = [dict(num_actions=5), dict(act_dim=2)]
MEMORY_KINDS = [dict(memory_tokens=2, memory_update="replace"), dict(memory_tokens=2, memory_update="mrv"),
                dict(memory_tokens=2, memory_update="mrv_residual"),
                dict(memory_tokens=2, memory_update="gated"), dict(memory_tokens=0),
                dict(memory_tokens=2, cache_len=5), dict(memory_tokens=0, cache_len=2 * 3 * K)]
MEMORY_IDS = ["replace", "mrv", "mrv_residual", "gated", "dt", "cache", "trxl"]


@pytest.mark.parametrize("action_kind", ACTION_KINDS, ids=["discrete", "continuous"])
@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
def test_shapes_and_loss(action_kind, memory_kind, make_model):
    model = make_model(**action_kind, **memory_kind)
    batch = make_batch(model.config)
    out = run(model, batch)
    width = action_kind.get("num_actions") or action_kind.get("act_dim")
    assert out.action_preds.shape == (3, N * K, width)
    assert out.memory.shape == (3, memory_kind["memory_tokens"], 16)
    loss, metrics = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    assert metrics and all(isinstance(v, torch.Tensor) and not v.requires_grad for v in metrics.values())
    if model.discrete:
        assert set(metrics) == {"loss", "action_accuracy"}
    else:
        assert out.action_preds.abs().max() <= 1  # tanh head


def test_window_must_be_whole_segments(make_model):
    model = make_model()
    batch = make_batch(model.config)
    with pytest.raises(ValueError, match="context_len"):
        model(batch.returns_to_go[:, :-1], batch.observations[:, :-1], batch.actions[:, :-1])


@pytest.mark.parametrize("memory_tokens", [0, 2])
def test_segment_mask_matches_the_rules(memory_tokens):
    """An independent, loop-by-loop statement of who sees whom in [read M ; (R, o, a) x K ; write M]."""
    M, k = memory_tokens, 3
    step_mask = torch.tensor([[True, True, True], [True, True, False], [False, False, False]])
    got = segment_mask(step_mask, M)
    T = 2 * M + 3 * k
    assert got.shape == (3, 1, T, T) and got.dtype == torch.bool
    for b in range(3):
        def kind(p):
            return "read" if p < M else "traj" if p < M + 3 * k else "write"

        def real(p):
            return kind(p) != "traj" or bool(step_mask[b, (p - M) // 3])

        for i in range(T):
            for j in range(T):
                if kind(i) == "read":
                    expected = kind(j) == "read"
                elif kind(i) == "traj":
                    expected = kind(j) == "read" or kind(j) == "traj" and j <= i and real(j)
                else:
                    expected = real(j)
                expected = expected or i == j  # a padded query keeps itself: never an empty row
                assert bool(got[b, 0, i, j]) == expected, (b, i, j)


def test_memory_retention_valve_is_normalised_cross_attention_from_old_memory_to_relu_write(make_model):
    model = make_model(memory_tokens=3, memory_update="mrv", n_heads=2)
    memory, write = torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    mrv = model.mrv
    q = mrv.query(memory).view(2, 3, 2, 8).transpose(1, 2)
    k, v = (t.view(2, 3, 2, 8).transpose(1, 2) for t in mrv.key_value(write.relu()).chunk(2, dim=-1))
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
    expected = model.mrv_norm(mrv.proj((weights @ v).transpose(1, 2).reshape(2, 3, 16)))
    torch.testing.assert_close(model._update_memory(memory, write), expected, atol=1e-6, rtol=0)
    replace = make_model(memory_tokens=3, memory_update="replace")
    assert replace._update_memory(memory, write) is write


def test_gated_update_interpolates_between_old_memory_and_write(make_model):
    model = make_model(memory_tokens=3, memory_update="gated")
    memory, write = torch.randn(2, 3, 16), torch.randn(2, 3, 16)
    with torch.no_grad():
        model.gate.weight.zero_()
        model.gate.bias.fill_(-30.0)  # gate closed: the memory is kept
        torch.testing.assert_close(model._update_memory(memory, write), memory)
        model.gate.bias.fill_(30.0)  # gate open: the write replaces it
        torch.testing.assert_close(model._update_memory(memory, write), write)
        model.gate.bias.zero_()
        torch.testing.assert_close(model._update_memory(memory, write), (memory + write) / 2)


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
@pytest.mark.parametrize("t", [1, 3, 4, 6])
@pytest.mark.parametrize("name", ["returns_to_go", "observations", "actions"])
def test_future_tokens_do_not_change_earlier_actions(memory_kind, t, name, make_model):
    model = make_model(**memory_kind)
    batch = make_batch(model.config)
    base = run(model, batch).action_preds
    # Perturb every step after t: outputs up to t stay, later ones move.
    future = run(model, perturbed(batch, name, slice(t + 1, None), num_actions=5)).action_preds
    torch.testing.assert_close(future[:, :t + 1], base[:, :t + 1], atol=1e-6, rtol=0)
    assert (future[:, t + 1:] - base[:, t + 1:]).abs().max() > 1e-4


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
@pytest.mark.parametrize("t", [1, 5, 9])
def test_action_at_t_is_not_seen_by_its_own_prediction(memory_kind, t, make_model):
    model = make_model(**memory_kind)
    batch = make_batch(model.config)
    base = run(model, batch).action_preds
    changed = run(model, perturbed(batch, "actions", [t], num_actions=5)).action_preds
    torch.testing.assert_close(changed[:, :t + 1], base[:, :t + 1], atol=1e-6, rtol=0)
    assert (changed[:, t + 1] - base[:, t + 1]).abs().max() > 1e-4  # the next step does see it


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
def test_memory_carries_segment_1_into_segment_3(memory_kind, make_model):
    model = make_model(**memory_kind)
    batch = make_batch(model.config)
    base = run(model, batch).action_preds
    changed = run(model, perturbed(batch, "observations", slice(0, K))).action_preds
    assert (changed[:, :K] - base[:, :K]).abs().max() > 1e-4
    seg3 = (changed[:, 2 * K:] - base[:, 2 * K:]).abs().max()
    if memory_kind["memory_tokens"] or memory_kind.get("cache_len"):  # a cache reaches layers x C tokens back
        assert seg3 > 1e-4
    else:
        assert seg3 == 0


@pytest.mark.parametrize("memory_tokens", [2, 0])
@pytest.mark.slow
def test_memory_is_learned_end_to_end(memory_tokens):
    """Trained through the loss alone, RMDT recalls a clue two segments later; DT cannot.

    Only the first step of a segment is scored: later steps can copy the previous action.
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = RMDTModel(RMDTConfig(obs_shape=[2], num_actions=2, context_len=2, memory_tokens=memory_tokens,
                                 d_model=16, n_layers=1, n_heads=2, dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss, _ = model.loss(clue_batch(32, 2, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    batch = clue_batch(256, 2, g)
    with torch.no_grad():
        preds = run(model.eval(), batch).action_preds.argmax(-1)
    accuracy = (preds[:, 4] == batch.actions[:, 4]).float().mean()  # first step of segment 3
    if memory_tokens:
        assert accuracy > 0.95
    else:
        assert accuracy < 0.65


def segment_3_gradients(model, batch):
    """Gradients of a loss on segment 3's outputs alone w.r.t. the observations and parameters."""
    obs = batch.observations.clone().requires_grad_(True)
    model.zero_grad()
    preds = model(batch.returns_to_go, obs, batch.actions, batch.mask).action_preds
    preds[:, 2 * K:].pow(2).sum().backward()
    return obs.grad


@pytest.mark.parametrize("memory_update", ["replace", "mrv", "gated"])
def test_gradient_crosses_all_segments_by_default(memory_update, make_model):
    model = make_model(memory_update=memory_update, grad_segments=None)
    grad = segment_3_gradients(model, make_batch(model.config))
    for s in range(N):
        assert grad[:, s * K:(s + 1) * K].abs().sum() > 0, f"segment {s + 1} gets no gradient"
    assert model.memory.grad is not None and model.memory.grad.abs().sum() > 0
    valve = {"mrv": model.mrv, "gated": model.gate}.get(memory_update)
    if valve is not None:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in valve.parameters())


@pytest.mark.parametrize("memory_update", ["replace", "mrv", "gated"])
def test_grad_segments_truncates_gradient_through_memory(memory_update, make_model):
    model = make_model(memory_update=memory_update, grad_segments=1)
    grad = segment_3_gradients(model, make_batch(model.config))
    assert grad[:, :2 * K].abs().sum() == 0
    assert grad[:, 2 * K:].abs().sum() > 0
    assert model.memory.grad is None or model.memory.grad.abs().sum() == 0
    # Blocks of two segments: segment 2's loss still reaches segment 1, segment 3's does not.
    model = make_model(memory_update=memory_update, grad_segments=2)
    batch = make_batch(model.config)
    assert segment_3_gradients(model, batch)[:, :2 * K].abs().sum() == 0
    obs = batch.observations.clone().requires_grad_(True)
    model(batch.returns_to_go, obs, batch.actions).action_preds[:, K:2 * K].sum().backward()
    assert obs.grad[:, :K].abs().sum() > 0


@pytest.mark.parametrize("action_kind", ACTION_KINDS, ids=["discrete", "continuous"])
@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
def test_padding_changes_nothing(action_kind, memory_kind, make_model):
    model = make_model(**action_kind, **memory_kind)
    lengths = [12, 6, 3]  # full; half of segment 2; segment 1 only (segments 2 and 3 all padding)
    batch = make_batch(model.config, lengths=lengths)
    out = run(model, batch)
    loss, metrics = model.loss(batch)
    junk = fill_padding(batch, action_kind.get("num_actions"))
    assert not torch.equal(junk.observations, batch.observations)  # padding really changed
    out_junk = run(model, junk)
    assert torch.isfinite(out_junk.action_preds).all()
    real = batch.mask
    torch.testing.assert_close(out_junk.action_preds[real], out.action_preds[real], atol=1e-6, rtol=0)
    torch.testing.assert_close(out_junk.memory, out.memory, atol=1e-6, rtol=0)
    loss_junk, metrics_junk = model.loss(junk)
    torch.testing.assert_close(loss_junk, loss, atol=1e-6, rtol=0)
    torch.testing.assert_close(metrics_junk, metrics, atol=1e-6, rtol=0)
    # A row whose episode ended in segment 1 keeps segment 1's memory to the end of the window.
    first = model(batch.returns_to_go[:, :K], batch.observations[:, :K], batch.actions[:, :K], batch.mask[:, :K])
    torch.testing.assert_close(out.memory[2], first.memory[2], atol=1e-6, rtol=0)


def fill_padding(batch: Batch, num_actions=None) -> Batch:
    """A copy of ``batch`` with random values instead of zeros on its padded steps."""
    g = torch.Generator().manual_seed(5)
    pad, fields = ~batch.mask, dict(batch.__dict__)
    for name in ("returns_to_go", "observations", "actions"):
        value = fields[name].clone()
        if name == "actions" and num_actions is not None:
            value[pad] = torch.randint(1, num_actions, value[pad].shape, generator=g)
        else:
            value[pad] = 3 * torch.randn(value[pad].shape, generator=g) + 1
        fields[name] = value
    return Batch(**fields)


@pytest.mark.parametrize("action_kind", ACTION_KINDS, ids=["discrete", "continuous"])
@pytest.mark.parametrize("memory_kind", MEMORY_KINDS + [dict(memory_tokens=3, position_embedding="sinusoidal"),
                                         dict(memory_tokens=2, max_timestep=2 * K + 1),
                                         dict(memory_tokens=0, max_timestep=N * K)],
                         ids=MEMORY_IDS + ["sinusoidal", "rmdt-timestep", "dt-timestep"])
def test_act_step_by_step_matches_forward(action_kind, memory_kind, make_model):
    model = make_model(**action_kind, **memory_kind)
    batch = make_batch(model.config, batch_size=4)
    with torch.no_grad():
        expected = run(model, batch).action_preds
    state = model.initial_state(4)
    got = []
    for t in range(N * K):  # crosses two segment boundaries
        last_action = batch.actions[:, t - 1] if t else torch.zeros_like(batch.actions[:, 0])
        output, state = model.act(state, batch.observations[:, t], last_action, batch.rewards[:, t],
                                  batch.returns_to_go[:, t])
        got.append(output)
    torch.testing.assert_close(torch.stack(got, dim=1), expected, atol=1e-5, rtol=0)
    assert state.step.tolist() == [K] * 4 and model.greedy_action(got[-1]).shape == ((4,) if model.discrete else (4, 2))


@pytest.mark.parametrize("action_kind", ACTION_KINDS, ids=["discrete", "continuous"])
@pytest.mark.parametrize("max_timestep", [0, 2 * K + 1], ids=["no-timestep", "timestep"])
def test_sliding_dt_act_equals_a_forward_over_the_last_k_steps(action_kind, max_timestep, make_model):
    """dt_context "sliding": step t sees steps t-K+1..t, placed at segment positions 0..K-1 (and, with a
    timestep embedding, at their episode timesteps)."""
    model = make_model(**action_kind, memory_tokens=0, dt_context="sliding", max_timestep=max_timestep)
    batch = make_batch(model.config, batch_size=3)
    state = model.initial_state(3)
    for t in range(N * K):
        last_action = batch.actions[:, t - 1] if t else torch.zeros_like(batch.actions[:, 0])
        output, state = model.act(state, batch.observations[:, t], last_action, batch.rewards[:, t],
                                  batch.returns_to_go[:, t])
        first = max(0, t - K + 1)
        window = Batch(**{
            name: torch.cat([value[:, first:t + 1], torch.zeros_like(value[:, :K - (t + 1 - first)])], dim=1)
            for name, value in vars(batch).items()})
        window.mask[:, t + 1 - first:] = False
        with torch.no_grad():
            expected = run(model, window).action_preds[:, t - first]
        torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("memory_tokens", [0, 2])
def test_the_timestep_embedding_reads_episode_time_and_only_when_asked(memory_tokens, make_model):
    batch = make_batch(make_config(memory_tokens=memory_tokens))
    later = Batch(**{**vars(batch), "timesteps": batch.timesteps + 3})
    for max_timestep, changes in ((0, False), (4 * N * K, True)):
        model = make_model(memory_tokens=memory_tokens, max_timestep=max_timestep)
        with torch.no_grad():
            same = torch.allclose(run(model, batch).action_preds, run(model, later).action_preds, atol=1e-6)
        assert same != changes
    with torch.no_grad():  # no timesteps given: windows that start their episodes
        plain = model(batch.returns_to_go, batch.observations, batch.actions, batch.mask).action_preds
        torch.testing.assert_close(plain, run(model, batch).action_preds)


def test_a_reset_row_starts_its_episode_time_again(make_model):
    model = make_model(memory_tokens=2, max_timestep=4 * N * K)
    batch = make_batch(model.config, batch_size=2)
    state = model.initial_state(2)
    for t in range(K + 1):
        last_action = batch.actions[:, t - 1] if t else torch.zeros_like(batch.actions[:, 0])
        _, state = model.act(state, batch.observations[:, t], last_action, batch.rewards[:, t],
                             batch.returns_to_go[:, t])
    state = model.reset(state, torch.tensor([True, False]))
    first, _ = model.act(state, batch.observations[:, 0], torch.zeros_like(batch.actions[:, 0]), batch.rewards[:, 0],
                         batch.returns_to_go[:, 0])
    fresh, _ = model.act(model.initial_state(2), batch.observations[:, 0], torch.zeros_like(batch.actions[:, 0]),
                         batch.rewards[:, 0], batch.returns_to_go[:, 0])
    torch.testing.assert_close(first[0], fresh[0], atol=1e-6, rtol=0)
    assert state.time.tolist() == [0, K + 1]


def test_sliding_context_is_for_dt_only():
    with pytest.raises(ValueError, match="dt_context"):
        make_config(memory_tokens=2, dt_context="sliding")


def test_act_cost_does_not_grow_with_episode_length(make_model):
    """The cache is one segment's buffer (plus a scratch slot), however many steps were taken."""
    model = make_model(memory_tokens=2)
    state = model.initial_state(2)
    obs, action, zero = torch.zeros(2, OBS), torch.zeros(2, dtype=torch.long), torch.zeros(2)
    for _ in range(5 * K):
        _, state = model.act(state, obs, action, zero, zero)
        assert all(k.shape[2] == v.shape[2] == 2 + 3 * K + 1 for k, v in state.cache)


@pytest.mark.parametrize("memory_kind", [dict(memory_tokens=2, memory_update="mrv"),
                                         dict(memory_tokens=0, position_embedding="sinusoidal")])  # RMDT, DT
def test_save_load_round_trip(tmp_path, memory_kind):
    torch.manual_seed(0)
    config = make_config(**memory_kind, obs_mean=[0.5, -1.0, 2.0], obs_std=[2.0, 0.5, 1.0], return_scale=7.5)
    model = RMDTModel(config).eval()
    batch = make_batch(config, lengths=[12, 7, 2])
    with torch.no_grad():
        expected = run(model, batch)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists() and (tmp_path / "model.safetensors").exists()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "rmdt" and saved["context_len"] == K and saved["return_scale"] == 7.5

    loaded = RMDTModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is RMDTModel
    assert loaded.config.obs_mean == [0.5, -1.0, 2.0] and loaded.config.obs_std == [2.0, 0.5, 1.0]
    assert loaded.config.return_scale == 7.5 and loaded.config.memory_update == config.memory_update
    torch.testing.assert_close(loaded.obs_norm.mean, torch.tensor([0.5, -1.0, 2.0]))
    with torch.no_grad():
        got = run(loaded, batch)
    assert torch.equal(got.action_preds, expected.action_preds) and torch.equal(got.memory, expected.memory)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name

    from transformers import AutoModel
    assert isinstance(AutoModel.from_pretrained(tmp_path), RMDTModel)


# The parameter names of the checkpoint format: every checkpoint written so far names its weights so.
BASE_KEYS = ["memory", "embed_obs.net.0.weight", "embed_obs.net.0.bias", "embed_obs.net.2.weight",
             "embed_obs.net.2.bias", "embed_return.proj.weight", "embed_return.proj.bias", "embed_action.embed.weight",
             "position.weight"] + [f"blocks.0.{name}" for name in (
                 "ln_1.weight", "ln_1.bias", "attn.query.weight", "attn.query.bias", "attn.key_value.weight",
                 "attn.key_value.bias", "attn.proj.weight", "attn.proj.bias", "ln_2.weight", "ln_2.bias",
                 "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias")] + [
             "ln_f.weight", "ln_f.bias", "head.weight", "head.bias"]
VALVE_KEYS = [f"mrv.{layer}.{kind}" for layer in ("query", "key_value", "proj") for kind in ("weight", "bias")] + [
    "mrv_norm.weight", "mrv_norm.bias"]
RULE_KEYS = {"replace": [], "mrv": VALVE_KEYS, "mrv_residual": VALVE_KEYS, "gated": ["gate.weight", "gate.bias"]}


@pytest.mark.parametrize("memory_update", list(RULE_KEYS))
def test_state_dict_names_are_the_checkpoint_format(memory_update, make_model):
    """The memory-update rules are modules of their own, but their layers keep the names checkpoints use."""
    model = make_model(memory_update=memory_update, n_layers=1)
    assert list(model.state_dict()) == BASE_KEYS[:-2] + RULE_KEYS[memory_update] + BASE_KEYS[-2:]
    assert list(make_model(cache_len=3, n_layers=1).state_dict()) == BASE_KEYS[:1] + ["cache_position"] + BASE_KEYS[1:]
    rule_layers = {name for name in ("mrv", "mrv_norm", "gate") if getattr(model, name) is not None}
    assert rule_layers == {key.split(".")[0] for key in RULE_KEYS[memory_update]}


def test_obs_normalisation_is_applied(make_model):
    a = make_model(obs_mean=[1.0, 2.0, 3.0], obs_std=[2.0, 2.0, 2.0])
    b = make_model()
    batch = make_batch(a.config)
    shifted = Batch(**{**batch.__dict__, "observations": (batch.observations - torch.tensor([1.0, 2.0, 3.0])) / 2})
    torch.testing.assert_close(run(a, batch).action_preds, run(b, shifted).action_preds, atol=1e-6, rtol=0)


@pytest.mark.parametrize("field, overrides", [
    ("context_len", dict(context_len=0)),
    ("d_model", dict(d_model=10, n_heads=3)),
    ("obs_encoder", dict(obs_encoder="resnet")),
    ("memory_update", dict(memory_update="gru")),
    ("memory_tokens", dict(memory_tokens=-1)),
    ("cache_len", dict(cache_len=-1)),
    ("dt_context", dict(memory_tokens=0, cache_len=3, dt_context="sliding")),
    ("grad_segments", dict(grad_segments=0)),
    ("position_embedding", dict(position_embedding="rotary")),
    ("obs_shape", dict(obs_shape=None)),
    ("num_actions", dict(num_actions=4, act_dim=2)),
    ("dropout", dict(dropout=1.0)),
    ("return_scale", dict(return_scale=0.0)),
    ("obs_mean", dict(obs_mean=[0.0, 1.0])),
    ("obs_std", dict(obs_std="1")),
])
def test_bad_config_names_the_field(field, overrides):
    with pytest.raises(ValueError, match=f"RMDTConfig.{field}"):
        make_config(**overrides)


@pytest.mark.parametrize("cache_len", [0, 2])
def test_hidden_state_cache_reaches_exactly_the_last_c_tokens_before_the_segment(cache_len, make_model):
    """One layer, no memory: segment 2 sees segment 1 only through the cache, i.e. through its last C
    tokens (o and a of step K-1 for C=2); earlier tokens of segment 1 and all of segment 0 stay unseen."""
    model = make_model(memory_tokens=0, cache_len=cache_len, n_layers=1)
    batch = make_batch(model.config)
    with torch.no_grad():
        base = run(model, batch).action_preds[:, 2 * K:]
        last = run(model, perturbed(batch, "observations", [2 * K - 1])).action_preds[:, 2 * K:]
        earlier = run(model, perturbed(batch, "returns_to_go", [2 * K - 1])).action_preds[:, 2 * K:]
    assert torch.equal(earlier, base)
    assert torch.equal(last, base) == (cache_len == 0)


def test_hidden_state_cache_is_detached_but_its_projection_learns(make_model):
    """Segment 1's loss sends no gradient into segment 0's inputs through the cache (no memory), yet the
    cache's learned positions (and the blocks' projections that read the cache) get one."""
    model = make_model(memory_tokens=0, cache_len=3).train()
    batch = make_batch(model.config)
    observations = batch.observations.clone().requires_grad_()
    preds = model(batch.returns_to_go, observations, batch.actions).action_preds
    preds[:, K:2 * K].square().sum().backward()
    assert torch.equal(observations.grad[:, :K], torch.zeros_like(observations.grad[:, :K]))
    assert observations.grad[:, K:2 * K].abs().sum() > 0
    assert model.cache_position.grad.abs().sum() > 0


@pytest.mark.parametrize("memory_tokens", [2, 0], ids=["rmdt", "dt"])
def test_no_host_sync_in_loss_backward_and_act(monkeypatch, make_model, memory_tokens):
    """``.item()``, ``.cpu()``, ``bool(tensor)`` and friends would stall a GPU step; none is used on a
    device. (On CPU tensors ``compaction`` reads the mask to skip padding: no device there to wait for.)"""
    model = make_model(memory_update="mrv", grad_segments=2, memory_tokens=memory_tokens)
    batch = make_batch(model.config, lengths=[12, 6, 3])
    state = model.initial_state(3)
    monkeypatch.setattr(rmdt_model, "compaction", lambda mask, K: None)  # what it answers for device tensors

    def sync(*args, **kwargs):
        raise AssertionError("host sync in the model")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, sync)
    loss, _ = model.loss(batch)
    loss.backward()
    for t in range(K + 1):
        _, state = model.act(state, batch.observations[:, t], batch.actions[:, t], batch.rewards[:, t],
                             batch.returns_to_go[:, t])


def test_compaction_reads_cpu_masks_only_and_finds_the_real_work():
    def mask(*lengths):
        return torch.arange(8)[None, :] < torch.tensor(lengths)[:, None]

    (rows, k), (rows_1, k_1) = rmdt_model.compaction(mask(5, 2, 3), 4)
    assert rows is None and k == 4  # every row real, one of them to the end
    assert rows_1.tolist() == [0] and k_1 == 1  # the first row alone, its first step alone
    (rows, k), (rows_1, k_1) = rmdt_model.compaction(mask(3, 2), 4)
    assert rows is None and k == 3 and rows_1.tolist() == [] and k_1 == 0  # then a segment of padding only
    assert rmdt_model.compaction(mask(5, 2).to("meta"), 4) is None


@pytest.mark.parametrize("augmentation", [dict(memory_replay=3), dict(memory_noise=0.5)], ids=["replay", "noise"])
def test_memory_augmentations_act_in_training_only(augmentation, make_model):
    """Replay and noise change what later segments read while training, and nothing at evaluation."""
    plain, replay = make_model(memory_tokens=2), make_model(memory_tokens=2, **augmentation)
    batch = make_batch(plain.config)
    with torch.no_grad():
        torch.testing.assert_close(run(replay, batch).action_preds, run(plain, batch).action_preds)
        plain.train(), replay.train()
        outputs = []
        for seed in range(8):  # random replay counts: some draw must differ from no replay
            torch.manual_seed(seed)
            outputs.append(run(replay, batch).action_preds)
        reference = run(plain, batch).action_preds
    assert any(not torch.allclose(out[:, K:], reference[:, K:]) for out in outputs)
    for out in outputs:  # the first segment reads the initial memory whatever the replay
        torch.testing.assert_close(out[:, :K], reference[:, :K])


@pytest.mark.parametrize("overrides", [dict(), dict(memory_update="mrv"), dict(memory_update="gated"),
                                       dict(cache_len=5)], ids=["replace", "mrv", "gated", "cache"])
def test_write_only_segment_writes_the_same_memory(overrides, make_model):
    """A memory replay computes only the write tokens of the final block; the memory it writes must
    equal the full segment's, padding and hidden-state cache included."""
    model = make_model(memory_tokens=2, **overrides)
    batch = make_batch(model.config, lengths=[2 * K, K + 2, 3])
    steps = model._embed_steps(batch.returns_to_go, batch.observations, batch.actions, batch.timesteps)
    steps = steps[:, :K].flatten(1, 2)
    memory = torch.randn(3, 2, model.config.d_model)
    cache = None
    if model.config.cache_len:  # a cache with real entries: the one the first segment leaves
        cache = hidden_cache.empty(3, len(model.blocks), 5, model.config.d_model, steps)
        cache = model._segment(steps, memory, batch.mask[:, :K], cache)[2]
    with torch.no_grad():
        full = model._segment(steps, memory, batch.mask[:, K:2 * K], cache)[1]
        write = model._segment(steps, memory, batch.mask[:, K:2 * K], cache, write_only=True)
    torch.testing.assert_close(write, full, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(write, memory)


@pytest.mark.parametrize("overrides", [dict(memory_tokens=2), dict(memory_tokens=2, memory_update="mrv"),
                                       dict(memory_tokens=2, cache_len=5), dict(memory_tokens=0)],
                         ids=["replace", "mrv", "cache", "dt"])
def test_training_forward_computes_the_same_predictions_and_memory(overrides, make_model):
    """In training the final block runs only the observation and write tokens; without dropout its
    predictions and memory must be the eval-mode forward's, which runs every token."""
    model = make_model(**overrides)
    batch = make_batch(model.config, lengths=[3 * K, 2 * K - 1, 4])
    with torch.no_grad():
        full = run(model, batch)
        model.train()
        read = run(model, batch)
    torch.testing.assert_close(read.action_preds, full.action_preds, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(read.memory, full.memory, rtol=1e-5, atol=1e-6)


def test_residual_valve_keeps_memory_slots_apart(make_model):
    """At initialisation the valve's softmax is uniform, so "mrv" writes M near-copies of one vector
    (the README's MRV diagnosis); "mrv_residual" adds the write outputs back and its slots differ."""
    def slot_cosine(update):
        model = make_model(memory_tokens=4, memory_update=update)
        with torch.no_grad():
            memory = run(model, make_batch(model.config)).memory
        unit = torch.nn.functional.normalize(memory, dim=-1)
        cosine = unit @ unit.transpose(1, 2)
        return cosine[:, ~torch.eye(4, dtype=torch.bool)].mean().item()

    assert slot_cosine("mrv") > 0.99
    assert slot_cosine("mrv_residual") < 0.9


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
def test_output_attentions_are_per_layer_segment_maps_and_change_nothing(memory_kind, make_model):
    """``output_attentions=True``: per layer (B, N, heads, T, T) softmax weights over [cache ; read ; 3K ; write];
    the predictions (at real steps) and memory are the fused path's up to rounding, and without it there
    are none."""
    model = make_model(**memory_kind)
    batch = make_batch(model.config, lengths=[3 * K, 2 * K - 1, 4])
    M, C = model.config.memory_tokens, model.config.cache_len
    T = C + 2 * M + 3 * K
    with torch.no_grad():
        plain = run(model, batch)
        out = run(model, batch, output_attentions=True)
    assert plain.attentions is None
    torch.testing.assert_close(out.action_preds[batch.mask], plain.action_preds[batch.mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.memory, plain.memory, atol=1e-5, rtol=0)
    assert len(out.attentions) == 2 and all(w.shape == (3, N, 2, T, T) for w in out.attentions)
    for w in out.attentions:
        torch.testing.assert_close(w[..., C:, :].sum(-1), torch.ones(3, N, 2, T - C))  # every query row
        assert not w[..., :C, :].any()  # cache slots give keys only
    with torch.no_grad():
        again = run(model, batch)
    assert torch.equal(again.action_preds, plain.action_preds)  # nothing left switched on


def test_the_package_keeps_its_names_and_one_dict_chooses_the_memory_update(make_model):
    from rmdt.models.rmdt import MEMORY_UPDATE_RULES, MEMORY_UPDATES, POSITION_EMBEDDINGS, RMDTOutput, RMDTState  # noqa: F401

    assert MEMORY_UPDATES == tuple(MEMORY_UPDATE_RULES) == ("replace", "mrv", "mrv_residual", "gated")
    assert POSITION_EMBEDDINGS == ("learned", "sinusoidal")
    for name, rule in MEMORY_UPDATE_RULES.items():
        model = make_model(memory_update=name)
        assert type(model._update_memory.__self__) is rule
        assert not any(isinstance(module, rule) for module in model.modules())  # its layers only: no extra prefix
    dt = make_model(memory_tokens=0, memory_update="gated")  # no memory: nothing to update, no gate
    assert type(dt._update_memory.__self__) is MEMORY_UPDATE_RULES["replace"] and dt.gate is None
