"""Named model presets: a model kind with the fields, batching and batch size it is run with in the
memory suites, so that a task's base config composes with any of them::

    python train.py configs/popgym/count_recall_easy.yaml model=ffm seed=2

A preset is a partial run config: the task's file and the command line override it, key by key.
``window`` presets derive a setting from the task's window of N segments of K steps after that
(DT-NK sees the whole window as one segment; TrXL caches the window's steps).
Configs, bench scripts and tests all take their variants from ``PRESETS``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

from rmdt.registry import Registry
from rmdt.typed import merge

ATOMIC_KEYS = ("recipe_args",)  # mappings replaced whole, never merged key by key


@dataclass(frozen=True)
class Preset:
    values: dict  # partial run config: {"model": {"kind": ..., ...}, "data": {...}, "training": {...}}
    about: str  # one line for listings and docs
    window: Callable[[dict], dict] | None = field(default=None)  # run-config data section -> values derived from it

    def apply(self, config: dict, data_defaults: dict) -> dict:
        """``config`` (the merged file and command line, a dict) on top of this preset's values;
        ``data_defaults``: the data section's defaults, for the settings ``window`` derives from."""
        merged = merge(copy.deepcopy(self.values), config, atomic=ATOMIC_KEYS)
        if self.window is not None:
            merged = merge(merged, self.window({**data_defaults, **merged.get("data", {})}))
        return merged


def _window_len(data: dict) -> int:
    return data["context_len"] * data["num_segments"]


def _one_segment(data: dict) -> dict:
    return {"data": {"context_len": _window_len(data), "num_segments": 1}}


def _cache_window(data: dict) -> dict:
    return {"model": {"cache_len": _window_len(data)}}


_TAPES = {"data": {"batching": "tape"}, "training": {"batch_size": 16}}
_SEGMENTS = {"data": {"batching": "segments"}, "training": {"batch_size": 64}}

PRESETS: Registry[Preset] = Registry("model preset")
for _name, _preset in {
    "rmdt": Preset({"model": {"kind": "rmdt", "memory_tokens": 8}, **_SEGMENTS},
                   "RMDT: 8 memory tokens carried across the N segments of a window"),
    "rmdt_replay": Preset({"model": {"kind": "rmdt", "memory_tokens": 8, "memory_replay": 3}, **_SEGMENTS},
                          "RMDT with memory replay (each segment but the last writes memory 1 to 4 times)"),
    "rmt": Preset({"model": {"kind": "rmdt", "memory_tokens": 8, "memory_update": "replace", "memory_replay": 0,
                             "cache_len": 0}, **_SEGMENTS},
                  "Recurrent Memory Transformer: memory tokens replaced by the write outputs, no cache, no replay"),
    "elmur": Preset({"model": {"kind": "elmur", "memory_size": 4, "lru_blend_alpha": 0.79}, **_SEGMENTS},
                    "ELMUR: a bank of 4 slots per layer, least recently used rewritten by a 0.79 blend"),
    "dt": Preset({"model": {"kind": "rmdt", "memory_tokens": 0}, **_SEGMENTS},
                 "Decision Transformer over K steps (each segment on its own)"),
    "dt_nk": Preset({"model": {"kind": "rmdt", "memory_tokens": 0}, **_SEGMENTS},
                    "Decision Transformer over the whole N*K window as one segment", window=_one_segment),
    "trxl": Preset({"model": {"kind": "rmdt", "memory_tokens": 0}, **_SEGMENTS},
                   "Transformer-XL: no memory tokens, a cache of the window's N*K hidden states", window=_cache_window),
    "ffm": Preset({"model": {"kind": "ffm", "memory_size": 32, "context_size": 4, "horizon": 256}, **_TAPES},
                  "Fast and Forgetful Memory on tapes of whole episodes"),
    "linear_attention": Preset({"model": {"kind": "linear_attention", "n_heads": 4, "memory_size": 16}, **_TAPES},
                               "linear attention memoroid (key size 16 per head) on tapes"),
    "lru": Preset({"model": {"kind": "lru", "memory_size": 64}, **_TAPES},
                  "diagonal linear recurrence (LRU, complex state 64) on tapes"),
    "gru": Preset({"model": {"kind": "gru"}, **_TAPES}, "GRU on tapes of whole episodes"),
    "lstm": Preset({"model": {"kind": "lstm"}, **_TAPES}, "LSTM on tapes of whole episodes"),
}.items():
    PRESETS.register(_name, _preset)
