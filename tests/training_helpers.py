"""What several test modules that train the tiny T-Maze run share (shared here, not imported from
another test module; the run's overrides are the ``tiny`` fixture of conftest.py)."""
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tmaze" / "quickstart.yaml"


def params(policy) -> dict:
    """A detached copy of every parameter and buffer, to compare runs exactly."""
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}
