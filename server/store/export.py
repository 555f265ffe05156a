"""The configuration as TOML that ``llmgate config apply`` (and ``serve --config``)
accept unchanged: only the keys that differ from their defaults, like a hand-written file."""

from __future__ import annotations

from typing import Any

import msgspec
import tomli_w

from providers.config import GatewayConfig
from router.errors import ConfigError
from server.store.schemas import canonical

__all__ = ["to_toml"]


def to_toml(config: GatewayConfig, *, revision: int | None = None) -> str:
    """``[defaults]``, ``[providers.*]`` and ``[routes.*]``; ``[server]`` is not stored."""
    doc: dict[str, Any] = {}
    if defaults := _changed(config.defaults, "defaults"):
        doc["defaults"] = defaults
    for section, keep in (("providers", "kind"), ("routes", "targets")):
        tables: dict[str, msgspec.Struct] = getattr(config, section)
        if tables:
            doc[section] = {
                name: {keep: canonical(table)[keep], **_changed(table, f"{section}.{name}")}
                for name, table in sorted(tables.items())
            }
    header = "# llmgate configuration"
    header += f", exported at revision {revision}\n\n" if revision is not None else "\n\n"
    return header + tomli_w.dumps(doc)


def _changed(struct: msgspec.Struct, where: str) -> dict[str, Any]:
    return _prune(canonical(struct), canonical(type(struct)()), where)


def _prune(value: dict[str, Any], default: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        base = default.get(key)
        if item == base:
            continue
        if item is None:  # TOML has no null: only a default can be "unset"
            raise ConfigError(
                "cannot be written as TOML: unset, but not by default", path=f"{where}.{key}"
            )
        is_table = isinstance(item, dict) and isinstance(base, dict)
        out[key] = _prune(item, base, f"{where}.{key}") if is_table and base else item
    return out
