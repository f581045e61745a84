"""Attention capture and export: same outputs as the fused path, row sums, masks, shapes, labels, files."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rmdt.evaluation.attention import (
    TOKEN_TYPES,
    AttentionMaps,
    assemble_maps,
    capture_attention,
    capture_window,
    export_attention,
    export_maps,
    memory_summary,
    state_norm,
)
from rmdt.models.policy import Policy

K, N = 3, 3
MEMORY_KINDS = [dict(memory_tokens=2), dict(memory_tokens=2, memory_update="mrv"),
                dict(memory_tokens=2, memory_update="gated"), dict(memory_tokens=0)]
MEMORY_IDS = ["replace", "mrv", "gated", "dt"]
CACHE_KINDS = {"cache": dict(memory_tokens=2, cache_len=4), "trxl": dict(memory_tokens=0, cache_len=2 * 3 * K - 1)}
TMAZE = dict(env="tmaze", target_return=1.0, corridor_lengths=[7], periodic_lengths=[7], episodes=3, seed=5)


@pytest.fixture
def make_model(tiny_policy):
    """``make_model(**fields)``: this module's tiny RMDT / DT, evaluated on a short T-Maze."""
    return tiny_policy.with_defaults("rmdt", context_len=K, n_layers=2, evaluation=TMAZE)


def make_window(batch_size=3, lengths=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    L = N * K
    mask = torch.ones(batch_size, L, dtype=torch.bool)
    if lengths is not None:
        mask = torch.arange(L)[None] < torch.tensor(lengths)[:, None]
    return (torch.randn(batch_size, L, generator=g), torch.randn(batch_size, L, 4, generator=g),
            torch.randint(0, 4, (batch_size, L), generator=g), mask)


def assert_rows_are_distributions(maps: AttentionMaps):
    """Computed rows sum to 1 over allowed keys and are exactly 0 on masked keys; other rows are 0."""
    w = maps.weights  # (S, layers, H, T, T)
    rows = np.broadcast_to(maps.computed[:, None, None], w.shape[:-1])
    np.testing.assert_allclose(w.sum(-1)[rows], 1.0, atol=1e-5)
    assert np.all(w[np.broadcast_to(~maps.allowed[:, None, None], w.shape)] == 0)
    assert np.all(w[~rows] == 0)
    assert maps.computed.any()


def act_through(model, r, o, a, steps):
    """Outputs of ``act`` fed the window's steps one by one (crosses segment boundaries)."""
    state = model.initial_state(r.shape[0])
    outputs = []
    for t in range(steps):
        last = a[:, t - 1] if t else torch.zeros_like(a[:, 0])
        output, state = model.act(state, o[:, t], last, torch.zeros(r.shape[0]), r[:, t])
        outputs.append(output)
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS + list(CACHE_KINDS.values()), ids=MEMORY_IDS + list(CACHE_KINDS))
def test_capture_gives_the_same_forward_and_act_outputs(memory_kind, make_model):
    model = make_model(**memory_kind)
    r, o, a, mask = make_window(lengths=[9, 5, 2])
    with torch.no_grad():
        plain = model(r, o, a, mask)
        with capture_attention(model) as recorders:
            captured = model(r, o, a, mask)
    torch.testing.assert_close(captured.action_preds, plain.action_preds, atol=1e-5, rtol=0)
    torch.testing.assert_close(captured.memory, plain.memory, atol=1e-5, rtol=0)
    assert [len(recorders[0].segments[b]) for b in range(3)] == [N] * 3  # the capture really ran
    plain_out, _ = act_through(model, r, o, a, N * K)
    with capture_attention(model) as recorders:
        captured_out, _ = act_through(model, r, o, a, N * K)
    torch.testing.assert_close(captured_out, plain_out, atol=1e-5, rtol=0)
    assert torch.equal(model.greedy_action(captured_out), model.greedy_action(plain_out))
    assert [len(recorders[0].segments[b]) for b in range(3)] == [N] * 3
    assert all(block.attn.capture is None for block in model.blocks)  # off again: the SDPA path


