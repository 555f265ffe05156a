"""Every dashboard link is built from a handler's name, so that moving a page moves its
links with it: no template spells a path, and every handler has a name to link to."""

from __future__ import annotations

import re
from pathlib import Path

from litestar.routes import HTTPRoute

from providers import load_config
from server.app import create_app

ROOT = Path(__file__).resolve().parents[2]
# An attribute that takes a URL, given a literal path instead of url_for(...)
LITERAL_PATH = re.compile(
    r"""\b(href|src|action|hx-(get|post|put|delete|patch)|sse-connect)\s*=\s*["']/"""
)


def test_no_template_spells_a_path() -> None:
    literal = {
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted((ROOT / "templates").glob("*.html"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if LITERAL_PATH.search(line)
    }
    assert literal == set()


def test_every_dashboard_handler_has_a_name() -> None:
    app = create_app(load_config(ROOT / "config.example.toml"))
    handlers = [
        (route.path, handler)
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/admin")
        for handler in route.route_handlers
        if handler.http_methods != {"OPTIONS"}  # litestar's own, for CORS preflight
    ]
    dashboard = [(path, h) for path, h in handlers if not path.startswith("/admin/api")]
    unnamed = {f"{path} {sorted(h.http_methods)}" for path, h in dashboard if not h.name}
    assert len(dashboard) > 20 and unnamed == set()
