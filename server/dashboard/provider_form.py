"""The provider form: reading and checking what was typed.

Values decode as the route form's do (`server.dashboard.route_form`): each field through
the kind's Struct on its own (``strict=False``, from the form's strings), then the whole
provider, then `Gateway.check_provider` for what only building it rejects (a
``base_url`` httpx cannot parse), then the store's validation of the whole
configuration. Errors are shown next to their field with every typed value kept. An
empty optional field is unset (``api_key_env`` empty: no key is sent); any other empty
field takes its default.

API keys are never stored: a provider names the environment variable holding its key
(``api_key_env``), and the pages only say whether this gateway's environment has it set
(`KeyStatus`), never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
from litestar.datastructures import FormMultiDict

from providers.config import GatewayConfig, ProviderConfig
from router.errors import ConfigError
from server.dashboard.forms import (
    Form,
    config_message,
    field_of,
    parse_revision,
    validation_message,
)
from server.dashboard.provider_fields import FIRST_KIND, KINDS, MASKED, SPECS, FieldSpec, text_of
from server.store.models import NAME_LENGTH
from server.store.schemas import canonical

__all__ = ["KeyStatus", "ProviderForm", "key_status"]

NAME = re.compile(r"[A-Za-z0-9_.-]+")
"""What the provider part of a target (``provider/model``) may be."""


class KeyStatus(NamedTuple):
    """Whether this gateway's environment has the variable a provider's key is read
    from: ``set``, ``not set``, or ``no key`` (the variable is unset: none is sent).
    Never the value."""

    state: str

    @property
    def sent(self) -> bool:
        return self.state != "no key"

    @property
    def badge(self) -> str:
        return {"set": "ok", "not set": "failed"}.get(self.state, "")

    @property
    def note(self) -> str:
        return {"set": " (its value is never shown)", "no key": " (none is sent)"}.get(
            self.state, ""
        )


def key_status(env: Mapping[str, str], kind: str, values: Mapping[str, str]) -> KeyStatus | None:
    """The key status of a provider of ``kind`` with the form ``values`` (None: the
    kind takes no key)."""
    spec = next((s for s in SPECS[kind] if s.name == "api_key_env"), None)
    if spec is None:
        return None
    variable = values.get("api_key_env", "").strip() or (None if spec.optional else spec.default)
    if not variable:
        return KeyStatus("no key")
    return KeyStatus("set" if env.get(variable) else "not set")


@dataclass(kw_only=True)
class ProviderForm(Form):
    """A provider form's values as typed, for the fields of its kind."""

    section = "providers"

    kind: str
    values: dict[str, str]
    kept: dict[str, str] = field(default_factory=dict)
    """The stored header values (editing), which a masked value keeps."""

    @property
    def title(self) -> str:
        return "New provider" if self.creating else f"Provider {self.name}"

    @property
    def submit(self) -> str:
        return "Add provider" if self.creating else "Save provider"

    @property
    def specs(self) -> tuple[FieldSpec, ...]:
        return SPECS[self.kind]

    @classmethod
    def of(cls, name: str, config: Any, *, creating: bool, revision: int) -> ProviderForm:
        data = canonical(config)
        kind = str(data.pop("kind"))
        values = {s.name: text_of(s, data.get(s.name)) for s in SPECS[kind]}
        return cls(
            name=name, creating=creating, kind=kind, values=values, expected_revision=revision
        )

    @classmethod
    def blank(cls, kind: str, *, revision: int | None) -> ProviderForm:
        return cls.of("", KINDS[kind](), creating=True, revision=revision or 0)

    @classmethod
    def read(cls, form: FormMultiDict, *, name: str | None) -> ProviderForm:
        kind = str(form.get("kind") or "")
        errors: dict[str, str] = {}
        if kind not in KINDS:
            errors["kind"] = f"Invalid value {kind!r}; expected one of {', '.join(KINDS)}"
            kind = FIRST_KIND
        values = {}
        for spec in SPECS[kind]:
            raw = str(form.get(spec.name) or "")
            values[spec.name] = ("true" if raw else "") if spec.widget == "check" else raw
        return cls(
            name=str(form.get("name") or "").strip() if name is None else name,
            creating=name is None,
            kind=kind,
            values=values,
            expected_revision=parse_revision(form.get("expected_revision")),
            errors=errors,
        )

    def data(self) -> dict[str, Any]:
        """The provider's table for `msgspec.convert` (``strict=False``); a field that
        cannot be parsed (a header line without ``=``, bad JSON) is left out, with its
        error recorded."""
        data: dict[str, Any] = {"kind": self.kind}
        for spec in self.specs:
            raw = self.values.get(spec.name, "")
            if spec.widget == "check":
                data[spec.name] = raw == "true"
            elif not raw.strip():
                if spec.optional:
                    data[spec.name] = None
            elif spec.widget == "pairs":
                pairs = self._pairs(spec.name, raw)
                if pairs is not None:
                    data[spec.name] = pairs
            elif spec.widget == "lines":
                data[spec.name] = [line.strip() for line in raw.splitlines() if line.strip()]
            elif spec.widget == "json":
                try:
                    data[spec.name] = msgspec.json.decode(raw)
                except msgspec.DecodeError as exc:
                    self.errors.setdefault(spec.name, f"not valid JSON: {exc}")
            else:
                data[spec.name] = raw.strip()
        return data

    def _pairs(self, name: str, raw: str) -> dict[str, str] | None:
        pairs: dict[str, str] = {}
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            key, eq, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key:
                self.errors.setdefault(name, f"line {n}: expected key=value, not {line.strip()!r}")
                return None
            if value == MASKED:  # the stored value, never sent to the browser
                if key not in self.kept:
                    self.errors.setdefault(name, f"line {n}: type the value of {key}")
                    return None
                value = self.kept[key]
            pairs[key] = value
        return pairs

    def check(self, config: GatewayConfig) -> Any:
        """Every field on its own, then the whole provider and whether it can be built;
        the provider's config when all is well, else None (see ``errors``)."""
        if self.creating:
            self._check_name(config)
        else:
            stored = config.providers.get(self.name)
            self.kept = dict(getattr(stored, "headers", None) or {})
        data = self.data()
        for key, value in data.items():
            if key != "kind" and key not in self.errors:
                try:
                    msgspec.convert({"kind": self.kind, key: value}, ProviderConfig, strict=False)
                except msgspec.ValidationError as exc:
                    message, path = validation_message(exc, value)
                    self.errors.setdefault(field_of(path) or key, message)
        if self.errors:
            return None
        try:
            provider = msgspec.convert(data, ProviderConfig, strict=False)
        except msgspec.ValidationError as exc:  # every field passed alone: not expected
            message, path = validation_message(exc)
            self.errors[field_of(path) or "kind"] = message
            return None
        return provider

    def _check_name(self, config: GatewayConfig) -> None:
        name = self.name
        if not name:
            self.errors["name"] = "Enter a name: targets name it as provider/model."
        elif len(name) > NAME_LENGTH:
            self.errors["name"] = f"a name must be 1 to {NAME_LENGTH} characters long"
        elif not NAME.fullmatch(name):
            self.errors["name"] = (
                "a provider name may only use letters, digits, '_', '.' and '-': "
                "targets name it as provider/model"
            )
        elif name in config.providers:
            self.errors["name"] = f"a provider named {name!r} already exists: edit it instead"

    def build_error(self, exc: ConfigError) -> None:
        """What building the provider refused (`Gateway.check_provider`): at the base
        URL, which is what the schema accepts and building rejects, or above the form for
        a kind without one."""
        if "base_url" in self.values:
            self.errors["base_url"] = config_message(exc)
        else:
            self.banner = config_message(exc)
