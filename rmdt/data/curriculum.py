"""A curriculum over the number of segments per training window (RATE's min_n_final / max_n_final):
train on windows of 1 segment, then 2, ... up to ``data.num_segments``, for any memory update rule.

The window of step s is the first N(s) segments of the full window the sampler draws for s, so a
batch still depends only on (seed, step) and a resumed run reproduces the uninterrupted one.
"""
from __future__ import annotations

import re

SCHEDULE_HELP = "a list of [step, N] pairs from step 0 (e.g. [[0, 1], [200, 2], [400, 3]]) or 'linear A->B over S'"


def parse_schedule(schedule, num_segments: int, key: str = "data.num_segments_schedule") -> list[tuple[int, int]]:
    """``[[step, N], ...]`` or ``"linear A->B over S"`` (N rises evenly from A at step 0 to B at step S) ->
    sorted (step, N) pairs starting at step 0, each N in 1..num_segments; a bad value is a ValueError naming ``key``."""
    if isinstance(schedule, str):
        match = re.fullmatch(r"\s*linear\s+(\d+)\s*->\s*(\d+)\s+over\s+(\d+)\s*", schedule)
        if not match:
            raise ValueError(f"{key} must be {SCHEDULE_HELP}, got {schedule!r}")
        first, last, steps = map(int, match.groups())
        if last < first or steps < 1:
            raise ValueError(f"{key}: 'linear A->B over S' needs A <= B and S >= 1, got {schedule!r}")
        span = last - first + 1  # each N gets an equal share of the S steps, then B holds
        pairs = [(steps * i // span, first + i) for i in range(span)]
    else:
        ok = isinstance(schedule, list) and schedule and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in p)
            for p in schedule)
        if not ok:
            raise ValueError(f"{key} must be {SCHEDULE_HELP}, got {schedule!r}")
        pairs = [tuple(p) for p in schedule]
    steps = [s for s, _ in pairs]
    if steps[0] != 0 or steps != sorted(set(steps)):
        raise ValueError(f"{key}: steps must start at 0 and increase, got {[list(p) for p in pairs]}")
    bad = [n for _, n in pairs if not 1 <= n <= num_segments]
    if bad:
        raise ValueError(f"{key}: segment counts must be in 1..data.num_segments={num_segments}, got {bad}")
    return pairs


def segments_at(pairs: list[tuple[int, int]], step: int) -> int:
    """N of the last pair whose step is <= ``step``."""
    return [n for s, n in pairs if s <= step][-1]


class CurriculumSampler:
    """Wraps a SegmentSampler: the batch of step s holds the first ``segments_at(s)`` segments of its windows."""

    def __init__(self, sampler, schedule, num_segments: int):
        self.sampler, self.pairs = sampler, parse_schedule(schedule, num_segments)
        self.context_len = sampler.context_len

    def num_segments(self, step: int) -> int:
        return segments_at(self.pairs, step)

    def batch(self, step: int, batch_size: int):
        batch = self.sampler.batch(step, batch_size)
        length = self.num_segments(step) * self.context_len
        return batch if length == batch.mask.shape[1] else batch[:, :length]

    def __getattr__(self, name):
        return getattr(self.sampler, name)
