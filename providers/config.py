"""The gateway configuration schema and its TOML loader.

One schema for every door: the TOML file, the library's dicts and (later) the database
all decode through these Structs, so an error names the same key path everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.gemini import GeminiConfig, GeminiProvider
from providers.mock import MockConfig, MockProvider
from providers.openai import OpenAIConfig, OpenAIProvider
from router.errors import ConfigError
from router.policy import Budget, Pool, RoutePolicy

__all__ = [
    "GatewayConfig",
    "ProviderConfig",
    "ServerSettings",
    "convert",
    "decode_config",
    "load_config",
]

ProviderConfig = OpenAIConfig | AnthropicConfig | GeminiConfig | MockConfig
_EMBEDS: dict[type[ProviderConfig], bool] = {
    OpenAIConfig: OpenAIProvider.supports_embeddings,
    AnthropicConfig: AnthropicProvider.supports_embeddings,
    GeminiConfig: GeminiProvider.supports_embeddings,
    MockConfig: MockProvider.supports_embeddings,
}
"""Which kinds answer embeddings requests: their adapters' capability."""


class ServerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``[server]``: settings of one process, read from the file ``serve`` is given and
    never stored in the database."""

    config_source: Literal["database", "file"] = "database"
    """Which holds the truth about providers and routes once the database was seeded:
    ``database`` (``serve`` only says when ``--config`` differs from it), or ``file``
    (``serve`` applies ``--config`` as a revision at every start when it differs, as
    ``--apply-config`` does)."""
    master_key_env: str = "LLMGATE_MASTER_KEY"
    """The environment variable holding the client key."""
    admin_key_env: str = "LLMGATE_ADMIN_KEY"
    """The environment variable holding the admin API key (unset: no admin API)."""
    admin_password_env: str = "LLMGATE_ADMIN_PASSWORD"
    """The environment variable holding a password for the dashboard's sign-in page
    (optional: the admin key signs in too)."""
    dashboard_session_hours: Annotated[float, Meta(gt=0, le=24 * 30)] = 12.0
    """How long a dashboard sign-in lasts."""
    dashboard_secure_cookies: bool = False
    """Mark the dashboard's cookies ``Secure`` (sent over HTTPS only): set it when the
    dashboard is reached through HTTPS, as it should be off loopback."""
    upstream_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    reload_poll_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """How often a gateway serving from the database compares its revision with the
    database's: the safety net under LISTEN/NOTIFY, and the only signal on SQLite."""
    request_log_retention_days: Annotated[float, Meta(gt=0)] | None = 30.0
    """Request-log rows older than this are pruned (unset: kept forever)."""
    request_log_max_mb: Annotated[float, Meta(gt=0)] | None = 1024.0
    """The request log's size at most (its rows' records and transcripts, as written):
    past it the oldest rows are deleted, so a busy gateway cannot fill its disk (unset:
    no size limit, only ``request_log_retention_days``)."""
    request_log_flush_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    """Longest a finished request's row waits in the queue before it is written (a full
    batch of 500 is written at once)."""
    request_log_text: bool = True
    """Whether the request log keeps the text each client was shown (the dashboard's
    request detail); off, it keeps only character counts and the switches."""
    response_ttl_days: Annotated[float, Meta(gt=0, le=3650)] = 30.0
    """How long a stored Responses API response (``store``, the default) is kept for
    ``GET /v1/responses/{id}`` and ``previous_response_id``."""
    request_log_queue: Annotated[int, Meta(ge=1)] = 10_000
    """Rows waiting for the database at most; beyond that new rows are dropped and
    counted (``llmgate_request_log_dropped``), never blocking a request."""
    retry_guard_s: Annotated[float, Meta(ge=0, le=600)] = 10.0
    """How long a final failure is replayed to an identical request from a client that
    retries on the status alone (``retry_guard_user_agents``), at no upstream cost;
    0 turns it off. A failure with a ``Retry-After`` is replayed only until then."""
    retry_guard_user_agents: tuple[str, ...] = ("ai-sdk/",)
    """User-Agent fragments of clients that ignore ``x-should-retry`` and retry a final
    5xx or 429 by themselves: the Vercel AI SDK's ``ai-sdk/``."""


class GatewayConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    server: ServerSettings = ServerSettings()
    defaults: RoutePolicy = RoutePolicy()
    """Policy for requests naming a single ``provider/model`` target."""
    providers: dict[str, ProviderConfig] = {}
    routes: dict[str, RoutePolicy] = {}

    def validate(self, where: str = "") -> GatewayConfig:
        """Cross-field checks the types cannot express."""
        for name, route in self.routes.items():
            if "/" in name:
                raise ConfigError(
                    "a route name must not contain '/'", source=where, path=f"routes.{name}"
                )
            if not route.targets:
                raise ConfigError(
                    "expected at least one target of the form provider/model",
                    source=where,
                    path=f"routes.{name}.targets",
                )
            if route.budget is not None:
                self._check_budget(route.budget, where, f"routes.{name}.budget", name)
            for i, entry in enumerate(route.targets):
                at = f"routes.{name}.targets[{i}]"
                members = entry.pool if isinstance(entry, Pool) else [entry]
                for j, target in enumerate(members):
                    provider = target.partition("/")[0]
                    path = at if isinstance(entry, str) else f"{at}.pool[{j}]"
                    if provider not in self.providers:
                        raise ConfigError(
                            f"unknown provider {provider!r} in {target!r}; expected one of "
                            f"{', '.join(sorted(self.providers)) or '(no providers configured)'}",
                            source=where,
                            path=path,
                        )
                    kind = self.providers[provider]
                    if route.embeddings and not _EMBEDS[type(kind)]:
                        raise ConfigError(
                            f"{target!r} cannot embed: provider {provider!r} is of kind "
                            f"{_kind_of(kind)!r}, which has no embeddings, and the route "
                            "serves embeddings (embeddings = true)",
                            source=where,
                            path=path,
                        )
        return self

    def _check_budget(self, budget: Budget, source: str, path: str, route: str) -> None:
        try:
            ZoneInfo(budget.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"unknown time zone {budget.timezone!r} (an IANA name such as 'Europe/Paris')",
                source=source,
                path=f"{path}.timezone",
            ) from None
        seen = [route]
        target = budget.downgrade_to
        while target is not None:  # a chain of cheaper routes, never back to one seen
            if target not in self.routes:
                raise ConfigError(
                    f"downgrade_to names no route: {target!r}",
                    source=source,
                    path=f"{path}.downgrade_to",
                )
            if target in seen:
                raise ConfigError(
                    f"downgrade_to loops: {' -> '.join([*seen, target])}",
                    source=source,
                    path=f"{path}.downgrade_to",
                )
            seen.append(target)
            nxt = self.routes[target].budget
            target = nxt.downgrade_to if nxt is not None else None


def _kind_of(config: ProviderConfig) -> str:
    """A provider configuration's ``kind`` (``openai``, ``anthropic``...)."""
    return str(config.__struct_config__.tag)


_SECTIONS = ("server", "defaults", "providers", "routes")


def _expected(cls: Any, field: str) -> str:
    """For a rejected enum-like value, the values that would have been accepted."""
    if field == "kind":
        return "; expected one of " + ", ".join(
            str(t.__struct_config__.tag) for t in get_args(ProviderConfig)
        )
    for info in getattr(msgspec.inspect.type_info(cls), "fields", ()):
        if info.name == field and isinstance(info.type, msgspec.inspect.LiteralType):
            return "; expected one of " + ", ".join(map(str, info.type.values))
    return ""


def split_validation_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec's message and the key path it names, apart: ``("Expected `int`, got
    `str`", ".routes.chat.max_retries")`` (the path is empty for the value itself).
    msgspec says where only in its text; this is the one place that reads it."""
    detail, _, at = str(exc).rpartition(" - at `$")
    if not detail:
        return str(exc), ""
    return detail, at.rstrip("`")


def convert(value: Any, cls: Any, where: str, key: str) -> Any:
    """Validate ``value`` as ``cls``; a `ConfigError` names ``where`` and the key path."""
    try:
        return msgspec.convert(value, cls)
    except msgspec.ValidationError as exc:
        detail, at = split_validation_error(exc)
        path = key + at
        hint = _expected(cls, path.rpartition(".")[2]) if "Invalid" in detail else ""
        raise ConfigError(f"{detail}{hint}", source=where, path=path) from None


def decode_config(data: Any, where: str = "config") -> GatewayConfig:
    """Validate a configuration given as plain dicts (the TOML tables' shape).

    Sections are converted one by one so that an error names the full key path
    (``routes.chat.max_retries``), which msgspec alone elides for dict keys.
    """
    if not isinstance(data, dict):
        raise ConfigError("expected a table of sections", source=where)
    for key in data:
        if key not in _SECTIONS:
            raise ConfigError(
                f"unknown section {key!r}; expected one of {', '.join(_SECTIONS)}",
                source=where,
                path=key,
            )
    tables: dict[str, dict[str, Any]] = {}
    for section in ("providers", "routes"):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError("expected a table", source=where, path=section)
        tables[section] = table
    config = GatewayConfig(
        server=convert(data.get("server", {}), ServerSettings, where, "server"),
        defaults=convert(data.get("defaults", {}), RoutePolicy, where, "defaults"),
        providers={
            n: convert(v, ProviderConfig, where, f"providers.{n}")
            for n, v in tables["providers"].items()
        },
        routes={
            n: convert(v, RoutePolicy, where, f"routes.{n}") for n, v in tables["routes"].items()
        },
    )
    return config.validate(where)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML file; every problem names the file and the key path."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = msgspec.toml.decode(raw)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
    return decode_config(data, str(path))
