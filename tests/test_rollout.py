"""Per-row policy state and the episode queue: restarts, per-episode seeding, gymnasium vector envs."""
import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rmdt.evaluation.rollout import episode_seed, recording, rollout
from rmdt.models.memoroid_layers import LAYERS
from rmdt.models.recurrent import RecurrentModel

K, N, OBS, ACTIONS = 2, 3, 3, 2  # short segments: episodes of up to 10 steps cross several boundaries


# name: (kind, fields) of the tiny policies the tests run
MODELS = {"rmdt": ("rmdt", {}), "rmdt_mrv": ("rmdt", dict(memory_update="mrv")),
          "rmdt_gated": ("rmdt", dict(memory_update="gated")), "dt": ("rmdt", dict(memory_tokens=0)),
          "dt_sliding": ("rmdt", dict(memory_tokens=0, dt_context="sliding")),
          "rmdt_cache": ("rmdt", dict(cache_len=4)), "trxl": ("rmdt", dict(memory_tokens=0, cache_len=8)),
          **{layer: (layer, {}) for layer in LAYERS}}


@pytest.fixture
def make_model(tiny_policy):
    """``make_model(name="rmdt", **fields)``: the tiny policy MODELS names; RMDTs of two layers."""
    def make(name="rmdt", **fields):
        kind, own = MODELS[name]
        defaults = dict(context_len=K, n_layers=2) if kind == "rmdt" else {}
        return tiny_policy(kind, **{"obs_shape": [OBS], "num_actions": ACTIONS, **defaults, **own, **fields})

    return make


def episode_data(batch_size: int, length: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch_size, length, generator=g), torch.randn(batch_size, length, OBS, generator=g),
            torch.randint(0, ACTIONS, (batch_size, length), generator=g))


def forward_outputs(model, rtg, obs, actions) -> torch.Tensor:
    """Action outputs of the training forward pass over whole episodes (B, L)."""
    with torch.no_grad():
        if isinstance(model, RecurrentModel):
            starts = torch.zeros(actions.shape, dtype=torch.bool)
            starts[:, 0] = True
            return model(rtg, obs, actions, starts)[0]
        return model(rtg, obs, actions).action_preds


def act_with_offsets(model, rtg, obs, actions, offsets) -> torch.Tensor:
    """``act`` where row b plays other steps first and starts its episode (``reset``) at step offsets[b]."""
    B, L = actions.shape
    g = torch.Generator().manual_seed(9)
    state, got = model.initial_state(B), torch.zeros(B, L, ACTIONS)
    last = torch.zeros(B, dtype=torch.long)
    for step in range(max(offsets) + L):
        t = torch.tensor([step - o for o in offsets])
        state = model.reset(state, t == 0)
        inside = (t >= 0) & (t < L)
        ti = t.clamp(0, L - 1)
        rows = torch.arange(B)
        o = torch.where(inside[:, None], obs[rows, ti], torch.randn(B, OBS, generator=g))
        r = torch.where(inside, rtg[rows, ti], torch.randn(B, generator=g))
        out, state = model.act(state, o, torch.where(t == 0, 0, last), torch.zeros(B), r)
        got[rows[inside], ti[inside]] = out[inside]
        last = torch.where(inside, actions[rows, ti], torch.randint(0, ACTIONS, (B,), generator=g))
    return got


@pytest.mark.parametrize("name", ["rmdt", "rmdt_mrv", "dt", "rmdt_cache", "trxl", "ffm", "lru"])
def test_act_with_rows_at_different_segment_positions_equals_the_forward_pass(name, make_model):
    """Rows start their episodes 0, 1, K+1, 3K and 5 steps in: each row's outputs are its own window's."""
    model = make_model(name)
    rtg, obs, actions = episode_data(5, N * K)
    got = act_with_offsets(model, rtg, obs, actions, offsets=[0, 1, K + 1, 3 * K, 5])
    torch.testing.assert_close(got, forward_outputs(model, rtg, obs, actions), atol=1e-5, rtol=0)


