"""What the dataset recipes' command lines share (each env's ``recipe.py``, run by ``datasets/<name>.py``)."""
from __future__ import annotations


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
