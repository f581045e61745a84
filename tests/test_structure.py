"""The package's shape: no import cycle between rmdt's modules (imports inside functions count too),
a run config module that names no model kind and no environment, and modules of one job each."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rmdt"
MAX_LINES = 350  # a longer module says why in its docstring ("Long because ...")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: dict[str, Path], root: Path = ROOT) -> set[str]:
    """rmdt modules ``path`` imports anywhere in its body: ``from a.b import c`` counts as a.b.c when
    that is a module, else as a.b."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {target for target in found if target in known and target != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    known = modules()
    graph = {name: imported(path, known) for name, path in known.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_inside_functions_and_relative_imports_are_seen(tmp_path):
    files = {"rmdt/__init__.py": "", "rmdt/a.py": "def f():\n    from rmdt.b import g\n",
             "rmdt/b.py": "from . import c\n", "rmdt/c.py": "import rmdt.a\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    known = {module_name(tmp_path / name, tmp_path): tmp_path / name for name in files}
    graph = {name: imported(path, known, tmp_path) for name, path in known.items()}
    assert graph == {"rmdt": set(), "rmdt.a": {"rmdt.b"}, "rmdt.b": {"rmdt.c"}, "rmdt.c": {"rmdt.a"}}
    assert find_cycle(graph) == ["rmdt.a", "rmdt.b", "rmdt.c", "rmdt.a"]


def test_run_config_names_no_model_kind_and_no_environment():
    from rmdt.envs.registry import ENVS
    from rmdt.models.registry import MODELS

    sources = [path for path in (PACKAGE / "config").glob("*.py") if path.name != "upgrade.py"]  # old formats
    assert len(sources) >= 3
    strings = {node.value for path in sources for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not strings & (set(MODELS) | set(ENVS))


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_are_short_or_say_why(name):
    path = modules()[name]
    lines = len(path.read_text().splitlines())
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= MAX_LINES or "Long because" in docstring, f"{path}: {lines} lines and no reason in its docstring"
