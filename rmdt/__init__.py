"""rmdt: offline reinforcement learning with memory (Recurrent Memory Decision Transformers and baselines)."""
from rmdt.envs.registry import register_gymnasium_envs

register_gymnasium_envs()

__version__ = "0.1.0"
