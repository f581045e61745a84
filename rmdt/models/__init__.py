"""Models behind the one policy interface (``rmdt.models.policy.Policy``), one registry of model kinds
(``rmdt.models.registry``: importing this package registers the built-in kinds)."""
from rmdt.models.embeddings import OBS_ENCODERS, register_obs_encoder
from rmdt.models.policy import Policy
from rmdt.models.policy_config import PolicyConfig
from rmdt.models.recurrent import RecurrentConfig, RecurrentModel, RecurrentState
from rmdt.models.registry import MODELS, register_model
from rmdt.models.rmdt import RMDTConfig, RMDTModel, RMDTOutput, RMDTState

__all__ = ["MODELS", "OBS_ENCODERS", "Policy", "PolicyConfig", "RMDTConfig", "RMDTModel", "RMDTOutput", "RMDTState",
           "RecurrentConfig", "RecurrentModel", "RecurrentState", "register_model", "register_obs_encoder"]
