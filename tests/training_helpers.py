"""Plain helpers several test modules share (the fixtures are in conftest.py; no test module imports another)."""
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tmaze" / "quickstart.yaml"


def params(policy) -> dict:
    """A detached copy of every parameter and buffer, to compare runs exactly."""
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


def assert_gradients_reach(module) -> None:
    """Every parameter of ``module`` has a finite gradient that is not all zeros (``grad is not None``
    also holds for a parameter the loss reaches only through a zeroing mask or a detach)."""
    dead = [name for name, p in module.named_parameters()
            if p.grad is None or not p.grad.isfinite().all() or not p.grad.any()]
    assert not dead, f"no finite, nonzero gradient: {dead}"