def test_sliding_dt_rows_restarted_at_different_steps_equal_a_row_alone(make_model):
    model = make_model("dt_sliding")
    rtg, obs, actions = episode_data(4, N * K)
    alone = torch.cat([act_with_offsets(model, rtg[b:b + 1], obs[b:b + 1], actions[b:b + 1], [0]) for b in range(4)])
    torch.testing.assert_close(act_with_offsets(model, rtg, obs, actions, [0, 2, K + 1, 7]), alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("steps", [K, K + 1], ids=["at_boundary", "mid_segment"])
def test_reset_restarts_exactly_the_done_rows(name, steps, make_model):
    """After ``reset``, done rows act as a fresh state does and the other rows as if nothing happened."""
    model = make_model(name)
    g = torch.Generator().manual_seed(3)
    state = model.initial_state(4)
    for _ in range(steps):
        _, state = model.act(state, torch.randn(4, OBS, generator=g), torch.randint(0, ACTIONS, (4,), generator=g),
                             torch.zeros(4), torch.randn(4, generator=g))
    done = torch.tensor([True, False, True, False])
    inputs = (torch.randn(4, OBS, generator=g), torch.randint(0, ACTIONS, (4,), generator=g), torch.zeros(4),
              torch.randn(4, generator=g))
    restarted, _ = model.act(model.reset(copy.deepcopy(state), done), *inputs)  # act consumes its state
    untouched, _ = model.act(model.reset(copy.deepcopy(state), np.zeros(4, bool)), *inputs)  # numpy mask, no row
    kept, _ = model.act(state, *inputs)
    fresh, _ = model.act(model.initial_state(4), *inputs)
    torch.testing.assert_close(restarted[done], fresh[done], atol=1e-6, rtol=0)
    torch.testing.assert_close(restarted[~done], kept[~done], atol=1e-6, rtol=0)
    if not (name == "dt" and steps == K):  # (a DT's next segment starts afresh anyway)
        assert not torch.allclose(kept[done], fresh[done])  # the reset rows really had a state to lose
    torch.testing.assert_close(untouched, kept, atol=0, rtol=0)


def test_the_memory_hook_sees_only_the_rows_crossing_a_boundary_together(make_model):
    model, seen = make_model(), []
    model.set_memory_hook(lambda memory: seen.append(memory.shape[0]) or torch.zeros_like(memory))
    state = model.initial_state(3)
    obs, action, zero = torch.randn(3, OBS), torch.zeros(3, dtype=torch.long), torch.zeros(3)
    _, state = model.act(state, obs, action, zero, zero)
    state = model.reset(state, np.array([False, True, False]))  # row 1 restarts one step behind
    for _ in range(K):
        _, state = model.act(state, obs, action, zero, zero)
    assert seen == [2] and state.step.tolist() == [1, K, 1]  # rows 0 and 2 crossed; row 1 is at its last step
    assert not state.memory[[0, 2]].any() and state.memory[1].abs().sum() > 0
    _, state = model.act(state, obs, action, zero, zero)
    assert seen == [2, 1] and not state.memory.any()
    model.set_memory_hook(None)


class SeededEpisodes(VectorEnv):
    """Episodes whose length (2..10), observations and rewards follow from their seed and actions alone;
    it records every episode's actions by seed. No auto-reset: finished rows stay frozen."""

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}
    frozen_when_done = True

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        self.single_action_space = gym.spaces.Discrete(ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.rngs, self.seeds = [None] * num_envs, [None] * num_envs
        self.t, self.length = np.zeros(num_envs, int), np.zeros(num_envs, int)
        self.done = np.ones(num_envs, bool)
        self.obs = np.zeros((num_envs, OBS), np.float32)
        self.actions: dict = {}

    def reset(self, *, seed=None, options=None):
        rows = options["reset_mask"] if options else np.ones(self.num_envs, bool)
        for i in np.flatnonzero(rows):
            self.rngs[i], self.seeds[i] = np.random.default_rng(seed[i]), seed[i]
            self.t[i], self.length[i], self.done[i] = 0, self.rngs[i].integers(2, 11), False
            self.obs[i] = self.rngs[i].normal(size=OBS)
            self.actions[seed[i]] = []
        return self.obs.copy(), {}

    def step(self, actions):
        reward, terminated = np.zeros(self.num_envs), np.zeros(self.num_envs, bool)
        for i in np.flatnonzero(~self.done):
            self.actions[self.seeds[i]].append(int(actions[i]))
            reward[i] = self.obs[i, 0] if actions[i] == 1 else -0.5
            self.obs[i] = self.rngs[i].normal(size=OBS)
            self.t[i] += 1
            terminated[i] = self.t[i] >= self.length[i]
        self.done |= terminated
        return self.obs.copy(), reward, terminated, np.zeros(self.num_envs, bool), {}


def run_queue(model, num_envs, episodes=7, **kwargs):
    env = SeededEpisodes(num_envs)
    out = rollout(model, env, target_return=2.0, seed=11, episodes=episodes, **kwargs)
    return out, {seed: actions for seed, actions in env.actions.items() if seed is not None}


@pytest.mark.parametrize("name", ["rmdt", "dt", "dt_sliding", "trxl", "ffm"])
@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
def test_an_episode_acts_the_same_alone_in_lockstep_and_restarted_mid_batch(name, sample, make_model):
    model = make_model(name)
    alone, alone_actions = run_queue(model, num_envs=1, sample_actions=sample)  # one after another
    lockstep, lockstep_actions = run_queue(model, num_envs=7, sample_actions=sample)  # all at once
    queued, queued_actions = run_queue(model, num_envs=3, sample_actions=sample)  # restarts at other positions
    assert len(set(alone.lengths.tolist())) > 2  # episodes end at different steps, so rows drift apart
    assert alone_actions == lockstep_actions == queued_actions and len(alone_actions) == 7
    for out in (lockstep, queued):
        np.testing.assert_array_equal(out.lengths, alone.lengths)
        np.testing.assert_array_equal(out.returns, alone.returns)


def test_sampled_actions_follow_the_logits_and_differ_from_greedy(make_model):
    model = make_model(initializer_range=0.02)  # small logits: near-uniform policy
    _, greedy = run_queue(model, num_envs=3)
    _, sampled = run_queue(model, num_envs=3, sample_actions=True)
    _, again = run_queue(model, num_envs=2, sample_actions=True)
    assert sampled == again and sampled != greedy
    taken = np.concatenate([a for a in sampled.values()])
    assert 0.2 < taken.mean() < 0.8  # both actions drawn


def test_the_queue_counts_exactly_the_episodes_with_their_seeds_and_real_steps(make_model):
    model = make_model()
    out, actions = run_queue(model, num_envs=3, episodes=8)
    expected = [np.random.default_rng(episode_seed(11, k)).integers(2, 11) for k in range(8)]
    np.testing.assert_array_equal(out.lengths, expected)  # episode k ran with its own seed, in order
    assert sorted(actions) == sorted(episode_seed(11, k) for k in range(8))
    assert out.returns.shape == (8,) and out.env_steps == out.lengths.sum()
    short, _ = run_queue(model, num_envs=3, episodes=8, max_steps=4)
    np.testing.assert_array_equal(short.lengths, np.minimum(expected, 4))
    few, _ = run_queue(model, num_envs=5, episodes=2)  # more environments than episodes
    np.testing.assert_array_equal(few.lengths, expected[:2])
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        run_queue(model, num_envs=2, episodes=0)


def test_a_recording_keeps_each_first_episode_of_the_first_rows_as_act_saw_it(make_model):
    """Inside ``recording`` a rollout keeps, for its first rows, the episode each ran first, until it ended."""
    env = SeededEpisodes(3)
    with recording(2) as rollouts:
        out = rollout(make_model(), env, target_return=2.0, seed=11, episodes=5)
    (episodes,) = rollouts
    assert [e.length for e in episodes] == out.lengths[:2].tolist()  # row r ran episode r first
    for k, episode in enumerate(episodes):
        rng = np.random.default_rng(episode_seed(11, k))
        rng.integers(2, 11)
        np.testing.assert_allclose(episode.observations[0], rng.normal(size=OBS).astype(np.float32))
        assert episode.observations.shape == (episode.length, OBS)
        assert episode.actions.tolist() == env.actions[episode_seed(11, k)]
        before = np.concatenate([[0.0], np.cumsum(episode.rewards)[:-1]])
        np.testing.assert_allclose(episode.returns_to_go, 2.0 - before, rtol=1e-6)  # the target less what was earned
    with recording(2, max_steps=3) as short:
        rollout(make_model(), SeededEpisodes(3), target_return=2.0, seed=11, episodes=5)
    assert [len(e.observations) for e in short[0]] == [min(3, e.length) for e in episodes]
    assert [e.length for e in short[0]] == [e.length for e in episodes]
    rollout(make_model(), SeededEpisodes(3), target_return=2.0, seed=11, episodes=5)
    assert len(rollouts) == 1 and len(short) == 1  # outside the block nothing is recorded


@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_gymnasium_vector_envs_in_every_autoreset_mode_give_the_same_episodes(mode, tiny_policy):
    """CartPole-v1 (reward 1 per step) with a random-init policy: 5 episodes over 2 environments."""
    model = tiny_policy(num_actions=2, context_len=K, initializer_range=0.5)
    runs = []
    for num_envs, vectorization in ((2, "sync"), (5, "sync"), (2, "async")):
        if vectorization == "async" and mode != "NextStep":
            continue
        env = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode=vectorization,
                           vector_kwargs={"autoreset_mode": AutoresetMode(mode)})
        try:
            runs.append(rollout(model, env, target_return=50.0, seed=4, episodes=5))
        finally:
            env.close()
    for out in runs:
        assert out.lengths.shape == (5,) and np.all(out.lengths > 0)
        np.testing.assert_array_equal(out.returns, out.lengths)  # no step counted twice or lost
        assert out.env_steps == out.lengths.sum()
        np.testing.assert_array_equal(out.lengths, runs[0].lengths)
    assert len(set(runs[0].lengths.tolist())) > 1