def test_capture_is_switched_off_after_an_error(make_model):
    model = make_model(memory_tokens=2)
    with pytest.raises(RuntimeError, match="boom"):
        with capture_attention(model):
            raise RuntimeError("boom")
    assert all(block.attn.capture is None for block in model.blocks)


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
def test_window_maps_have_the_layout_and_are_masked_distributions(memory_kind, make_model):
    model = make_model(**memory_kind)
    M = model.config.memory_tokens
    T = 2 * M + 3 * K
    maps = capture_window(model, *make_window(lengths=[9, 5, 2]))
    assert [m.weights.shape for m in maps] == [(3, 2, 2, T, T), (2, 2, 2, T, T), (1, 2, 2, T, T)]
    expected = [f"m{i}" for i in range(M)] + [f"{c}{k}" for k in range(K) for c in "Roa"] + [f"w{i}" for i in range(M)]
    assert maps[0].token_label.tolist() == expected
    assert [TOKEN_TYPES[k] for k in maps[0].token_type[M:M + 3]] == ["return", "observation", "action"]
    assert maps[1].token_step[1].tolist() == [-1] * M + [3, 3, 3, 4, 4, 4, 5, 5, 5] + [-1] * M
    for m in maps:
        assert_rows_are_distributions(m)
    # padded keys (steps 2.. of row 2) are masked for every query but their own diagonal
    np.testing.assert_array_equal(np.flatnonzero(maps[2].allowed[0, :, M + 6]), [M + 6])
    assert maps[2].weights[0, ..., M + 3:, M + 6].sum() == pytest.approx(maps[2].weights[0, ..., M + 6, M + 6].sum())


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS[::3], ids=MEMORY_IDS[::3])
def test_maps_recorded_step_by_step_equal_the_window_maps(memory_kind, make_model):
    """Each act call's rows land where the forward pass puts them, across segment boundaries."""
    model = make_model(**memory_kind)
    r, o, a, _ = make_window(batch_size=2)
    window = capture_window(model, r, o, a)
    steps = N * K - 1  # the last segment stops before its final action and write tokens
    with capture_attention(model) as recorders:
        act_through(model, r, o, a, steps)
    stepwise = assemble_maps(model, recorders, torch.ones(2, steps, dtype=torch.bool), masked_padding=False)
    for got, want in zip(stepwise, window):
        assert_rows_are_distributions(got)
        # a complete segment ran every row (a DT never feeds its last action: no write follows it)
        assert got.computed[:-1, :-1].all() and got.computed[:-1, -1].all() == bool(model.config.memory_tokens)
        assert not got.computed[-1].all()
        rows = np.broadcast_to(got.computed[:, None, None, :, None], got.weights.shape)
        np.testing.assert_allclose(got.weights[rows], want.weights[rows], atol=1e-5)


@pytest.mark.parametrize("name", list(CACHE_KINDS))
def test_cache_keys_are_their_own_token_type_and_step_by_step_maps_equal_the_window_maps(name, make_model):
    """Keys [cache C ; read M ; 3K ; write M]: cache keys (labelled c0..) are open to trajectory queries
    only and only where the episode already has C earlier tokens, are never queries, and act's maps
    equal the forward pass's."""
    model = make_model(**CACHE_KINDS[name])
    M, C = model.config.memory_tokens, model.config.cache_len
    T = C + 2 * M + 3 * K
    r, o, a, _ = make_window(batch_size=2)
    window = capture_window(model, r, o, a)
    maps = window[0]
    assert maps.weights.shape == (N, 2, 2, T, T) and maps.cache_len == C
    assert maps.token_label[:C].tolist() == [f"c{i}" for i in range(C)]
    assert [TOKEN_TYPES[k] for k in maps.token_type[:C + 1]] == ["cache"] * C + (["read"] if M else ["return"])
    assert not maps.computed[:, :C].any() and not maps.allowed[:, :C].any()
    trajectory = slice(C + M, C + M + 3 * K)
    for s in range(N):  # segment s's cache holds min(C, 3K s) tokens of the episode
        held = min(C, 3 * K * s)
        assert maps.allowed[s, trajectory, C - held:C].all() and not maps.allowed[s, :, :C - held].any()
        assert not maps.allowed[s, C:C + M, :C].any() and not maps.allowed[s, C + M + 3 * K:, :C].any()
    assert maps.weights[1:, :, :, trajectory, :C].sum() > 0
    assert_rows_are_distributions(maps)
    steps = N * K - 1
    with capture_attention(model) as recorders:
        act_through(model, r, o, a, steps)
    for got, want in zip(assemble_maps(model, recorders, torch.ones(2, steps, dtype=torch.bool),
                                       masked_padding=False), window):
        assert_rows_are_distributions(got)
        assert got.computed[0, C:C + M + 3 * K].all()
        rows = np.broadcast_to(got.computed[:, None, None, :, None], got.weights.shape)
        np.testing.assert_allclose(got.weights[rows], want.weights[rows], atol=1e-5)
        np.testing.assert_array_equal(got.allowed[:-1], want.allowed[:-1])  # (the last segment stops early)


