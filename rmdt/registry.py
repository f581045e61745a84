"""A registry maps a name to one entry (a model kind, an environment, a preset), so each concept is
registered once and found from there; unknown names fail with the closest known one."""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from rmdt.suggest import did_you_mean

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no registry entry has; its message says what was looked up and the closest known name.
    (A ValueError too: to a caller it is a bad value, e.g. a config's ``evaluation.env``.)"""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    unknown = UnknownName  # the error of a lookup; a registry of one concept may narrow it

    def __init__(self, what: str) -> None:
        self.what = what  # e.g. "model kind": the noun in error messages
        self.entries: dict[str, T] = {}

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        """Adds ``entry`` under ``name``. Registering the same entry again does nothing (a module imported
        twice); another entry under a taken name is an error unless ``replace``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} needs a non-empty string name, got {name!r}")
        if name in self.entries and self.entries[name] != entry and not replace:
            raise ValueError(f"{self.what} {name!r} is already registered as {self.entries[name]!r} "
                             "(pass replace=True to change it)")
        self.entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        if name not in self.entries:
            raise self.unknown(f"unknown {self.what} {name!r}{did_you_mean(name, self.entries)}")
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def items(self):
        return self.entries.items()
