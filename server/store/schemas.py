"""What the store hands out, and the canonical JSON shape of a configuration.

The database holds ``msgspec.to_builtins`` of the policy Structs (sets sorted, so the
JSON is stable) and reads it back through `providers.config.decode_config`: the same
door as the TOML file, so a row edited by hand is refused with its key path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from providers.config import GatewayConfig
from server.store.diff import ConfigDiff

__all__ = ["RevisionInfo", "WriteResult", "canonical", "snapshot"]


class RevisionInfo(msgspec.Struct, frozen=True):
    """One revision: who wrote it, when, and what it changed."""

    id: int
    created_at: datetime
    actor: str
    summary: str


class WriteResult(msgspec.Struct, frozen=True):
    """The outcome of a write. ``written`` is false for a dry run and for a write that
    changed nothing; then ``revision`` is the revision the database stays at."""

    revision: int
    written: bool
    config: GatewayConfig
    """The configuration at ``revision`` (for a dry run: what it would become)."""
    diff: ConfigDiff


def canonical(struct: msgspec.Struct) -> dict[str, Any]:
    """A policy Struct as the plain JSON the database stores."""
    data: dict[str, Any] = msgspec.to_builtins(struct, order="deterministic")
    return data


def snapshot(config: GatewayConfig) -> dict[str, Any]:
    """The routing part of a configuration, in the shape `decode_config` accepts.

    ``[server]`` is not part of it: those are process settings (which variable holds
    the client key, which HTTP transport to use), read from the file ``serve`` is given.
    """
    return {
        "defaults": canonical(config.defaults),
        "providers": {name: canonical(config.providers[name]) for name in sorted(config.providers)},
        "routes": {name: canonical(config.routes[name]) for name in sorted(config.routes)},
    }
