"""The repository's shape: recipes importable from an installed package, test modules independent."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_recipes_are_modules_of_the_package_and_the_scripts_only_call_them():
    """An installed rmdt has no datasets/ folder: recipes must import from the package (contract C3)."""
    import importlib

    from rmdt.envs.registry import ENVS

    scripts = sorted(p.stem for p in (ROOT / "datasets").glob("*.py"))
    assert scripts == sorted(ENVS.recipe_names())
    for name in scripts:
        assert ENVS.recipe(name) is importlib.import_module(f"rmdt.envs.{name}.recipe")
        assert f"from rmdt.envs.{name}.recipe import main" in (ROOT / "datasets" / f"{name}.py").read_text()


def test_no_test_module_imports_another():
    """Shared test helpers live in helper modules (clue_task.py) or conftest.py fixtures."""
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            assert not any(name.split(".")[0].startswith("test_") for name in names), f"{path.name} imports {names}"
