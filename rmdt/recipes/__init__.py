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


def add_root_argument(parser) -> None:
    """The ``--root`` option every Minari recipe's command line has."""
    parser.add_argument("--root", default=None, help="datasets directory (default $MINARI_DATASETS_PATH, "
                                                     "else ~/.minari/datasets)")


def show_dataset(name: str, root=None):
    """Prints where a built dataset is and its summary (the end of every recipe's command line)."""
    from rmdt.data.minari_source import dataset_path, load_minari

    data = load_minari(name, root)
    print(f"dataset {name} at {dataset_path(name, root)}")
    print(data.summary())
    return data
