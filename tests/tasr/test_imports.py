"""The import rules of ARCHITECTURE.md, read from the source (ast) of `tasr` and of the folders
`audio/` and `models/`, which install as `tasr.audio` and `tasr.models`.

- no import cycles among their modules (imports at module level, the ones that run on import);
- no function-local first-party imports (the CLI loads a command's module with importlib, which
  is not an import statement);
- `tasr.audio` and `tasr.models` never import the application (the rest of `tasr`); library
  modules of `tasr` never import `tasr.cli`.

Each test names every offender (file:line and the import), so one run lists all there is to fix.
Run this file with python to print them all without pytest.
"""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"tasr": "tasr", "audio": "tasr.audio", "models": "tasr.models"}  # folder -> package
LIBRARIES = ("tasr.audio", "tasr.models")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def find_modules() -> dict[str, Path]:
    """{dotted module name: its file} of every first-party module (a package is its __init__.py)."""
    modules = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


MODULES = find_modules()


def resolve(name: str) -> str | None:
    """The first-party module that importing `name` runs last: its longest prefix that is a module."""
    parts = name.split(".")
    if parts[0] != "tasr":
        return None
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


def imports_in(source: str, module: str, is_package: bool = False) -> list[tuple[str, int, str | None]]:
    """(imported first-party module, line, enclosing function or None) of each import in the
    source of `module` (`is_package`: an __init__.py, for relative imports)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []

    def visit(node, function):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    found.append((target, node.lineno, function))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # `from tasr import data` imports the module tasr.data
                target = resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in MODULES else resolve(base)
                if target and (target, node.lineno, function) not in found:
                    found.append((target, node.lineno, function))
        inner = getattr(node, "name", "<lambda>") if isinstance(node, FUNCTIONS) else None
        for child in ast.iter_child_nodes(node):
            visit(child, function or inner)

    visit(ast.parse(source), None)
    return found


def imports_of(module: str) -> list[tuple[str, int, str | None]]:
    path = MODULES[module]
    return imports_in(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")


def where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(REPO)}:{line}"


def function_level_imports() -> list[str]:
    """"file:line: import X in f()" for each first-party import inside a function."""
    return [f"{where(module, line)}: import {target} in {function}()"
            for module in MODULES for target, line, function in imports_of(module) if function]


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Cycles of `graph` ({module: {imported module: line}}), each a shortest one through its first
    module (breadth first), as [a, b, ..., a]; a module already in a cycle starts no other."""
    cycles, done = [], set()
    for start in graph:
        if start in done:
            continue
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            if start in graph[path[-1]]:
                cycles.append(path + [start])
                done.update(path)
                break
            for target in sorted(graph[path[-1]]):
                if target not in seen and target in graph:
                    seen.add(target)
                    paths.append(path + [target])
    return cycles


def import_cycles() -> list[str]:
    """Each cycle of module-level imports, as "a (file:line) -> b (file:line) -> a"."""
    graph = {m: {} for m in MODULES}
    for module in MODULES:
        for target, line, function in imports_of(module):
            if not function:
                graph[module].setdefault(target, line)
    return [" -> ".join(f"{a} ({where(a, graph[a][b])})" for a, b in zip(ring, ring[1:])) + f" -> {ring[0]}"
            for ring in find_cycles(graph)]


def forbidden_imports() -> list[str]:
    """`tasr.audio`/`tasr.models` importing the application, and `tasr` modules outside `tasr.cli` importing it."""
    def inside(module, package):
        return module == package or module.startswith(package + ".")

    offenders = []
    for module in MODULES:
        library = next((package for package in LIBRARIES if inside(module, package)), None)
        for target, line, _ in imports_of(module):
            if library and not any(inside(target, package) for package in LIBRARIES):
                offenders.append(f"{where(module, line)}: {library} imports {target}")
            in_cli = inside(module, "tasr.cli")
            if not library and not in_cli and module != "tasr.__main__" and inside(target, "tasr.cli"):
                offenders.append(f"{where(module, line)}: library module {module} imports {target}")
    return offenders


def report(title: str, offenders: list[str]) -> str:
    return f"{len(offenders)} {title}" + "".join(f"\n  {offender}" for offender in offenders)


def test_the_checker_finds_imports_of_every_kind():
    source = """
import os
import torch.nn
from tasr import data
from tasr.errors import TasrError
from .blocks import BLOCKS
import tasr.models.ctc as ctc


class Model:
    def forward(self):
        from tasr.text import UNK
        return lambda: __import__("json")


def load():
    from tasr import audio
    import numpy
"""
    assert imports_in(source, "tasr.models.encoder") == [
        ("tasr.data", 4, None), ("tasr.errors", 5, None), ("tasr.models.blocks", 6, None),
        ("tasr.models.ctc", 7, None), ("tasr.text", 12, "forward"), ("tasr.audio", 17, "load")]
    assert imports_in("from . import ctc", "tasr.models", is_package=True) == [("tasr.models.ctc", 1, None)]
    assert resolve("tasr.errors.TasrError") == "tasr.errors" and resolve("torch") is None


def test_the_checker_finds_cycles():
    graph = {"a": {"b": 1}, "b": {"c": 1, "d": 2}, "c": {"a": 3}, "d": {"d": 1}, "e": {"a": 1}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["d", "d"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_function_level_first_party_imports():
    offenders = function_level_imports()
    assert not offenders, report("function-level first-party imports (move them to the top):", offenders)


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, report("import cycles:", cycles)


def test_audio_and_models_know_nothing_of_tasr_and_the_library_nothing_of_the_cli():
    offenders = forbidden_imports()
    assert not offenders, report("imports against the layering of ARCHITECTURE.md:", offenders)


if __name__ == "__main__":
    problems = [("function-level imports", function_level_imports()), ("import cycles", import_cycles()),
                ("layering", forbidden_imports())]
    for title, offenders in problems:
        print(report(title, offenders))
    sys.exit(1 if any(offenders for _, offenders in problems) else 0)
