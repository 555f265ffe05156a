"""The layers of DESIGN.md's "may import" table hold, and no module imports itself
back through others: checked on the source, so a violation fails before it runs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)
# What each layer may import beyond the standard library (and itself).
MAY_IMPORT: dict[str, set[str]] = {
    "router": {"msgspec"},  # and no clock or randomness: test_import_rule.py
    "providers": {"router", "msgspec", "httpx", "httpx_aiohttp", "aiohttp"},
    "llmgate": {"router", "providers", "msgspec"},
    "server/core": {"router", "providers", "server", "msgspec", "sqlalchemy"},
}
MUST_NOT: dict[str, set[str]] = {
    # the serving core runs without HTTP: no web framework, and no HTTP-side module
    "server/core": {"litestar", "server.api", "server.admin", "server.dashboard", "server.app"},
}


def imports(path: Path) -> list[str]:
    """Every absolute module ``path`` imports, at any depth of its code."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_a_layer_imports_only_what_the_design_allows(layer: str) -> None:
    allowed = MAY_IMPORT[layer] | STDLIB | {layer.split("/")[0]}
    banned = MUST_NOT.get(layer, set())
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules(layer)
        for name in imports(path)
        if name.partition(".")[0] not in allowed
        or any(name == b or name.startswith(b + ".") for b in banned)
    }
    assert modules(layer) and wrong == set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (what import order
    depends on; imports inside functions run later and cannot deadlock a load)."""
    paths = [p for top in ("router", "providers", "llmgate", "server") for p in modules(top)]
    names = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        edges: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from pkg import submodule`` depends on the submodule, not on what the
                # package's __init__ defines
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in names] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            edges |= {t for t in targets if t in names}
        graph[_module_name(path)] = edges - {_module_name(path)}
    return graph


def test_no_module_imports_itself_back_through_others() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert len(graph) > 80 and cycles == []
