"""The running gateway: configuration, the live routing table, the engine, observers."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping

from providers import (
    GatewayConfig,
    ProviderConfig,
    Upstream,
    build_provider,
    build_table,
    make_client,
)
from providers.pricing import PriceBook
from router.engine import Engine
from router.errors import ClientDisconnected, ConfigError
from router.events import Done, Event, Failed, RequestRecord, Usage
from router.provider import EmbedRequest, ProviderRequest
from router.table import RoutingTable

__all__ = ["Gateway", "Observer"]

log = logging.getLogger("llmgate")

Observer = Callable[[str, list[Event]], None]
"""Called with (request id, batch) for every event batch; must not block."""

_FINAL = (Done, Failed)


class Gateway:
    """Owns the shared upstream client (opened in `start`, closed in `stop`) and the
    routing table that requests snapshot when they begin.

    ``config`` is the file's: its ``[server]`` settings hold for the life of the process.
    The table starts as the file's routes and providers; when the gateway serves from
    the database, `server.core.reload.Reloader` `install`s each revision in its place. The one
    `Engine` outlives every table, so circuit breakers (per target) survive a reload.
    """

    def __init__(self, config: GatewayConfig, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env = dict(os.environ if env is None else env)
        settings = config.server
        own = {settings.master_key_env, settings.admin_key_env, settings.admin_password_env}
        self.provider_env = {
            k: v for k, v in self.env.items() if not k.startswith("LLMGATE_") and k not in own
        }
        """What providers may read (``api_key_env``): never the gateway's own secrets, so
        that whoever may edit a provider cannot have one sent to a server of theirs."""
        self.engine = Engine(clock=time.monotonic, rng=random.random)
        self._observers: list[Observer] = []
        self._on_start: list[Callable[[RequestRecord], None]] = []
        self._client: Upstream | None = None
        self.table: RoutingTable
        self.prices = _price_book(config)
        """The served configuration's prices (`providers.pricing`), swapped with the table."""

    async def start(self) -> None:
        self._client = make_client(self.config.server.upstream_transport)
        self.table = build_table(self.config, self._client, self.provider_env)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def install(self, config: GatewayConfig, revision: int) -> None:
        """Compile the routes, providers and defaults of ``config`` (a revision from the
        database) and swap the table in. One attribute store: a request holds whichever
        table it read when it started. Raises `ConfigError` and keeps the current table
        if the configuration cannot be compiled."""
        assert self._client is not None, "install() before start()"
        try:
            table = build_table(config, self._client, self.provider_env, revision)
        except ConfigError:
            raise
        except Exception as exc:  # e.g. a base_url httpx cannot parse
            raise ConfigError(f"cannot be served: {exc}", source=f"revision {revision}") from exc
        self.table = table
        self.prices = _price_book(config)

    def check_provider(self, name: str, config: ProviderConfig) -> None:
        """Raise `ConfigError` unless a provider of ``config`` can be built: the schema
        accepts a few values (an unparseable ``base_url``) that only building rejects."""
        assert self._client is not None, "check_provider() before start()"
        key_env = getattr(config, "api_key_env", None)
        if key_env is not None and key_env in self.env and key_env not in self.provider_env:
            raise ConfigError(
                f"{key_env} holds a secret of llmgate itself, which no provider may use",
                source="config",
                path=f"providers.{name}.api_key_env",
            )
        try:
            build_provider(name, config, self._client, self.provider_env)
        except Exception as exc:
            raise ConfigError(str(exc), source="config", path=f"providers.{name}") from exc

    def observe(self, observer: Observer) -> None:
        """Show every event batch of every request to ``observer`` from now on."""
        self._observers.append(observer)

    def unobserve(self, observer: Observer) -> None:
        self._observers.remove(observer)

    def on_request_start(self, hook: Callable[[RequestRecord], None]) -> None:
        """Call ``hook`` with each request's record (id and route) once its route is
        resolved, before its first event (only while there are observers)."""
        self._on_start.append(hook)

    def run(
        self,
        model: str,
        request: ProviderRequest | EmbedRequest,
        request_id: str,
        client: str | None = None,
        *,
        accept_reset: bool = False,
        session: str | None = None,
        door: str | None = None,
    ) -> AsyncIterator[list[Event]]:
        """The engine's event stream for one request (`Engine.stream`, or `Engine.embed`
        for an embeddings request), on the current table snapshot; ``client`` (an API
        key's id) is kept in its record for the request log.
        ``accept_reset``: the consumer discards what it showed on a `Reset` event (see
        `Engine.stream`); no other consumer is ever sent one. ``session`` names the
        conversation, for routes with session affinity; ``door`` the endpoint it came
        through, kept in its record."""
        record = RequestRecord(request_id=request_id, route=model, client=client, door=door)
        if isinstance(request, EmbedRequest):
            events = self.engine.embed(
                self.table, model, request, request_id=request_id, record=record, session=session
            )
        else:
            events = self.engine.stream(
                self.table,
                model,
                request,
                request_id=request_id,
                record=record,
                accept_reset=accept_reset,
                session=session,
            )
        if not self._observers:
            return events
        for hook in self._on_start:
            hook(record)
        return self._observed(request_id, events, record)

    async def _observed(
        self, request_id: str, events: AsyncGenerator[list[Event], None], record: RequestRecord
    ) -> AsyncIterator[list[Event]]:
        """Shows every batch to the observers. A stream closed before its final event
        (the client went away) still ends for them, with a `Failed` of
        `ClientDisconnected`, so that it is logged and counted like any other."""
        ended = False
        cause: BaseException = ClientDisconnected("the client disconnected before the answer ended")
        try:
            async for batch in events:
                for observer in self._observers:
                    observer(request_id, batch)
                ended = type(batch[-1]) in _FINAL if batch else ended
                yield batch
        except Exception as exc:  # not the client's doing: record what it was
            cause = exc
            raise
        finally:
            if not ended:
                await events.aclose()  # releases the upstream connection now
                self._abandoned(request_id, record, cause)

    def _abandoned(self, request_id: str, record: RequestRecord, cause: BaseException) -> None:
        usage = Usage()
        for attempt in record.attempts:
            if attempt.outcome == "running":
                attempt.outcome = "failed"
                attempt.error_type = type(cause).__name__
                attempt.error = str(cause)
            if attempt.usage is not None:
                usage = usage + attempt.usage
        delivered = any(a.chars for a in record.attempts)
        final: list[Event] = [Failed(cause, delivered, usage, record, [])]
        for observer in self._observers:
            try:
                observer(request_id, final)
            except Exception:
                log.exception("observer failed on a disconnected request")


def _price_book(config: GatewayConfig) -> PriceBook:
    return PriceBook({name: pc.prices for name, pc in config.providers.items()})
