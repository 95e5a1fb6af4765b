"""The model side's modules import cleanly and without cycles.

A cycle between modules shows only for some import orders, so it is looked for in the import
graph itself (every module-level ``import`` / ``from … import`` of export/ and edge/, read with
``ast``), and every module is then imported for real in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("export", "edge")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in sorted((REPO / package).rglob("*.py"))
    }


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """Our modules imported when ``path`` is imported (module level; TYPE_CHECKING blocks left out)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[name] = 2
        path.pop()
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_of_export_or_edge_is_part_of_an_import_cycle() -> None:
    modules = all_modules()
    graph = {name: top_level_imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert "export.commands.train" in graph and "export.cli" in graph
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_every_export_module_imports_in_a_fresh_interpreter() -> None:
    script = (
        "import importlib, pkgutil, export\n"
        "names = sorted(m.name for m in pkgutil.walk_packages(export.__path__, 'export.'))\n"
        "for name in reversed(names):\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip()) >= 30


def test_the_commands_are_apart_from_the_library() -> None:
    """Library modules (export/*.py, export/model/) never import the commands or the CLI."""
    modules = all_modules()
    library = [
        n for n in modules if n.startswith("export.") and not n.startswith(("export.commands", "export.cli"))
    ]
    for name in library:
        tree = ast.parse(modules[name].read_text(encoding="utf-8"))
        imported = [
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        ]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m.startswith(("export.commands", "export.cli"))], name
