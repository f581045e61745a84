"""The Nature-CNN observation encoder: layouts, scaling, and training an RMDT on pixels."""
import pytest
import torch

from rmdt.data.segments import Batch
from rmdt.models.embeddings import build_obs_encoder


@pytest.mark.parametrize("shape", [(4, 84, 84), (64, 64, 3), (84, 84)])
def test_any_leading_dims_map_to_d_model(shape):
    encoder = build_obs_encoder("nature_cnn", shape, 24)
    obs = torch.randint(0, 256, (2, 5, *shape), dtype=torch.uint8)
    out = encoder(obs)
    assert out.shape == (2, 5, 24)
    torch.testing.assert_close(out[1, 3], encoder(obs[1, 3]))  # rows are encoded independently


def test_channels_last_images_equal_the_same_image_channels_first():
    torch.manual_seed(0)
    last = build_obs_encoder("nature_cnn", (64, 64, 3), 16)
    first = build_obs_encoder("nature_cnn", (3, 64, 64), 16)
    first.load_state_dict(last.state_dict())
    image = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    torch.testing.assert_close(last(image), first(image.permute(0, 3, 1, 2)))


def test_uint8_and_float_pixels_agree():
    encoder = build_obs_encoder("nature_cnn", (4, 84, 84), 16)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(encoder(obs), encoder(obs.float()))


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="nature_cnn needs"):
        build_obs_encoder("nature_cnn", (7,), 16)


def test_rmdt_on_pixels_gets_gradients_in_its_cnn(tiny_policy):
    model = tiny_policy(obs_shape=[4, 84, 84], num_actions=3, context_len=2, d_model=32, obs_encoder="nature_cnn")
    assert_cnn_gets_gradients(model, pixel_batch(4, (4, 84, 84), num_actions=3))


def test_recurrent_policy_on_pixels_gets_gradients_in_its_cnn(tiny_policy):
    model = tiny_policy("ffm", obs_shape=[64, 64, 3], num_actions=6, d_model=32, obs_encoder="nature_cnn")
    assert_cnn_gets_gradients(model, pixel_batch(5, (64, 64, 3), num_actions=6))


def pixel_batch(steps: int, obs_shape, num_actions: int, rows: int = 2) -> Batch:
    return Batch(returns_to_go=torch.ones(rows, steps),
                 observations=torch.randint(0, 256, (rows, steps, *obs_shape), dtype=torch.uint8),
                 actions=torch.randint(0, num_actions, (rows, steps)), rewards=torch.zeros(rows, steps),
                 timesteps=torch.arange(steps).repeat(rows, 1), mask=torch.ones(rows, steps, dtype=torch.bool))


def assert_cnn_gets_gradients(model, batch: Batch) -> None:
    loss, _ = model.loss(batch)
    loss.backward()
    first_conv = model.embed_obs.conv[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
