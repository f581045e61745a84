"""Loading a dataset recipe by name: the module ``rmdt.recipes.<name>`` (``data.recipe`` in configs)."""
from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from rmdt.recipes import recipe_names


def unknown_recipe(name: str) -> str | None:
    """None for a known recipe, else the error to show (with the closest name)."""
    known = recipe_names()
    if name in known:
        return None
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown dataset recipe {name!r}{hint}; known: {', '.join(known)}"


def load_recipe(name: str) -> ModuleType:
    """The module ``rmdt.recipes.<name>``; each recipe has ``build(..., root=None) -> dataset id``."""
    message = unknown_recipe(name)
    if message:
        raise ValueError(message)
    return importlib.import_module(f"rmdt.recipes.{name}")
