"""The cue-recall task several test modules train and probe memory on (shared here, not imported from
another test module)."""
import torch

from rmdt.data.segments import Batch

SEGMENTS = 3  # segments per window of the task


def clue_batch(batch_size: int, context_len: int, generator) -> Batch:
    """A cue-recall task: a +-1 clue in the first observation, the action at every step is the clue."""
    L = context_len * SEGMENTS
    clue = torch.randint(0, 2, (batch_size,), generator=generator)
    obs = torch.zeros(batch_size, L, 2)
    obs[:, 0, 0] = 2.0 * clue - 1
    obs[:, :, 1] = torch.randint(-1, 2, (batch_size, L), generator=generator).float()  # distractor noise
    return Batch(returns_to_go=torch.ones(batch_size, L), observations=obs,
                 actions=clue[:, None].expand(batch_size, L).clone(), rewards=torch.zeros(batch_size, L),
                 timesteps=torch.arange(L).expand(batch_size, L).clone(),
                 mask=torch.ones(batch_size, L, dtype=torch.bool))
