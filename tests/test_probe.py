"""Memory probe: interventions really zero / shuffle memory; a model that remembers drops, DT does not."""
import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
from clue_task import SEGMENTS, clue_batch

from rmdt.envs.registry import ENVS
from rmdt.evaluation.probe import ShuffleMemory, intervention, memory_probe, plot_probe, probe_checkpoint
from rmdt.models.policy import Policy

K = 2
TMAZE = dict(env="tmaze", target_return=1.0, corridor_lengths=[1, 9], periodic_lengths=[9], episodes=200, seed=5)


@pytest.fixture
def make_model(tiny_policy):
    """``make_model(memory_tokens=2, **fields)``: this module's tiny RMDT (a DT with memory_tokens 0)."""
    make = tiny_policy.with_defaults("rmdt", obs_shape=[2], num_actions=2, context_len=K)
    return lambda memory_tokens=2, **fields: make(memory_tokens=memory_tokens, **fields)

def run_act(model, batch, hook=None, cache=False):
    """``act`` over a clue-task batch; returns outputs (B, L, A) and the state after every step."""
    model.set_memory_hook(hook, cache=cache)
    try:
        state, outputs, states = model.initial_state(batch.actions.shape[0]), [], []
        for t in range(batch.actions.shape[1]):
            last = batch.actions[:, t - 1] if t else torch.zeros_like(batch.actions[:, 0])
            output, state = model.act(state, batch.observations[:, t], last, batch.rewards[:, t],
                                      batch.returns_to_go[:, t])
            outputs.append(output)
            states.append(state)
    finally:
        model.set_memory_hook(None)
    return torch.stack(outputs, dim=1), states


def test_zeroed_run_reads_zeros_after_every_boundary(make_model):
    model = make_model()
    batch = clue_batch(4, K, torch.Generator().manual_seed(0))
    intact, _ = run_act(model, batch)
    zeroed, states = run_act(model, batch, intervention("zeroed"))
    for t, state in enumerate(states):
        if t >= K:  # past the first boundary: the memory read by this segment is all zero
            assert torch.equal(state.memory, torch.zeros_like(state.memory))
    reference = model._read_cache(torch.zeros(4, 2, 16))  # the read tokens really hold zeros
    torch.testing.assert_close(states[K].cache[0][0][:, :, :2], reference[0][0])
    torch.testing.assert_close(zeroed[:, :K], intact[:, :K])  # the first segment is untouched
    assert not torch.allclose(zeroed[:, K:], intact[:, K:])  # and later ones see the difference
    assert model.memory_hook is None


@pytest.mark.parametrize("memory_tokens", [2, 0])
@pytest.mark.parametrize("cache", [False, True], ids=["memory_only", "with_cache"])
def test_the_probe_moves_the_hidden_state_cache_with_the_memory_on_request(memory_tokens, cache, make_model):
    """A hook (here: every row gets the next row's) covers the cache only with ``cache=True``, and then
    moves each row's cache together with its memory."""
    model = make_model(memory_tokens, cache_len=3)
    batch = clue_batch(4, K, torch.Generator().manual_seed(0))
    _, intact = run_act(model, batch)
    _, moved = run_act(model, batch, lambda x: x.roll(1, dims=0), cache=cache)
    before, after = intact[K], moved[K]  # just past the first boundary
    torch.testing.assert_close(after.memory, before.memory.roll(1, dims=0))
    assert torch.equal(after.cache_hidden, before.cache_hidden.roll(1, dims=0) if cache else before.cache_hidden)
    assert torch.equal(after.cache_valid, before.cache_valid)
    _, zeroed = run_act(model, batch, intervention("zeroed"), cache=cache)
    assert (zeroed[K].cache_hidden.abs().sum() == 0) == cache


