"""Windows per second of a sampler drawn from as the trainer draws from it: the check that the input
pipeline keeps up with a training step (``bench/perf/loader.py`` and ``bench/perf/atari.py`` print it)."""
from __future__ import annotations

import time


def windows_per_second(sampler, batch_size: int, seconds: float, consume: float = 0.0) -> float:
    """Windows/s of ``sampler.batch(step, batch_size)`` for consecutive steps over about ``seconds``
    (the first batch, a warm-up, not counted); ``consume`` seconds of sleep after each batch stand for
    an accelerator's step, which leaves the CPU free for prefetching threads."""
    sampler.batch(0, batch_size)
    step, start = 1, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.batch(step, batch_size)
        time.sleep(consume)
        step += 1
    return (step - 1) * batch_size / (time.perf_counter() - start)
