"""The recurrent (memoroid) policy: shapes, causality, resets, act == forward, chunks, checkpoints,
config dispatch, and exact resume of a tape-batched training run."""
import shutil
from pathlib import Path

import pytest
import torch
from training_helpers import assert_gradients_reach

from rmdt.config import ConfigError, load_config
from rmdt.data.segments import Batch
from rmdt.models import RecurrentModel
from rmdt.models.memoroid_layers import LAYERS as MEMOROIDS
from rmdt.models.registry import MODELS
from rmdt.models.rnn_layers import RNN_LAYERS

LAYERS = [*MEMOROIDS, *RNN_LAYERS]

OBS, T = 3, 24
ACTION_KINDS = [dict(num_actions=5), dict(act_dim=2)]


@pytest.fixture
def make_model(tiny_policy):
    """``make_model(layer="ffm", **fields)``: this module's tiny recurrent policy."""
    return tiny_policy.with_defaults("ffm", obs_shape=[OBS], num_actions=5, n_layers=2, horizon=32)


def make_tape(model, batch=3, seed=1, starts_at=(0, 7, 8, 15)) -> Batch:
    """Random tapes with episodes starting at ``starts_at`` (timesteps restart there)."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    actions = (torch.randint(0, c.num_actions, (batch, T), generator=g) if c.num_actions
               else torch.rand(batch, T, c.act_dim, generator=g) * 2 - 1)
    timesteps = torch.zeros(batch, T, dtype=torch.long)
    for t in range(1, T):
        timesteps[:, t] = 0 if t in starts_at else timesteps[:, t - 1] + 1
    return Batch(returns_to_go=torch.randn(batch, T, generator=g), observations=torch.randn(batch, T, OBS, generator=g),
                 actions=actions, rewards=torch.zeros(batch, T), timesteps=timesteps,
                 mask=torch.ones(batch, T, dtype=torch.bool))


def outputs(model, batch, state=None):
    return model(batch.returns_to_go, batch.observations, batch.actions, batch.timesteps == 0, state)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("kind", ACTION_KINDS, ids=["discrete", "continuous"])
def test_shapes_and_loss(layer, kind, make_model):
    model = make_model(layer, **kind).train()
    batch = make_tape(model)
    preds, _ = outputs(model, batch)
    assert preds.shape == (3, T, 5 if kind.get("num_actions") else 2)
    loss, metrics = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and "loss" in metrics
    assert_gradients_reach(model)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("kind", ACTION_KINDS, ids=["discrete", "continuous"])
def test_act_step_by_step_matches_forward_on_a_tape(layer, kind, make_model):
    """Episodes laid end to end in training == the evaluator's rollout with resets between episodes."""
    model = make_model(layer, **kind)
    batch = make_tape(model)
    with torch.no_grad():
        expected, _ = outputs(model, batch)
    state = model.initial_state(3)
    last_action = torch.zeros_like(batch.actions[:, 0])
    for t in range(T):
        if t and bool(batch.timesteps[0, t] == 0):
            state = model.reset(state, torch.ones(3, dtype=torch.bool))
        out, state = model.act(state, batch.observations[:, t], last_action, torch.zeros(3),
                               batch.returns_to_go[:, t])
        torch.testing.assert_close(out, expected[:, t], rtol=1e-5, atol=1e-5)
        last_action = batch.actions[:, t]


@pytest.mark.parametrize("layer", LAYERS)
def test_act_matches_forward_with_different_starts_in_every_row(layer, make_model):
    """Random episode starts, different per row: the evaluator restarts single rows with ``reset``."""
    model = make_model(layer)
    batch = make_tape(model, batch=4)
    starts = torch.rand(4, T, generator=torch.Generator().manual_seed(5)) < 0.2
    starts[:, 0] = True
    with torch.no_grad():
        expected, _ = model(batch.returns_to_go, batch.observations, batch.actions, starts)
    state = model.initial_state(4)
    last_action = torch.zeros_like(batch.actions[:, 0])
    for t in range(T):
        if t:
            state = model.reset(state, starts[:, t])
        out, state = model.act(state, batch.observations[:, t], last_action, torch.zeros(4), batch.returns_to_go[:, t])
        torch.testing.assert_close(out, expected[:, t], rtol=1e-5, atol=1e-5)
        last_action = batch.actions[:, t]


