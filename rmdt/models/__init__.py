"""Models behind the one policy interface (``rmdt.models.policy.Policy``)."""
from rmdt.models.embeddings import OBS_ENCODERS, register_obs_encoder
from rmdt.models.policy import Policy
from rmdt.models.recurrent import RecurrentConfig, RecurrentModel, RecurrentState
from rmdt.models.rmdt import RMDTConfig, RMDTModel, RMDTOutput, RMDTState

__all__ = ["OBS_ENCODERS", "register_obs_encoder", "Policy", "RMDTConfig", "RMDTModel",
           "RMDTOutput", "RMDTState", "RecurrentConfig", "RecurrentModel", "RecurrentState"]
