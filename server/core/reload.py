"""Hot reload: keep a gateway's routing table at the database's current revision.

Three signals wake one loader:

- the process that wrote a revision swaps it in at once (`Reloader.wrote`);
- on PostgreSQL, one dedicated connection ``LISTEN``s on `NOTIFY_CHANNEL`, which every
  committed revision notifies; a lost connection is reopened with backoff;
- every ``poll_s`` seconds the stored revision is compared with the served one: the
  safety net for lost notifications, and the only signal on SQLite.

The active virtual API keys (`server.store.keys`) ride on the same signals: their own
channel (``llmgate_keys``) and the ``keys_version`` the poll compares.

Serving never waits for any of this: a request reads ``gateway.table`` once when it
starts and keeps that snapshot to the end. A revision that cannot be loaded or compiled
is logged and skipped (the current table stays); an unreachable database is logged and
retried. Nothing here raises into serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from router.errors import ConfigError
from server.core.admission import Admission
from server.core.gateway import Gateway
from server.store import (
    NOTIFY_CHANNEL,
    PolicyStore,
    WriteResult,
    check_schema,
    create_engine,
    display_url,
)
from server.store.keys import KEYS_CHANNEL, KeyStore

__all__ = ["Reloader", "serve_from_database"]

log = logging.getLogger("llmgate.reload")

_BACKOFF_S = (0.2, 10.0)
"""First and longest wait before reopening the LISTEN connection."""


class Reloader:
    """Swaps each new revision of ``store`` into ``gateway`` (see the module doc)."""

    def __init__(
        self, store: PolicyStore, gateway: Gateway, admission: Admission, *, poll_s: float = 1.0
    ) -> None:
        self.store = store
        self.keys = KeyStore(store.engine)
        self._gateway = gateway
        self._admission = admission
        self._poll_s = poll_s
        self._lock = asyncio.Lock()  # one load at a time, so swaps happen in order
        self._wake = asyncio.Event()
        self._rejected: int | None = None  # a revision that failed: not retried, not relogged
        self._db_down = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def revision(self) -> int:
        """The revision the gateway serves."""
        return self._gateway.table.revision

    async def start(self) -> None:
        """Serve the current revision (raising if it cannot be served), then watch."""
        await self.reload()
        await self.reload_keys()
        self._tasks.append(asyncio.create_task(self._watch(), name="llmgate-reload-poll"))
        if self.store.engine.dialect.name == "postgresql":
            self._tasks.append(asyncio.create_task(self._listen(), name="llmgate-reload-listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def reload(self) -> int:
        """Load the stored revision and serve it now, even if it is the one served.
        Raises `ConfigError` (the current table stays) if it cannot be served."""
        async with self._lock:
            revision, config = await self.store.load()
            self._gateway.install(config, revision)
            self._rejected = None
            return revision

    async def reload_keys(self) -> None:
        """Hold the database's active virtual keys now (after a key change here)."""
        async with self._lock:
            self._admission.use_keys(await self.keys.ring())

    async def wrote(self, result: WriteResult) -> None:
        """Serve a revision this process just wrote, without reading it back."""
        if not result.written:
            return
        async with self._lock:
            if result.revision <= self.revision:  # a newer one arrived meanwhile
                return
            try:
                self._gateway.install(result.config, result.revision)
            except ConfigError as exc:
                self._reject(result.revision, exc)

    async def _refresh(self) -> None:
        async with self._lock:
            if await self.keys.version() != self._admission.keys.version:
                self._admission.use_keys(await self.keys.ring())
                log.info("holding %d active API keys", len(self._admission.keys))
            current = await self.store.current_revision()
            if current in (self.revision, self._rejected):
                return
            try:
                revision, config = await self.store.load()
                self._gateway.install(config, revision)
            except ConfigError as exc:
                self._reject(current, exc)
                return
        log.info("serving configuration revision %d", revision)

    def _reject(self, revision: int, exc: ConfigError) -> None:
        self._rejected = revision
        log.error(
            "configuration revision %d cannot be served, still serving revision %d: %s",
            revision,
            self.revision,
            exc,
        )

    async def _watch(self) -> None:
        """The loader: runs on every wake-up and at least every ``poll_s``."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            self._wake.clear()
            try:
                await self._refresh()
            except Exception as exc:  # the database is down or failing: keep serving
                if not self._db_down:
                    log.warning(
                        "cannot read the configuration revision (%s: %s); still serving "
                        "revision %d, retrying every %gs",
                        type(exc).__name__,
                        exc,
                        self.revision,
                        self._poll_s,
                    )
                self._db_down = True
            else:
                if self._db_down:
                    log.warning("the configuration database is reachable again")
                self._db_down = False

    async def _listen(self) -> None:
        """Hold one connection that LISTENs; reopen it with backoff when it is lost."""
        delay = _BACKOFF_S[0]
        while True:
            try:
                await self._listen_once()
                delay = _BACKOFF_S[0]  # it was open: the next attempt starts afresh
                log.warning("lost the LISTEN connection; reopening it")
            except Exception as exc:
                log.warning(
                    "cannot LISTEN for configuration changes (%s: %s); retrying in %gs, "
                    "the revision poll covers the gap",
                    type(exc).__name__,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_S[1])

    async def _listen_once(self) -> None:
        """Returns when the connection is lost."""
        async with self.store.engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _conn: lost.set())
            await driver.add_listener(NOTIFY_CHANNEL, self._notified)
            await driver.add_listener(KEYS_CHANNEL, self._keys_notified)
            self._wake.set()  # catch up on whatever was written while not listening
            try:
                await lost.wait()
            finally:
                if lost.is_set():
                    with contextlib.suppress(Exception):
                        await conn.invalidate()  # do not hand a dead connection back
                else:  # cancelled: the connection is fine, stop listening on it
                    with contextlib.suppress(Exception):
                        await driver.remove_listener(NOTIFY_CHANNEL, self._notified)
                        await driver.remove_listener(KEYS_CHANNEL, self._keys_notified)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if not payload.isdigit() or int(payload) != self.revision:
            self._wake.set()

    def _keys_notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if not payload.isdigit() or int(payload) != self._admission.keys.version:
            self._wake.set()


@contextlib.asynccontextmanager
async def serve_from_database(
    url: str, gateway: Gateway, admission: Admission
) -> AsyncIterator[Reloader]:
    """A started gateway's table from the database at ``url``, kept current.

    For the lifespan of one worker: check that the schema is current (``serve``
    migrated it), seed an empty database from the file configuration (exactly once,
    however many workers start), serve the current revision and watch for new ones.
    """
    # A long-lived pool outlives database restarts: test a connection before using it.
    engine = create_engine(url, pool_pre_ping=True)
    try:
        await check_schema(engine)
        store = PolicyStore(engine)
        seeded = await store.seed_if_empty(gateway.config)
        if seeded.written:
            log.info("seeded %s from the configuration file", display_url(url))
        poll_s = gateway.config.server.reload_poll_s
        reloader = Reloader(store, gateway, admission, poll_s=poll_s)
        await reloader.start()
        try:
            yield reloader
        finally:
            await reloader.stop()
    finally:
        await engine.dispose()