@pytest.mark.parametrize("layer", RNN_LAYERS)
def test_rnn_packed_runs_equal_the_step_loop(layer, make_model):
    """The two exact resets of GRU/LSTM (packed runs for cuDNN, a masked step loop) agree, gradients too."""
    batch = make_tape(make_model(layer), batch=4)
    starts = torch.rand(4, T, generator=torch.Generator().manual_seed(7)) < 0.2
    results = []
    for scan in ("parallel", "sequential"):
        model = make_model(layer, scan=scan)
        out, state = model(batch.returns_to_go, batch.observations, batch.actions, starts)
        out.square().sum().backward()
        results.append((out, state.layers, [p.grad for p in model.parameters()]))
    (out_p, state_p, grad_p), (out_s, state_s, grad_s) = results
    torch.testing.assert_close(out_p, out_s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state_p, state_s, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_p, grad_s, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scan", ["parallel", "sequential"])
@pytest.mark.parametrize("layer", RNN_LAYERS)
def test_rnn_layers_run_in_float32_under_cpu_bf16_autocast(layer, scan, make_model):
    """bf16 mixed precision on a CPU: GRU/LSTM give the float32 result (oneDNN has no bf16 LSTM on
    CPUs without bf16 instructions, where this raised) and gradients reach the parameters."""
    batch = make_tape(make_model(layer), batch=4)
    starts = torch.rand(4, T, generator=torch.Generator().manual_seed(3)) < 0.2
    model = make_model(layer, scan=scan)
    reference, _ = model(batch.returns_to_go, batch.observations, batch.actions, starts)
    memory = model.blocks[0].memory
    x, state = torch.randn(4, T, 16), memory.initial_state(4)
    plain, _ = memory(x, starts, state)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = memory(x, starts, state)
        out, _ = model(batch.returns_to_go, batch.observations, batch.actions, starts)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)
    torch.testing.assert_close(out.float(), reference, rtol=0.1, atol=0.1)
    out.float().square().sum().backward()
    assert_gradients_reach(memory)


@pytest.mark.parametrize("layer", LAYERS)
def test_no_gradient_crosses_an_episode_start(layer, make_model):
    model = make_model(layer)
    batch = make_tape(model, starts_at=(0, 9))
    observations = batch.observations.clone().requires_grad_(True)
    out, _ = model(batch.returns_to_go, observations, batch.actions, batch.timesteps == 0)
    out[:, 9:].sum().backward()
    assert observations.grad[:, :9].abs().max() == 0
    assert observations.grad[:, 9:].abs().max() > 0


@pytest.mark.parametrize("layer", LAYERS)
def test_forward_in_chunks_matches_one_pass(layer, make_model):
    model = make_model(layer)
    batch = make_tape(model)
    with torch.no_grad():
        whole, _ = outputs(model, batch)
        first, state = outputs(model, batch[:, :10])
        rest, _ = outputs(model, batch[:, 10:], state)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, rtol=1e-5, atol=1e-5)


def perturb(batch: Batch, name: str, steps) -> Batch:
    fields = {k: v.clone() for k, v in batch.__dict__.items()}
    value = fields[name]
    value[:, steps] = (value[:, steps] + 1) % 5 if name == "actions" else value[:, steps] + 1.5
    return Batch(**fields)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("name", ["returns_to_go", "observations", "actions"])
def test_causal_and_action_at_t_unseen_by_its_own_prediction(layer, name, make_model):
    model = make_model(layer)
    batch = make_tape(model, starts_at=(0,))
    with torch.no_grad():
        base, _ = outputs(model, batch)
        changed, _ = outputs(model, perturb(batch, name, [12]))
    last_unchanged = 12 if name == "actions" else 11  # a_12 first enters at step 13
    torch.testing.assert_close(changed[:, :last_unchanged + 1], base[:, :last_unchanged + 1])
    assert not torch.allclose(changed[:, last_unchanged + 1], base[:, last_unchanged + 1])


