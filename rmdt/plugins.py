"""``--import MODULE``: modules of the user's own that register model kinds or environments before a
run config is read (they call ``rmdt.models.register_model`` or ``rmdt.envs.register_env``)."""
from __future__ import annotations

import importlib
import os
import sys
from typing import Iterable


def import_plugins(modules: Iterable[str]) -> None:
    """Imports each module by its dotted name, from the working directory first; ValueError naming it
    when it cannot be imported."""
    modules = list(modules)
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:  # the plugin's own errors, whatever they are, named as the plugin's
            raise ValueError(f"--import {name}: cannot import it ({type(error).__name__}: {error})") from error


def add_import_argument(parser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (it registers a model kind or an environment); repeatable")
