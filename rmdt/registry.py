"""A registry maps a name to one entry (a model kind, an environment, a preset), so each concept is
registered once and found from there; unknown names fail with the closest known one."""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from rmdt.suggest import did_you_mean

T = TypeVar("T")


class UnknownName(KeyError):
    """A name no registry entry has; its message says what was looked up and the closest known name."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, what: str) -> None:
        self.what = what  # e.g. "model kind": the noun in error messages
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        """Adds ``entry`` under ``name``; registering a taken name is an error unless ``replace``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} needs a non-empty string name, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.what} {name!r} is registered already (pass replace=True to override it)")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownName(f"unknown {self.what} {name!r}{did_you_mean(name, self._entries)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self):
        return self._entries.items()