@pytest.mark.parametrize("layer", LAYERS)
def test_an_episode_start_forgets_the_previous_episode(layer, make_model):
    model = make_model(layer)
    batch = make_tape(model, starts_at=(0, 9))
    with torch.no_grad():
        base, _ = outputs(model, batch)
        changed, _ = outputs(model, perturb(perturb(batch, "observations", range(9)), "actions", range(9)))
    torch.testing.assert_close(changed[:, 9:], base[:, 9:])
    assert not torch.allclose(changed[:, 8], base[:, 8])


@pytest.mark.parametrize("layer", LAYERS)
def test_save_load_round_trip_offline(tmp_path, layer, make_model):
    from rmdt.evaluation import load_policy

    model = make_model(layer, act_dim=2, obs_mean=[0.5, 0.0, 1.0], obs_std=[2.0, 1.0, 1.0])
    with torch.no_grad():  # moved away from the initialisation, so a re-init on load would show
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(tmp_path)
    loaded = load_policy(tmp_path)
    assert isinstance(loaded, RecurrentModel) and loaded.config.layer == layer
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    batch = make_tape(model)
    with torch.no_grad():
        torch.testing.assert_close(outputs(loaded, batch)[0], outputs(model, batch)[0])


@pytest.mark.parametrize("field, overrides", [("layer", dict(layer="transformer")), ("scan", dict(scan="fast")),
                                              ("memory_size", dict(memory_size=0)),
                                              ("d_model", dict(layer="linear_attention", d_model=15))])
def test_bad_config_names_the_field(field, overrides, make_model):
    with pytest.raises(ValueError, match=f"RecurrentConfig.{field}"):
        make_model(**overrides)


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return ["data.recipe_args={episodes: 40, min_length: 1, max_length: 10, seed: 1}", f"data.root={root}",
            "data.batching=tape", "data.tape_len=20", "model.kind=ffm", "model.d_model=16", "model.n_layers=1",
            "model.memory_size=4", "model.context_size=2", "model.dropout=0.1", "training.steps=6",
            "training.batch_size=4", "training.warmup_steps=2", "training.log_every=2", "training.checkpoint_every=3",
            "evaluation.env_args.corridor_lengths=[3]", "evaluation.episodes=4"]


def test_configs_dispatch_and_refuse_tapes_for_rmdt(tiny):
    tape_kinds = [kind for kind, entry in MODELS.items() if "tape" in entry.model_class.batchings]
    assert tape_kinds == ["ffm", "linear_attention", "lru", "gru", "lstm"]
    for name in tape_kinds:
        config = load_config(ROOT / "configs" / "tmaze" / f"{name}.yaml")
        assert config.model.kind == name and config.data.batching == "tape"
    with pytest.raises(ConfigError, match="data.batching 'tape' needs a model kind that trains on it "
                                          r"\(ffm, linear_attention, lru, gru, lstm\), not 'rmdt'"):
        load_config(ROOT / "configs" / "tmaze" / "rmdt.yaml", ["data.batching=tape"])
    with pytest.raises(ConfigError, match="model.kind 'rnn' is unknown"):
        load_config(ROOT / "configs" / "tmaze" / "gru.yaml", ["model.kind=rnn"])


@pytest.mark.parametrize("kind", RNN_LAYERS)
@pytest.mark.parametrize("batching", ["tape", "segments"])
@pytest.mark.slow
def test_rnn_configs_train_on_tapes_and_segments(tiny, tmp_path, kind, batching):
    from rmdt.training import train

    config = load_config(ROOT / "configs" / "tmaze" / f"{kind}.yaml",
                         [*tiny, f"model.kind={kind}", f"data.batching={batching}", "data.context_len=10",
                          "data.num_segments=2", "training.steps=3"])
    policy = train(config, run_dir=tmp_path / "run").policy
    assert isinstance(policy, RecurrentModel) and policy.config.layer == kind
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_tape_training_resumes_exactly(tiny, tmp_path):
    from rmdt.training import train
    from rmdt.training.checkpoint import checkpoint_dirs

    config = load_config(ROOT / "configs" / "tmaze" / "ffm.yaml", tiny)
    straight = train(config, run_dir=tmp_path / "a").policy
    assert isinstance(straight, RecurrentModel)
    run = tmp_path / "b"
    train(config, run_dir=run)
    for later in checkpoint_dirs(run)[1:]:
        shutil.rmtree(later)
    shutil.rmtree(run / "final")
    resumed = train(config, run_dir=run, resume=True).policy
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
