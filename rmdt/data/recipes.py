"""Access to the dataset recipes in the project's ``datasets/`` folder.

``datasets/`` is a folder of scripts, deliberately not a package (the name must never shadow the
``datasets`` library), so its recipes are imported by file path.
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

RECIPES_DIR = Path(__file__).resolve().parents[2] / "datasets"


def load_recipe(name: str) -> ModuleType:
    """The module ``rmdt.recipes.<name>`` if the package has it, else ``datasets/<name>.py``; each
    recipe has ``build(..., root=None) -> dataset id``."""
    if importlib.util.find_spec(f"rmdt.recipes.{name}") is not None:
        return importlib.import_module(f"rmdt.recipes.{name}")
    path = RECIPES_DIR / f"{name}.py"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPES_DIR.glob("*.py"))
        raise ValueError(f"unknown dataset recipe {name!r}: no {path} (known: {', '.join(known)})")
    spec = importlib.util.spec_from_file_location(f"rmdt_recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
