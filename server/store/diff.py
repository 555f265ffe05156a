"""The difference between two configurations, field by field.

Used for ``llmgate config plan`` and for the summary each revision records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec

from providers.config import GatewayConfig

__all__ = ["Change", "ConfigDiff", "FieldChange", "diff_configs"]

Section = Literal["defaults", "providers", "routes"]
_SINGULAR = {"defaults": "defaults", "providers": "provider", "routes": "route"}
_encode = msgspec.json.Encoder(order="deterministic").encode


class FieldChange(msgspec.Struct, frozen=True):
    path: str
    """Dotted key path inside the table, e.g. ``breaker.cooldown_s``."""
    old: Any
    new: Any

    def render(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


class Change(msgspec.Struct, frozen=True):
    section: Section
    name: str
    """The provider or route name; ``""`` for ``defaults``."""
    action: Literal["add", "change", "remove"]
    fields: tuple[FieldChange, ...] = ()

    @property
    def label(self) -> str:
        return f"{_SINGULAR[self.section]} {self.name}".rstrip()


class ConfigDiff(msgspec.Struct, frozen=True):
    changes: tuple[Change, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def without_removals(self) -> ConfigDiff:
        return ConfigDiff(tuple(c for c in self.changes if c.action != "remove"))

    def summary(self) -> str:
        """One line for a revision: ``+route chat, ~provider mock, -route old``."""
        sign = {"add": "+", "change": "~", "remove": "-"}
        return ", ".join(f"{sign[c.action]}{c.label}" for c in self.changes) or "no change"

    def render(self, *, prune: bool) -> Iterator[str]:
        """Plan lines; removals are marked when ``prune`` is off, since apply keeps them."""
        if not self.changes:
            yield "No changes."
            return
        for c in self.changes:
            match c.action:
                case "add":
                    yield f"+ {c.label}"
                case "remove" if prune:
                    yield f"- {c.label}"
                case "remove":
                    yield f"- {c.label} (would remove only with --prune)"
                case "change":
                    yield f"~ {c.label}"
                    yield from (f"    {f.render()}" for f in c.fields)


def diff_configs(old: GatewayConfig, new: GatewayConfig) -> ConfigDiff:
    """Every added, changed and removed table from ``old`` to ``new`` (``[server]`` aside)."""
    changes: list[Change] = []
    if old.defaults != new.defaults:
        changes.append(Change("defaults", "", "change", _fields(old.defaults, new.defaults)))
    changes += _tables("providers", old.providers, new.providers)
    changes += _tables("routes", old.routes, new.routes)
    return ConfigDiff(tuple(changes))


def _tables(
    section: Section, old: Mapping[str, msgspec.Struct], new: Mapping[str, msgspec.Struct]
) -> Iterator[Change]:
    for name in sorted(old.keys() | new.keys()):
        if name not in old:
            yield Change(section, name, "add")
        elif name not in new:
            yield Change(section, name, "remove")
        elif old[name] != new[name]:
            yield Change(section, name, "change", _fields(old[name], new[name]))


def _fields(old: msgspec.Struct, new: msgspec.Struct) -> tuple[FieldChange, ...]:
    before = dict(_flatten(msgspec.to_builtins(old, order="deterministic")))
    after = dict(_flatten(msgspec.to_builtins(new, order="deterministic")))
    paths = [*before, *(p for p in after if p not in before)]
    return tuple(
        FieldChange(path, before.get(path), after.get(path))
        for path in paths
        if before.get(path) != after.get(path)
    )


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):  # nested tables (breaker, headers) by key
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _show(value: Any) -> str:
    return "(unset)" if value is None else _encode(value).decode()