def test_summary_reads_the_memory_columns_and_write_rows(make_model):
    maps = capture_window(make_model(memory_tokens=2), *make_window(batch_size=1))[0]
    read, write = memory_summary(maps)
    assert read.shape == (N, 2, 2) and write.shape == (N, 2, 2, len(TOKEN_TYPES))
    np.testing.assert_allclose(write.sum(-1), 1.0, atol=1e-5)  # every write row is a distribution
    w = maps.weights[1, 0].mean(axis=0)  # segment 1, layer 0
    np.testing.assert_allclose(read[1, 0], w[2:2 + 3 * K, :2].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(write[1, 0, :, 1], w[-2:, 2:2 + 3 * K:3].sum(axis=-1), atol=1e-6)  # on R tokens


@pytest.mark.slow
def test_export_through_the_evaluation_writes_npz_pngs_and_an_index(tmp_path, make_model):
    model = make_model(memory_tokens=2)
    index = export_attention(model, TMAZE, tmp_path, episodes=2, progress=False)
    assert index["report"]["results"][0]["corridor_length"] == 7
    files = index["settings"][0]["files"]
    assert files == ["00_episode0.npz", "00_episode0_layer0.png", "00_episode0_layer1.png", "00_episode0_memory.png",
                     "00_episode1.npz", "00_episode1_layer0.png", "00_episode1_layer1.png", "00_episode1_memory.png"]
    assert json.loads((tmp_path / "attention.json").read_text())["settings"][0]["files"] == files
    for name in files:
        if name.endswith(".png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    with np.load(tmp_path / "00_episode1.npz") as f:
        assert {"weights", "allowed", "computed", "token_type", "token_label", "token_step", "read_mass",
                "write_mass", "token_type_names"} <= set(f.files)
        assert f["token_label"][:3].tolist() == ["m0", "m1", "R0"]
        steps = f["token_step"][f["computed"] & (f["token_step"] >= 0)]
    maps = AttentionMaps.load(tmp_path / "00_episode1.npz")
    assert maps.weights.shape == (3, 2, 2, 13, 13)  # 7 corridor + up to 2 more steps: 3 segments of 3
    assert steps.min() == 0 and steps.max() >= 7  # the whole episode, to the junction
    assert_rows_are_distributions(maps)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.slow
def test_per_head_heatmaps_on_request(tmp_path, make_model):
    maps = capture_window(make_model(memory_tokens=2, n_layers=1), *make_window(batch_size=1))[0]
    assert export_maps(maps, tmp_path, "w", per_head=True) == [
        tmp_path / "w.npz", tmp_path / "w_layer0.png", tmp_path / "w_layer0_heads.png", tmp_path / "w_memory.png"]
    assert (tmp_path / "w_layer0_heads.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_dt_export_has_no_memory_summary_and_keeps_at_most_max_segments(tmp_path, make_model):
    index = export_attention(make_model(memory_tokens=0), TMAZE, tmp_path, episodes=1, max_segments=2,
                             progress=False)
    assert index["settings"][0]["files"] == ["00_episode0.npz", "00_episode0_layer0.png", "00_episode0_layer1.png"]
    maps = AttentionMaps.load(tmp_path / "00_episode0.npz")
    assert maps.weights.shape == (2, 2, 2, 3 * K, 3 * K)  # 3 segments were played, the first 2 kept
    assert maps.token_step.max() == 2 * K - 1
    assert_rows_are_distributions(maps)


class RecurrentPolicy(torch.nn.Module, Policy):
    """No attention: a running sum of observations as its state."""

    discrete = True

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(return_scale=1.0)

    def initial_state(self, batch_size, device=None):
        return {"h": torch.zeros(batch_size, 4), "steps": 0}

    def act(self, state, obs, last_action, last_reward, return_to_go):
        state = {"h": state["h"] + obs, "steps": state["steps"] + 1}
        return torch.nn.functional.one_hot(torch.zeros(obs.shape[0], dtype=torch.long), 4).float(), state


@pytest.mark.slow
def test_models_without_attention_export_state_norms_and_say_so(tmp_path):
    index = export_attention(RecurrentPolicy(), TMAZE, tmp_path, episodes=2, progress=False)
    assert "no attention maps" in index["note"]
    assert index["settings"][0]["files"] == ["00_episode0.npz", "00_episode0_state_norm.png",
                                             "00_episode1.npz", "00_episode1_state_norm.png"]
    with np.load(tmp_path / "00_episode0.npz") as f:
        assert f["state_norm"].shape == (9,)  # never turns: times out after L + 2 steps
    with pytest.raises(TypeError, match="no attention maps"):
        with capture_attention(RecurrentPolicy()):
            pass


@pytest.mark.parametrize("kind", ["ffm", "gru", "lstm"])
@pytest.mark.slow
def test_recurrent_baseline_exports_state_norms(tmp_path, kind, tiny_policy):
    model = tiny_policy(kind, evaluation=TMAZE, initializer_range=0.02)
    index = export_attention(model, TMAZE, tmp_path, episodes=2, progress=False)  # 2 rows: batch dims differ from 1
    assert "RecurrentModel has no attention maps" in index["note"]
    for episode in (0, 1):
        with np.load(tmp_path / f"00_episode{episode}.npz") as f:
            assert len(f["state_norm"]) in (8, 9)  # corridor 7: the turn is step 8, the timeout step 9
            assert np.all(np.isfinite(f["state_norm"])) and f["state_norm"][-1] > 0


def test_state_norm_walks_nested_states():
    state = {"a": torch.ones(2, 3), "b": [torch.full((2,), 2.0), (torch.ones(5),)], "n": 3,
             "first": torch.ones(2, dtype=torch.bool)}
    torch.testing.assert_close(state_norm(state, 2), torch.full((2,), 7.0).sqrt())


class TurnsInRowZeroOnly(RecurrentPolicy):
    """Row 0 turns at the junction (its episode ends a step early); the others walk on and time out."""

    def act(self, state, obs, last_action, last_reward, return_to_go):
        _, state = super().act(state, obs, last_action, last_reward, return_to_go)
        action = torch.zeros(obs.shape[0], dtype=torch.long)
        action[0] = torch.where(obs[0, 2] == 1, 1, 0)
        return torch.nn.functional.one_hot(action, 4).float(), state


def test_exports_stop_at_each_episodes_own_end(tmp_path):
    export_attention(TurnsInRowZeroOnly(), TMAZE, tmp_path, episodes=2, progress=False)
    with np.load(tmp_path / "00_episode0.npz") as early, np.load(tmp_path / "00_episode1.npz") as late:
        assert (len(early["state_norm"]), len(late["state_norm"])) == (8, 9)  # turn at step 8; timeout at 9


def test_a_sliding_window_dt_is_refused_with_a_reason(tmp_path, make_model):
    with pytest.raises(ValueError, match="dt_context 'sliding'"):
        export_attention(make_model(memory_tokens=0, dt_context="sliding"), TMAZE, tmp_path, progress=False)