def test_shuffle_is_a_derangement_that_changes_each_time():
    shuffle = ShuffleMemory(seed=0)
    memory = torch.arange(8.0)[:, None, None].expand(8, 3, 4)
    seen = []
    for _ in range(3):
        out = shuffle(memory)
        source = out[:, 0, 0].long()
        assert sorted(source.tolist()) == list(range(8)) and not (source == torch.arange(8)).any()
        seen.append(source.tolist())
    assert seen[0] != seen[1] or seen[1] != seen[2]
    lone = shuffle(memory[:1] + 100)  # a row crossing alone gets one of the last call's memories
    assert lone.shape == (1, 3, 4) and 0 <= lone[0, 0, 0] < 8
    assert shuffle(memory[:1])[0, 0, 0] == 100  # and the next lone row gets its memory
    with pytest.raises(ValueError, match="at least 2 environments"):
        ShuffleMemory(seed=0)(memory[:1])
    with pytest.raises(ValueError, match="unknown.*intact, zeroed, shuffled"):
        intervention("scrambled")


def test_dt_rollouts_are_unchanged_by_interventions(make_model):
    model = make_model(memory_tokens=0)
    batch = clue_batch(4, K, torch.Generator().manual_seed(0))
    intact, _ = run_act(model, batch)
    for name in ("zeroed", "shuffled"):
        assert torch.equal(run_act(model, batch, intervention(name))[0], intact)


class ScriptedPolicy(torch.nn.Module, Policy):
    """Carries the T-Maze clue in a memory handed over every ``K`` steps (or has no memory at all)."""

    discrete = True

    def __init__(self, memory: bool):
        super().__init__()
        self.has_memory, self.hook = memory, None
        self.config = SimpleNamespace(return_scale=1.0)

    def set_memory_hook(self, hook):
        self.hook = hook

    def initial_state(self, batch_size, device=None):
        return torch.zeros(batch_size, 1), 0

    def act(self, state, obs, last_action, last_reward, return_to_go):
        memory, t = state
        if t and t % 3 == 0 and self.hook is not None:  # a segment boundary
            memory = self.hook(memory)
        memory = torch.where(obs[:, 1:2] != 0, obs[:, 1:2], memory) if self.has_memory else memory
        turn = torch.where(memory[:, 0] >= 0, 1, 3)  # no memory (or zeros): always up
        action = torch.where(obs[:, 2] == 1, turn, 0)
        return torch.nn.functional.one_hot(action, 4).float(), (memory, t + 1)


def test_probe_of_a_remembering_policy_drops_and_of_a_memoryless_one_does_not(tmp_path):
    report = memory_probe(ScriptedPolicy(memory=True), TMAZE, progress=False)
    by = {name: report["interventions"][name]["scalars"] for name in ("intact", "zeroed", "shuffled")}
    assert by["intact"] == {"success_L1": 1.0, "success_L9": 1.0}
    assert by["zeroed"]["success_L1"] == 1.0 and 0.35 < by["zeroed"]["success_L9"] < 0.65  # a boundary lies between
    assert by["shuffled"]["success_L1"] == 1.0 and 0.35 < by["shuffled"]["success_L9"] < 0.65
    assert report["interventions"]["zeroed"]["drop"]["success_L9"] > 0.35
    memoryless = memory_probe(ScriptedPolicy(memory=False), TMAZE, progress=False)["interventions"]
    assert memoryless["zeroed"]["scalars"] == memoryless["shuffled"]["scalars"] == memoryless["intact"]["scalars"]
    assert all(v == 0 for name in ("zeroed", "shuffled") for v in memoryless[name]["drop"].values())
    plot_probe(report, tmp_path / "probe.png")
    assert (tmp_path / "probe.png").read_bytes()[:4] == b"\x89PNG"


# ---- a real RMDT trained to remember, against a DT, through the probe (a tiny clue-recall "env") ----
@dataclass
class Settings:
    """The clue-recall "env" has no settings of its own."""


def evaluate(policy, evaluation, settings, target_return, device="cpu", progress=True, periodic=False):
    """The clue-recall task as an env: accuracy of the first action of segment 3 (two boundaries on)."""
    batch = clue_batch(evaluation.episodes, K, torch.Generator().manual_seed(evaluation.seed))
    outputs, _ = run_act_plain(policy, batch)
    return [{"recall": float((outputs[:, 2 * K].argmax(-1) == batch.actions[:, 2 * K]).float().mean())}]


