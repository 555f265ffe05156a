"""The litestar application: factory, lifespan and error shapes."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)

from providers import GatewayConfig, load_config
from router.errors import LLMGateError
from server.admin import admin_router
from server.api._serve import Serving, id_headers
from server.api.anthropic.routes import ANTHROPIC_HANDLERS, MESSAGES_PATH, http_error
from server.api.embeddings.routes import EMBEDDINGS_HANDLERS
from server.api.openai.routes import OPENAI_HANDLERS
from server.api.openai.wire import INTERNAL_ERROR, error_body
from server.api.ops import OPS_HANDLERS
from server.api.responses.routes import RESPONSES_HANDLERS
from server.core.admission import Admission
from server.core.budgets import BudgetGate
from server.core.gateway import Gateway
from server.core.reload import serve_from_database
from server.core.retry_guard import RetryGuard
from server.dashboard import assets_ok, dashboard_routers, template_config
from server.dashboard.playground import TokenBook
from server.deps import DEPENDENCIES
from server.errors import retry_after_of
from server.observe import Metrics, RequestLogWriter
from server.observe.health import TargetHealth
from server.observe.live import LiveFeed
from server.store import DATABASE_URL_ENV
from server.store.responses import ResponseKeeper

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("llmgate")
_encode = msgspec.json.Encoder().encode


def _error_response(
    request: Request[Any, Any, Any],
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    if request.url.path.startswith("/v1/"):  # every API response names its request
        headers = {**(headers or {}), **id_headers(request)}
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers=headers
    )


def _llmgate_error(request: Request[Any, Any, Any], exc: LLMGateError) -> Response[bytes]:
    return _error_response(request, exc.status, error_body(exc), retry_after_of(exc))


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    path = request.url.path
    if path == MESSAGES_PATH or path.startswith(MESSAGES_PATH + "/"):
        return http_error(request, exc)  # Anthropic clients get Anthropic's shape
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    message, param = exc.detail, None
    if isinstance(exc, NotFoundException | MethodNotAllowedException) and path.startswith("/v1/"):
        # No such endpoint. Said the way OpenAI says it, so that a client does not take
        # a bare "Not Found" for a model that does not exist.
        message = f"Invalid URL ({request.method} {path})"
    elif isinstance(exc, ValidationException) and exc.extra and isinstance(exc.extra, list):
        first = exc.extra[0]  # litestar's {"key", "message", "source"} of a bad parameter
        param = first.get("key") if isinstance(first, dict) else None
        message = f"{message}: {param}: {first.get('message')}" if param else message
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return _error_response(request, exc.status_code, body, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error serving %s", request.url.path, exc_info=exc)
    return _error_response(request, 500, INTERNAL_ERROR)


def create_app(
    config: GatewayConfig, env: dict[str, str] | None = None, *, database_url: str | None = None
) -> Litestar:
    """A gateway app for a validated configuration. The lifespan owns the upstream client
    and, with a ``database_url``, the database engine.

    Without a database the app serves ``config`` as it is. With one (migrated, see
    `server.store.upgrade`) it seeds an empty database from ``config``, serves the
    database's current revision, hot-reloads every new one and offers the admin API;
    ``config`` then only contributes its ``[server]`` settings.
    """
    gateway = Gateway(config, env)
    admission = Admission(config.server, gateway.env)
    guard = RetryGuard(config.server.retry_guard_s, config.server.retry_guard_user_agents)
    keeper = ResponseKeeper(config.server.response_ttl_days, config.server.request_log_text)
    meter = Metrics(prices=lambda: gateway.prices, names=lambda: gateway.table.names)
    gateway.observe(meter.observe)
    meter.watch_loads(gateway.engine.loads)
    gateway.on_request_start(meter.started)
    health = TargetHealth()
    gateway.observe(health.observe)
    feed = LiveFeed()
    gateway.observe(feed.observe)
    gateway.on_request_start(feed.started)
    dashboards, dashboard_auth = dashboard_routers(gateway, admission)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await gateway.start()
        try:
            if database_url is None:
                yield
                return
            async with serve_from_database(database_url, gateway, admission) as reloader:
                app.state.reloader = reloader
                dashboard_auth.use_seed(await reloader.store.instance_secret())
                settings = config.server
                request_log = RequestLogWriter(
                    reloader.store.engine,
                    max_queue=settings.request_log_queue,
                    retention_days=settings.request_log_retention_days,
                    max_mb=settings.request_log_max_mb,
                    keep_text=settings.request_log_text,
                    flush_interval_s=settings.request_log_flush_s,
                    prices=lambda: gateway.prices,
                )
                meter.watch_responses(keeper.start(reloader.store.engine))
                budgets = BudgetGate(reloader.store.engine, lambda: gateway.prices)
                admission.use_budgets(budgets)
                gateway.observe(budgets.observe)
                budgets.start()
                meter.watch_request_log(request_log)
                gateway.observe(request_log.observe)
                request_log.start()
                try:
                    yield
                finally:
                    gateway.unobserve(request_log.observe)
                    await request_log.aclose()  # what is still queued is written
                    gateway.unobserve(budgets.observe)
                    admission.use_budgets(None)
                    await budgets.aclose()  # pending spend written, unused leases returned
                    await keeper.aclose()
                    app.state.reloader = None
        finally:
            feed.close()
            await gateway.stop()

    app = Litestar(
        route_handlers=[
            *OPENAI_HANDLERS,
            *RESPONSES_HANDLERS,
            *EMBEDDINGS_HANDLERS,
            *ANTHROPIC_HANDLERS,
            *OPS_HANDLERS,
            admin_router(),
            *dashboards,
        ],
        dependencies=DEPENDENCIES,
        template_config=template_config(),
        lifespan=[lifespan],
        exception_handlers={
            LLMGateError: _llmgate_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        openapi_config=None,
        logging_config=None,
    )
    app.state.gateway = gateway
    app.state.admission = admission
    app.state.serving = Serving(gateway, admission, guard, keeper)
    app.state.metrics = meter
    app.state.health = health
    app.state.reloader = None
    app.state.live_feed = feed
    app.state.live_heartbeat_s = 15.0
    app.state.dashboard_auth = dashboard_auth
    app.state.playground_tokens = TokenBook(dashboard_auth)
    app.state.dashboard_assets_ok = assets_ok()
    return app


def _freeze_startup_objects() -> None:
    """Move what is alive once the worker has started into the GC's permanent generation.

    Start-up leaves ~150,000 tracked objects that live as long as the process (1,300
    modules: litestar, SQLAlchemy, alembic, jinja2...). Every full (generation 2)
    collection walked them all: 150-200 ms with the event loop stopped, every few
    seconds under load, which made the p99 time to first token 5-7x its p50. Frozen,
    they are never walked again (a full collection then takes 3-6 ms); what requests
    allocate is collected as before. Collecting first keeps start-up garbage out of the
    frozen set; a frozen object is still freed by reference counting, only a cycle of
    them that becomes garbage later is kept (a one-off, bounded by start-up).
    """
    gc.collect()
    gc.freeze()


def app_from_env() -> Litestar:
    """Factory for `llmgate serve` workers: the CLI validated the file, migrated the
    database, and passes the file's path and the database's URL."""
    app = create_app(
        load_config(os.environ["LLMGATE_CONFIG"]),
        database_url=os.environ.get(DATABASE_URL_ENV),
    )
    # Serving workers only (after the lifespan has opened the store): tests build
    # many apps in one process and must not freeze each other's objects.
    app.on_startup.append(_freeze_startup_objects)
    return app
