"""Every setting a user can write in the TOML file is documented in the README."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import msgspec
import pytest

from providers.config import ProviderConfig, ServerSettings
from router.policy import BreakerPolicy, Budget, Pool, RoutePolicy

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def settings() -> list[str]:
    names = []
    for struct in (
        RoutePolicy,
        Pool,
        BreakerPolicy,
        Budget,
        *get_args(ProviderConfig),
        ServerSettings,
    ):
        names += [f.name for f in msgspec.structs.fields(struct)]  # type: ignore[arg-type]
    return sorted(set(names))


@pytest.mark.parametrize("name", settings())
def test_setting_is_documented_in_the_readme(name: str) -> None:
    assert f"`{name}`" in README or f"{name} =" in README or f".{name}`" in README, (
        f"the setting {name!r} is not documented in README.md"
    )