def scalars(rows):
    return {"recall": rows[0]["recall"]}


def run_act_plain(policy, batch):
    """``act`` without touching the hook: the probe sets it."""
    state, outputs = policy.initial_state(batch.actions.shape[0]), []
    for t in range(SEGMENTS * K):
        last = batch.actions[:, t - 1] if t else torch.zeros_like(batch.actions[:, 0])
        output, state = policy.act(state, batch.observations[:, t], last, batch.rewards[:, t],
                                   batch.returns_to_go[:, t])
        outputs.append(output)
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize("memory_tokens", [2, 0])
@pytest.mark.slow
def test_probe_of_trained_rmdt_drops_and_of_trained_dt_does_not(monkeypatch, memory_tokens, make_model):
    monkeypatch.setitem(ENVS.entries, "clue", __name__)  # this module is the env
    model = make_model(memory_tokens, initializer_range=0.02).train()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss, _ = model.loss(clue_batch(32, K, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    report = memory_probe(model.eval(), dict(env="clue", episodes=256, seed=1, target_return=1.0), progress=False)
    recall = {name: v["scalars"]["recall"] for name, v in report["interventions"].items()}
    if memory_tokens:
        assert recall["intact"] > 0.95 and recall["zeroed"] < 0.7 and recall["shuffled"] < 0.7
    else:
        assert recall["intact"] < 0.7 and recall["zeroed"] == recall["shuffled"] == recall["intact"]


@pytest.mark.slow
def test_probe_checkpoint_writes_json_and_png(tmp_path, make_model):
    model = make_model(obs_shape=[4], num_actions=4, evaluation=TMAZE | {"corridor_lengths": [3], "episodes": 8})
    model.save_pretrained(tmp_path / "final")
    out = probe_checkpoint(tmp_path, progress=False)
    assert out == tmp_path / "eval" / "memory_probe.json"
    report = json.loads(out.read_text())
    assert set(report["interventions"]) == {"intact", "zeroed", "shuffled"} and report["checkpoint"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_models_without_segment_memory_are_refused_clearly():
    class Recurrent(torch.nn.Module, Policy):
        discrete = True

    with pytest.raises(NotImplementedError, match="Recurrent has no segment memory"):
        memory_probe(Recurrent(), TMAZE, progress=False)


@pytest.mark.slow
def test_evaluate_cli_probes_memory_and_exports_attention(tmp_path, capsys, monkeypatch, load_script, make_model):
    """``evaluate.py --probe-memory --export-attention DIR`` writes what it prints, loading the checkpoint once."""
    import rmdt.evaluation

    cli = load_script("evaluate.py")
    loads = []
    load_policy = rmdt.evaluation.load_policy
    monkeypatch.setattr(rmdt.evaluation, "load_policy", lambda *args: loads.append(args) or load_policy(*args))
    model = make_model(obs_shape=[4], num_actions=4, evaluation=TMAZE | {"corridor_lengths": [4], "episodes": 4})
    model.save_pretrained(tmp_path / "run" / "final")
    assert cli.main([str(tmp_path / "run"), "--probe-memory", "--export-attention", str(tmp_path / "maps"),
                     "--attention-episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()[:3]] == [["memory", "intact"], ["memory", "zeroed"],
                                                                  ["memory", "shuffled"]]
    report = json.loads((tmp_path / "run" / "eval" / "memory_probe.json").read_text())
    assert report["interventions"]["intact"]["results"][0]["episodes"] == 4
    assert (tmp_path / "run" / "eval" / "memory_probe.png").is_file()
    index = json.loads((tmp_path / "maps" / "attention.json").read_text())
    assert index["settings"][0]["files"][0] == "00_episode0.npz" and index["checkpoint"]
    assert all((tmp_path / "maps" / name).is_file() for name in index["settings"][0]["files"])
    assert "attention: 3 files" in out  # npz, heatmap of the one layer, memory summary
    assert len(loads) == 1  # the probe and the export share one loaded policy
    assert cli.main([str(tmp_path / "nowhere"), "--probe-memory"]) == 2
    assert "no config.json" in capsys.readouterr().err
