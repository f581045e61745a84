"""Attention maps from the model's outputs and their export: same outputs as the fused path, row sums, masks,
shapes, labels, files, and the export of a rollout equals the forward pass over the same episode."""
import json
import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from rmdt.evaluation import evaluate_policy
from rmdt.evaluation.attention import TOKEN_TYPES, AttentionMaps, episode_maps, memory_summary, window_maps
from rmdt.evaluation.attention_export import export_attention, export_maps
from rmdt.evaluation.probe import state_norm
from rmdt.evaluation.rollout import Episode, episode_seed, recording
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


def recorded(r, o, a, steps, length=None):
    """The window's first ``steps`` steps as recorded rollout episodes (``length``: steps the episodes took)."""
    return [Episode(observations=o[b, :steps].numpy(), actions=a[b, :steps].numpy(),
                    rewards=np.zeros(steps, np.float32), returns_to_go=r[b, :steps].numpy(),
                    length=steps if length is None else length)
            for b in range(len(r))]


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS + list(CACHE_KINDS.values()), ids=MEMORY_IDS + list(CACHE_KINDS))
def test_output_attentions_give_the_same_forward_outputs_and_act_is_forward(memory_kind, make_model):
    """Maps are asked of the forward pass (explicit softmax, same outputs at real steps up to rounding);
    rollout maps come from it too, which is sound because ``act`` computes what the forward pass computes."""
    model = make_model(**memory_kind)
    r, o, a, mask = make_window(lengths=[9, 5, 2])
    with torch.no_grad():
        plain = model(r, o, a, mask)
        captured = model(r, o, a, mask, output_attentions=True)
        full = model(r, o, a).action_preds
    torch.testing.assert_close(captured.action_preds[mask], plain.action_preds[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(captured.memory, plain.memory, atol=1e-5, rtol=0)
    assert [w.shape[1] for w in captured.attentions] == [N] * 2  # every segment of every layer
    assert [len(m.weights) for m in window_maps(model, r, o, a)] == [N] * 3
    act_out, _ = act_through(model, r, o, a, N * K)
    torch.testing.assert_close(act_out, full, atol=1e-5, rtol=0)
    assert torch.equal(model.greedy_action(act_out), model.greedy_action(full))


def test_a_recording_is_switched_off_after_an_error(make_model):
    model = make_model(memory_tokens=2)
    with pytest.raises(RuntimeError, match="boom"):
        with recording(2) as rollouts:
            raise RuntimeError("boom")
    evaluate_policy(model, TMAZE, progress=False)
    assert rollouts == []  # later rollouts record nothing


@pytest.mark.parametrize("memory_kind", MEMORY_KINDS, ids=MEMORY_IDS)
def test_window_maps_have_the_layout_and_are_masked_distributions(memory_kind, make_model):
    model = make_model(**memory_kind)
    M = model.config.memory_tokens
    T = 2 * M + 3 * K
    maps = window_maps(model, *make_window(lengths=[9, 5, 2]))
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
def test_maps_of_a_recorded_episode_equal_the_window_maps(memory_kind, make_model):
    """A rollout's maps hold the rows ``act`` ran, where the forward pass puts them, across segment boundaries."""
    model = make_model(**memory_kind)
    r, o, a, _ = make_window(batch_size=2)
    window = window_maps(model, r, o, a)
    steps = N * K - 1  # the last segment stops before its final action and write tokens
    stepwise = episode_maps(model, recorded(r, o, a, steps))
    for got, want in zip(stepwise, window):
        assert_rows_are_distributions(got)
        # a complete segment ran every row (a DT never feeds its last action: no write follows it)
        assert got.computed[:-1, :-1].all() and got.computed[:-1, -1].all() == bool(model.config.memory_tokens)
        assert not got.computed[-1].all()
        rows = np.broadcast_to(got.computed[:, None, None, :, None], got.weights.shape)
        np.testing.assert_allclose(got.weights[rows], want.weights[rows], atol=1e-5)


@pytest.mark.parametrize("name", list(CACHE_KINDS))
def test_cache_keys_are_their_own_token_type_and_episode_maps_equal_the_window_maps(name, make_model):
    """Keys [cache C ; read M ; 3K ; write M]: cache keys (labelled c0..) are open to trajectory queries
    only and only where the episode already has C earlier tokens, are never queries, and a rollout's maps
    equal the forward pass's."""
    model = make_model(**CACHE_KINDS[name])
    M, C = model.config.memory_tokens, model.config.cache_len
    T = C + 2 * M + 3 * K
    r, o, a, _ = make_window(batch_size=2)
    window = window_maps(model, r, o, a)
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
    for got, want in zip(episode_maps(model, recorded(r, o, a, steps)), window):
        assert_rows_are_distributions(got)
        assert got.computed[0, C:C + M + 3 * K].all()
        rows = np.broadcast_to(got.computed[:, None, None, :, None], got.weights.shape)
        np.testing.assert_allclose(got.weights[rows], want.weights[rows], atol=1e-5)
        np.testing.assert_array_equal(got.allowed[:-1], want.allowed[:-1])  # (the last segment stops early)


def test_summary_reads_the_memory_columns_and_write_rows(make_model):
    maps = window_maps(make_model(memory_tokens=2), *make_window(batch_size=1))[0]
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
    maps = window_maps(make_model(memory_tokens=2, n_layers=1), *make_window(batch_size=1))[0]
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
        window_maps(RecurrentPolicy(), *make_window()[:3])


@pytest.mark.parametrize("kind", ["ffm", "gru", "lstm"])
@pytest.mark.slow
def test_recurrent_baseline_exports_state_norms(tmp_path, kind):
    from rmdt.models.recurrent import RecurrentConfig, RecurrentModel

    torch.manual_seed(0)
    model = RecurrentModel(RecurrentConfig(layer=kind, obs_shape=[4], num_actions=4, d_model=16, n_layers=1,
                                           memory_size=4, context_size=2, evaluation=TMAZE)).eval()
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


CARTPOLE = dict(env="gymnasium", target_return=50.0, env_args=dict(id="CartPole-v1", max_episode_steps=40), episodes=2,
                seed=2)


def without_timings(report: dict) -> dict:
    return {**report, "results": [{k: v for k, v in row.items() if not k.endswith("per_second")}
                                  for row in report["results"]]}


def play_alone(model, seed: int):
    """One CartPole episode played by ``act`` on its own, greedily: (observations, actions, returns-to-go)."""
    env = gym.make("CartPole-v1", max_episode_steps=40)
    obs, _ = env.reset(seed=seed)
    state, last = model.initial_state(1), torch.zeros(1, dtype=torch.long)
    to_go, done = CARTPOLE["target_return"], False
    observations, actions, returns = [], [], []
    while not done:
        output, state = model.act(state, torch.as_tensor(obs)[None], last, torch.zeros(1),
                                  torch.tensor([to_go], dtype=torch.float32))
        last = model.greedy_action(output)
        observations.append(obs)
        actions.append(int(last))
        returns.append(to_go)
        obs, reward, terminated, truncated, _ = env.step(int(last))
        to_go -= reward
        done = terminated or truncated
    env.close()
    return np.stack(observations), np.array(actions), np.array(returns, np.float32)


@pytest.mark.parametrize("memory_kind", [dict(memory_tokens=2), dict(memory_tokens=0),
                                         dict(memory_tokens=2, cache_len=4, memory_update="mrv")],
                         ids=["rmdt", "dt", "cache"])
def test_rollout_export_equals_the_forward_attentions_of_the_same_episode_and_actions_are_unchanged(
        tmp_path, memory_kind, make_model):
    """Each exported episode, played again alone step by step: ``forward(output_attentions=True)`` over it
    gives the actions ``act`` took and the maps the export wrote (on the rows the rollout ran; the rest
    is zero); the exporting evaluation reports what a plain one does."""
    model = make_model(num_actions=2, evaluation=CARTPOLE, **memory_kind)
    index = export_attention(model, CARTPOLE, tmp_path, episodes=2, progress=False)
    assert without_timings(index["report"]) == without_timings(evaluate_policy(model, CARTPOLE, progress=False))
    lengths = index["report"]["results"][0]["lengths"]
    for e in range(2):
        observations, actions, returns = play_alone(model, episode_seed(CARTPOLE["seed"], e))
        T = len(actions)
        assert T == lengths[e]
        S = math.ceil(T / K)
        pad = S * K - T
        with torch.no_grad():
            out = model(torch.as_tensor(np.pad(returns, (0, pad)))[None],
                        torch.as_tensor(np.pad(observations, ((0, pad), (0, 0))))[None],
                        torch.as_tensor(np.pad(actions, (0, pad)))[None], (torch.arange(S * K) < T)[None],
                        output_attentions=True)
        assert out.action_preds[0, :T].argmax(-1).tolist() == actions.tolist()
        forward = torch.stack(out.attentions, dim=2)[0].numpy()  # (S, layers, heads, T, T)
        exported = AttentionMaps.load(tmp_path / f"00_episode{e}.npz")
        assert exported.weights.shape == forward.shape
        rows = np.broadcast_to(exported.computed[:, None, None, :, None], forward.shape)
        np.testing.assert_allclose(exported.weights[rows], forward[rows], atol=1e-5)
        assert np.all(exported.weights[~rows] == 0)
        M, C = model.config.memory_tokens, model.config.cache_len
        assert exported.computed[:-1, C:C + M + 3 * K - 1].all()  # whole segments ran up to their last action
        assert_rows_are_distributions(exported)
