"""The package's shape: no module imports another in a circle, counting every import (at the top,
inside functions, and those only type checkers read)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mock_server"


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module → the package's modules it imports (``from a import b`` counts ``a.b`` when it is a module)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(filter(None, (known(alias.name) for alias in node.names)))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.update(filter(None, (known(f"{node.module}.{alias.name}") for alias in node.names)))
        graph[name] = {target for target in imported if target != name and target.startswith("mock_server")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules (Tarjan), as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(_circle_through(sorted(group), graph))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _circle_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A path from the group's first module back to it, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                frontier.append(target)
    return group


def test_no_module_imports_another_in_a_circle():
    found = circles(import_graph(module_names()))
    assert found == [], "import circles: " + "; ".join(" -> ".join(circle) for circle in found)


def test_no_domain_module_needs_the_facade():
    """The desks and the services around the sandbox (webhooks, namespaces) work on what they need
    of it (``mock_server/domain/ports.py``); only the layers above the domain import ``Sandbox``."""
    graph = import_graph(module_names())
    leaning = sorted(name for name, imported in graph.items()
                     if name.startswith("mock_server.domain.") and "mock_server.domain.service" in imported)
    assert leaning == []


def test_the_circle_finder_finds_circles():
    """The check above can fail: a circle of three and one of two are each named, a chain is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"d"}}
    assert sorted(circles(graph)) == [["a", "b", "c", "a"], ["e", "f", "e"]]


def test_the_graph_sees_imports_inside_functions_and_for_type_checkers():
    graph = import_graph(module_names())
    assert "mock_server.domain.store" in graph["mock_server.domain.trust"], "an import under TYPE_CHECKING"
    assert "mock_server.conformance.run" in graph["mock_server.server.cli"], "an import inside a function"


README = PACKAGE.parent / "README.md"


def layout_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_layout_names_every_package_folder_and_only_paths_that_exist():
    named = {name.rstrip("/") for name in re.findall(r"`((?:mock_server|fixtures|tests|scenarios)/[\w/.-]*)`",
                                                       layout_section())}
    named_folders = {name for name in named if (PACKAGE.parent / name).is_dir()}
    missing = sorted(name for name in named if not (PACKAGE.parent / name).exists())
    assert missing == [], f"the README's Layout names what is not there: {missing}"
    packages = sorted(str(path.parent.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("__init__.py")
                      if path.parent != PACKAGE)
    unnamed = [package for package in packages if package not in named_folders]
    assert unnamed == [], f"package folders the README's Layout does not name: {unnamed}"


def test_the_public_import_paths_still_work():
    """``mock_server.client`` is the path the docs give; ``mock_server.pytest_plugin`` works, with a warning."""
    from mock_server import client
    from mock_server.testing import client as moved

    assert client.ControlClient is moved.ControlClient and client.WaitTimeout is moved.WaitTimeout
    script = ("import warnings; warnings.simplefilter('always')\n"
              "with warnings.catch_warnings(record=True) as seen:\n"
              "    import mock_server.pytest_plugin as plugin\n"
              "print(plugin.oneshot_mock.__module__, seen[0].category.__name__, seen[0].message)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ("mock_server.testing.pytest_plugin DeprecationWarning mock_server.pytest_plugin "
                                   "moved to mock_server.testing.pytest_plugin"), done.stdout + done.stderr


def private_uses(source: str) -> list[str]:
    """Where ``source`` leans on aiohttp's internals: a private attribute read of anything but
    ``self``, or, in a subclass of an aiohttp class, a private attribute the subclass does not set
    itself and a private method of the base it overrides. Each as ``line: what``."""
    from aiohttp import web

    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr)
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        bases = [getattr(web, base.attr) for base in cls.bases if isinstance(base, ast.Attribute)
                 and isinstance(base.value, ast.Name) and base.value.id == "web"]
        if not bases:
            continue
        own = {target.attr for node in ast.walk(cls) for target in _targets(node)
               if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
               and target.value.id == "self"}
        own |= {item.value for node in cls.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)
                for item in ast.walk(node.value) if isinstance(item, ast.Constant) and isinstance(item.value, str)}
        own |= {node.name for node in cls.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
        for node in ast.walk(cls):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id == "self" and node.attr not in own):
                found.append(f"{node.lineno}: {cls.name} reads {node.attr}, which it does not set")
        for node in cls.body:
            if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name)
                    and any(hasattr(base, node.name) for base in bases)):
                found.append(f"{node.lineno}: {cls.name} overrides aiohttp's private {node.name}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [item for target in node.targets for item in ast.walk(target)]
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return [node.target]
    return []


def test_nothing_leans_on_aiohttp_internals():
    """The slow-client deadlines (and everything else) use aiohttp's public API: an upgrade that
    changes its internals cannot switch them off quietly."""
    found = {str(path.relative_to(PACKAGE.parent)): uses for path in PACKAGE.rglob("*.py")
             if "aiohttp" in (text := path.read_text(encoding="utf-8")) and (uses := private_uses(text))}
    assert found == {}


def test_the_internals_check_finds_what_the_old_slow_client_guard_did():
    old = ("class SandboxApplication(web.Application):\n"
           "    def _make_handler(self, **kwargs):\n"
           "        server = super()._make_handler(**kwargs)\n"
           "        return GuardedServer(loop=server._loop, **server._kwargs)\n"
           "class GuardedRequestHandler(web.RequestHandler):\n"
           "    def __init__(self):\n"
           "        self._heads = 0\n"
           "    def waiting(self):\n"
           "        return self._heads != self._request_count and self._waiter is not None\n")
    assert sorted(private_uses(old)) == [
        "2: SandboxApplication overrides aiohttp's private _make_handler",
        "3: super()._make_handler", "4: server._kwargs", "4: server._loop",
        "9: GuardedRequestHandler reads _request_count, which it does not set",
        "9: GuardedRequestHandler reads _waiter, which it does not set",
    ]
