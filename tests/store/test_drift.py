"""What ``llmgate serve`` says when its ``--config`` and the database disagree, and
``--apply-config`` (``[server] config_source = "file"``), which makes the file the
source of truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers import load_config
from server.store import PolicyStore, commands

FILE = """
[providers.mock]
kind = "mock"

[routes.chat]
targets = ["mock/echo"]
max_retries = 2
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "llmgate.toml"
    path.write_text(text)
    return str(path)


async def test_an_empty_database_says_nothing_it_is_seeded_from_the_file(
    database_url: str, store: PolicyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await commands.drift(database_url, write(tmp_path, FILE), apply=False)
    assert capsys.readouterr().err == ""


async def test_a_changed_file_is_summarised_field_by_field_with_the_command_that_applies_it(
    database_url: str, store: PolicyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, FILE)
    await store.seed_if_empty(load_config(file))
    await commands.drift(database_url, file, apply=False)
    assert capsys.readouterr().err == ""  # the same: nothing to say
    write(tmp_path, FILE.replace("max_retries = 2", "max_retries = 5"))
    await commands.drift(database_url, file, apply=False)
    said = capsys.readouterr().err
    assert "differs from revision 1" in said
    assert "~ route chat" in said and "max_retries: 2 -> 5" in said
    assert f"llmgate config apply {file} --prune" in said
    assert (await store.load())[0] == 1  # nothing was applied


async def test_apply_config_makes_one_revision_for_a_changed_file_and_none_for_the_same(
    database_url: str, store: PolicyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write(tmp_path, FILE)
    await store.seed_if_empty(load_config(file))
    write(
        tmp_path,
        FILE.replace("max_retries = 2", "max_retries = 5")
        + '\n[routes.new]\ntargets = ["mock/x"]\n',
    )
    await commands.drift(database_url, file, apply=True)
    revision, served = await store.load()
    assert revision == 2
    assert served.routes["chat"].max_retries == 5 and "new" in served.routes
    assert "applied" in capsys.readouterr().err
    await commands.drift(database_url, file, apply=True)  # unchanged since: no revision
    assert (await store.load())[0] == 2
    # the file is the source of truth: what it no longer names goes
    write(tmp_path, FILE)
    await commands.drift(database_url, file, apply=True)
    revision, served = await store.load()
    assert revision == 3 and "new" not in served.routes
