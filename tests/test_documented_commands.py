"""The commands the README and the docs pages show still run as written: every ``train.py`` command on a
config of the repository loads its config (with its overrides, preset and --import flags stripped of
placeholders), every ``python -m rmdt.sweep`` command parses and loads its sweep file (with its
--tasks, --models and --seeds), and every script they name exists."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rmdt.config import load_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
COMMAND = re.compile(r"python ((?:train|evaluate)\.py|-m rmdt\.sweep|bench/\S+\.(?:py|sh)|datasets/\S+\.py)([^`\n|]*)")


def commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for page in PAGES:
        for script, rest in COMMAND.findall(page.read_text()):
            text = rest.split("#")[0].rstrip().rstrip("\\")
            try:
                args = shlex.split(text)
            except ValueError:  # a line continued on the next one
                args = text.split()
            found.append((page.relative_to(ROOT).as_posix(), script, args))
    return found


def concrete_commands(script: str):
    """``<script> configs/...`` commands (``train.py``, ``-m rmdt.sweep``) with concrete arguments (no
    ``<placeholder>``, ``{a,b}`` or ``[...]``)."""
    for page, found, args in commands():
        if found == script and args and args[0].startswith("configs/") and not any(
                set(arg) & set("<>{}[]") for arg in args):
            yield pytest.param(args, id=f"{page}: {' '.join(args)}")


def test_the_docs_show_commands():
    assert len([c for c in commands() if c[1] == "train.py"]) >= 20


@pytest.mark.parametrize("args", list(concrete_commands("train.py")))
def test_documented_training_command_loads_its_config(args):
    positional, flags = [], iter(args[1:])
    for arg in flags:
        if arg in ("--run-dir", "--import"):
            next(flags)
        elif not arg.startswith("--"):
            positional.append(arg)
    load_config(ROOT / args[0], positional)


def test_the_docs_show_sweep_commands():
    assert len(list(concrete_commands("-m rmdt.sweep"))) >= 8


@pytest.mark.parametrize("args", list(concrete_commands("-m rmdt.sweep")))
def test_documented_sweep_command_loads_its_sweep_file(args):
    from rmdt.sweep import load_sweep
    from rmdt.sweep.__main__ import parser

    parsed = parser().parse_args(args)
    assert load_sweep(ROOT / parsed.sweep, parsed.tasks, parsed.models, parsed.seeds).runs
    assert all((ROOT / path).is_file() for path in parsed.merge)


@pytest.mark.parametrize("script", sorted({script for _, script, _ in commands() if script not in (
    "train.py", "evaluate.py", "-m rmdt.sweep")}))
def test_documented_script_exists(script):
    assert (ROOT / script).is_file()
