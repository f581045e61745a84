"""Dataset recipes: one module per dataset family, each with ``build(..., root=None)`` (writes the
dataset once, atomically, under an id that encodes the arguments, and returns that id or path) and
``main(argv)`` (its command line, also run by the script ``datasets/<name>.py``).

They live in the package so an installed rmdt (not only a checkout) has them; ``data.recipe: <name>``
in a config loads ``rmdt.recipes.<name>`` through ``rmdt.data.recipes.load_recipe``.
"""
from __future__ import annotations

import pkgutil


def recipe_names() -> list[str]:
    """Names of the recipe modules, found without importing them."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
