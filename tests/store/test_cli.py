"""``llmgate db``, ``llmgate config`` and ``llmgate revisions``, run as real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from providers import load_config
from server.store import DATABASE_URL_ENV, PolicyStore
from server.store.migration import head_revision

FULL = """
[defaults]
max_retries = 1

[providers.mock]
kind = "mock"
token_latency_ms = 5

[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"
headers = { "X-Team" = "search" }

[routes.chat]
targets = ["mock/echo"]

[routes.cloud]
targets = ["openai/gpt-4o-mini", "mock/backup"]
fallback_on = ["timeout", "rate_limited"]
breaker = { cooldown_s = 5 }
"""

SMALLER = """
[defaults]
max_retries = 1

[providers.mock]
kind = "mock"
token_latency_ms = 5

[routes.chat]
targets = ["mock/echo"]
max_retries = 4
"""


def llmgate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**base, **(env or {})},
    )


def ok(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = llmgate(*args, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
async def migrated(database_url: str, store: PolicyStore) -> str:
    """The URL of a migrated, empty database (``db upgrade`` has its own test)."""
    return database_url


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"full": tmp_path / "full.toml", "smaller": tmp_path / "smaller.toml"}
    paths["full"].write_text(FULL)
    paths["smaller"].write_text(SMALLER)
    return paths


@pytest.fixture
async def applied(database_url: str, store: PolicyStore, files: dict[str, Path]) -> str:
    """The URL of a database at revision 1, holding ``FULL``."""
    await store.apply(load_config(files["full"]), prune=False, actor="test")
    return database_url


def test_plan_apply_export_round_trip_and_export_then_apply_is_a_no_op(
    migrated: str, files: dict[str, Path], tmp_path: Path
) -> None:
    db = ("--database-url", migrated)
    plan = ok("config", "plan", str(files["full"]), *db)
    assert "+ provider openai\n" in plan and "+ route cloud\n" in plan
    assert "~ defaults\n    max_retries: 2 -> 1\n" in plan
    assert re.search(r"as revision 1: ", ok("config", "apply", str(files["full"]), *db))

    exported = tmp_path / "exported.toml"
    ok("config", "export", "-o", str(exported), *db)
    assert load_config(exported) == load_config(files["full"])
    assert ok("config", "plan", str(exported), *db).endswith("No changes.\n")
    assert "no changes: the database stays at revision 1" in ok(
        "config", "apply", str(exported), *db
    )


def test_apply_keeps_what_the_file_omits_unless_pruning(
    applied: str, files: dict[str, Path]
) -> None:
    db = ("--database-url", applied)
    plan = ok("config", "plan", str(files["smaller"]), *db)
    assert "~ route chat\n    max_retries: 2 -> 4\n" in plan
    assert "- route cloud (would remove only with --prune)\n" in plan
    assert "- provider openai (would remove only with --prune)\n" in plan

    ok("config", "apply", str(files["smaller"]), *db)
    kept = ok("config", "export", *db)
    assert "[routes.cloud]" in kept and "max_retries = 4" in kept

    applied = ok("config", "apply", "--prune", str(files["smaller"]), *db)
    assert "as revision 3: -provider openai, -route cloud" in applied
    history = ok("revisions", *db).splitlines()
    assert [line.split()[0] for line in history] == ["3", "2", "1"]


def test_an_invalid_file_is_refused_with_its_key_path_and_exit_2(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    db = ("--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    ok("db", "upgrade", *db)
    bad = tmp_path / "bad.toml"
    bad.write_text(FULL.replace("max_retries = 1", 'max_retries = "one"'))
    result = llmgate("config", "apply", str(bad), *db)
    assert result.returncode == 2
    assert f"{bad}: defaults.max_retries: Expected `int`, got `str`" in result.stderr
    assert "no revisions yet" in ok("revisions", *db)


def test_commands_refuse_a_database_that_was_not_upgraded_and_create_nothing(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    result = llmgate("config", "apply", str(files["full"]), cwd=tmp_path)
    assert result.returncode == 2
    assert f"no database at sqlite+aiosqlite:///{tmp_path}/llmgate.db" in result.stderr
    assert "run `llmgate db upgrade`" in result.stderr
    assert not (tmp_path / "llmgate.db").exists()


def test_the_database_defaults_to_llmgate_db_in_the_working_directory(tmp_path: Path) -> None:
    assert f"schema at {head_revision()}" in ok("db", "upgrade", cwd=tmp_path)
    assert (tmp_path / "llmgate.db").exists()
    env = {DATABASE_URL_ENV: f"sqlite:///{tmp_path / 'other.db'}"}
    ok("db", "upgrade", cwd=tmp_path, env=env)
    assert (tmp_path / "other.db").exists()
    assert "schema at base" in ok("db", "downgrade", "base", cwd=tmp_path, env=env)