def test_an_async_env_that_cannot_cancel_its_autoreset_is_refused(make_model):
    env = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="async", vector_kwargs={"shared_memory": False})
    try:
        with pytest.raises(ValueError, match="shared_memory=True"):
            rollout(make_model(obs_shape=[4]), env, target_return=1.0, seed=0)
    finally:
        env.close()


def test_tmaze_rows_seeded_one_by_one_do_not_depend_on_their_neighbours():
    from rmdt.envs.tmaze.env import TMazeVectorEnv

    seeds = [episode_seed(5, k) for k in range(4)]
    batch = TMazeVectorEnv(4, 6)
    obs, info = batch.reset(seed=seeds)
    single = [TMazeVectorEnv(1, 6) for _ in seeds]
    for i, env in enumerate(single):
        np.testing.assert_array_equal(env.reset(seed=[seeds[i]])[0][0], obs[i])
    for _ in range(3):
        obs = batch.step(np.zeros(4, int))[0]
        for i, env in enumerate(single):
            np.testing.assert_array_equal(env.step(np.zeros(1, int))[0][0], obs[i])
    mask = np.array([False, True, False, False])
    obs = batch.reset(seed=[None, seeds[0], None, None], options={"reset_mask": mask})[0]
    np.testing.assert_array_equal(obs[1], single[0].reset(seed=[seeds[0]])[0][0])
    assert batch.done.tolist() == [False] * 4


@pytest.mark.parametrize("kind", ["rmdt", "ffm"])
def test_dataset_acting_steps_act_on_the_data_and_leaves_the_policy_training(kind, tiny_policy):
    """What the benches time: act on dataset observations, greedy actions fed back, train mode after."""
    from rmdt.data.trajectories import Trajectories
    from rmdt.evaluation.dataset_acting import DatasetActing

    rng = np.random.default_rng(0)
    data = Trajectories.from_episodes([(rng.normal(size=(5, 4)).astype(np.float32), rng.integers(0, 4, 5),
                                        np.zeros(5, np.float32))], source="test", num_actions=4)
    policy = tiny_policy(kind).train()
    calls = []
    act = policy.act
    policy.act = lambda state, obs, *rest: calls.append(obs) or act(state, obs, *rest)
    acting = DatasetActing(policy, data, envs=3)
    assert acting.run(5, warmup=2) > 0
    assert len(calls) == 7 and all(obs.shape == (3, 4) for obs in calls)
    assert torch.equal(calls[0], calls[4]) and not torch.equal(calls[0], calls[1])  # four batches in turn
    assert policy.training
