"""`router/` imports only the standard library and msgspec, and no clock or randomness."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROUTER = Path(__file__).resolve().parents[2] / "router"
ALLOWED = (sys.stdlib_module_names - {"time", "random"}) | {"msgspec", "router"}


def forbidden_imports(source: str) -> list[str]:
    """Top-level modules imported by ``source`` that the engine may not use."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n.partition(".")[0] not in ALLOWED]
    return found


MODULES = sorted(ROUTER.glob("*.py"))


def test_router_package_is_found() -> None:
    assert {p.name for p in MODULES} >= {"engine.py", "errors.py", "splice.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_router_module_imports_only_stdlib_and_msgspec(path: Path) -> None:
    assert forbidden_imports(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import httpx",
        "from litestar import Litestar",
        "import sqlalchemy.orm",
        "from aiohttp import ClientSession",
        "from server.core.gateway import Gateway",
        "import providers.openai",
        "import time",
        "from random import random",
    ],
)
def test_import_rule_rejects_io_libraries_our_other_layers_and_clock_or_rng(source: str) -> None:
    assert forbidden_imports(source) == [source.split()[1]]


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "from collections.abc import Callable",
        "import msgspec.json",
        "from router.events import Usage",
        "from . import errors",
    ],
)
def test_import_rule_allows_stdlib_msgspec_and_router_itself(source: str) -> None:
    assert forbidden_imports(source) == []
