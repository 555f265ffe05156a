"""Which database: ``--database-url``, else ``LLMGATE_DATABASE_URL``, else ``./llmgate.db``."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.store import DATABASE_URL_ENV, database_url, display_url


def test_the_flag_wins_over_the_environment() -> None:
    env = {DATABASE_URL_ENV: "sqlite+aiosqlite:////env.db"}
    assert database_url("sqlite+aiosqlite:////flag.db", env) == "sqlite+aiosqlite:////flag.db"
    assert database_url(None, env) == "sqlite+aiosqlite:////env.db"


def test_without_either_it_is_llmgate_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_url(None, {}) == f"sqlite+aiosqlite:///{tmp_path}/llmgate.db"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/gw", "postgresql+asyncpg://u:p@db:5432/gw"),
        ("postgres://db/gw", "postgresql+asyncpg://db/gw"),
        ("postgresql+asyncpg://db/gw", "postgresql+asyncpg://db/gw"),
        ("sqlite:////var/lib/llmgate.db", "sqlite+aiosqlite:////var/lib/llmgate.db"),
    ],
)
def test_plain_urls_get_their_asyncio_driver(given: str, expected: str) -> None:
    assert database_url(given, {}) == expected


def test_messages_show_the_url_without_its_password() -> None:
    assert display_url("postgresql+asyncpg://u:secret@db/gw") == "postgresql+asyncpg://u:***@db/gw"
