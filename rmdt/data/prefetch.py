"""Batches of the next steps built in background threads while the current step trains.

The trainer asks ``sampler.batch(step, batch_size)`` once per optimizer step, on the main process;
on a GPU the step is faster than the sampler (Atari windows), so the accelerator would wait for it.
``PrefetchingSampler`` answers the same calls from batches it started building ``depth`` steps
ahead, in pinned memory when CUDA is there (``Batch.to`` then copies asynchronously). The batch of
step ``s`` is still ``sampler.batch(s, batch_size)``, which depends only on ``(seed, s)``: prefetch
changes when a batch is built, never what it holds, so resumed and multi-process runs stay exact.

Threads, not processes: the samplers spend their time in numpy gathers and memory-mapped reads,
which release the GIL, and a thread hands its batch over without pickling it (bench/perf/loader.py
measures both).
"""
from __future__ import annotations

import weakref
from concurrent.futures import Future, ThreadPoolExecutor


class PrefetchingSampler:
    """Wraps a sampler with ``batch(step, batch_size)``; asked for step s, it returns that batch and
    starts steps s+1 .. s+depth (asked for another step, it builds that one and starts after it)."""

    def __init__(self, sampler, workers: int, depth: int | None = None, pin_memory: bool = False) -> None:
        if workers < 1:
            raise ValueError(f"prefetch workers must be >= 1, got {workers}")
        self.sampler, self.workers, self.pin_memory = sampler, workers, pin_memory
        self.depth = depth or 2 * workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="rmdt-prefetch")
        self._pending: dict[tuple[int, int], Future] = {}
        weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)

    def __getattr__(self, name):  # the wrapped sampler's attributes (trajectories, seed, ...)
        if name == "sampler":
            raise AttributeError(name)
        return getattr(self.sampler, name)

    def _build(self, step: int, batch_size: int):
        batch = self.sampler.batch(step, batch_size)
        return batch.pin_memory() if self.pin_memory else batch

    def batch(self, step: int, batch_size: int):
        """The batch of ``step``: exactly ``sampler.batch(step, batch_size)``."""
        future = self._pending.pop((step, batch_size), None)
        for key in [key for key in self._pending if key[0] <= step or key[1] != batch_size]:
            self._pending.pop(key).cancel()  # a jump (resume) or another batch size: stale work
        for ahead in range(step + 1, step + 1 + self.depth):
            if (ahead, batch_size) not in self._pending:
                self._pending[(ahead, batch_size)] = self._pool.submit(self._build, ahead, batch_size)
        return future.result() if future is not None else self._build(step, batch_size)

    def close(self) -> None:
        """Stops the workers (pending batches are dropped)."""
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
