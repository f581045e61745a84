"""The complex-valued FFM and LRU scans stay complex64 under bf16 autocast (there is no complex bf16)."""
import pytest
import torch
from training_helpers import assert_gradients_reach

from rmdt.models.memoroid_layers import LAYERS


@pytest.mark.parametrize("name", ["ffm", "lru"])
@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_complex_scans_run_in_complex64_under_cpu_autocast(name, mode):
    torch.manual_seed(0)
    layer = LAYERS[name](16)
    x = torch.randn(2, 40, 16)
    starts = torch.zeros(2, 40, dtype=torch.bool)
    starts[:, [0, 17]] = True
    reference, _ = layer(x, starts, mode=mode)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = layer(x, starts, mode=mode)
        state_now = layer.initial_state(2)
    assert state[0].dtype == torch.complex64 and state_now[0].dtype == torch.complex64
    torch.testing.assert_close(out.float(), reference, atol=5e-2, rtol=5e-2)  # bf16 matmuls around the scan
    out.float().square().sum().backward()
    assert_gradients_reach(layer)
