"""What handlers declare by name and litestar provides: the objects the app owns.

A handler takes ``gateway: Gateway`` (or ``reloader``, ``store``, ``metrics``...) as a
typed parameter instead of reading ``app.state``; `create_app` puts each object in the
state once, and nothing adds to it while serving. ``reloader`` and ``store`` exist only
when the gateway serves from a database: a handler that needs one answers
`NoPolicyStore` (503) otherwise.
"""

from __future__ import annotations

from typing import cast

from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncEngine

from server.api._serve import Serving
from server.core.admission import Admission
from server.core.gateway import Gateway
from server.core.reload import Reloader
from server.dashboard.auth import DashboardAuth
from server.dashboard.playground import TokenBook
from server.errors import NoPolicyStore
from server.observe import Metrics
from server.observe.health import TargetHealth
from server.observe.live import LiveFeed
from server.store import PolicyStore
from server.store.keys import KeyStore

__all__ = ["DEPENDENCIES"]


def gateway(state: State) -> Gateway:
    return cast(Gateway, state.gateway)


def admission(state: State) -> Admission:
    return cast(Admission, state.admission)


def serving(state: State) -> Serving:
    return cast(Serving, state.serving)


def metrics(state: State) -> Metrics:
    return cast(Metrics, state.metrics)


def health(state: State) -> TargetHealth:
    return cast(TargetHealth, state.health)


def live_feed(state: State) -> LiveFeed:
    return cast(LiveFeed, state.live_feed)


def live_heartbeat_s(state: State) -> float:
    """Seconds between keep-alives of an idle live feed (a test may shorten it)."""
    return float(state.live_heartbeat_s)


def dashboard_auth(state: State) -> DashboardAuth:
    return cast(DashboardAuth, state.dashboard_auth)


def assets_ok(state: State) -> bool:
    """Whether the dashboard's npm packages are installed (``make install``)."""
    return bool(state.dashboard_assets_ok)


def playground_tokens(state: State) -> TokenBook:
    return cast(TokenBook, state.playground_tokens)


def reloader(state: State) -> Reloader:
    loaded = cast(Reloader | None, state.reloader)
    if loaded is None:
        raise NoPolicyStore(
            "This gateway serves its configuration file and has no policy store to edit; "
            "`llmgate serve` serves from the database."
        )
    return loaded


def database(state: State) -> AsyncEngine | None:
    """The database, for what works with one and without: None serving a file alone."""
    loaded = cast(Reloader | None, state.reloader)
    return None if loaded is None else loaded.store.engine


def store(state: State) -> PolicyStore:
    return reloader(state).store


def keys(state: State) -> KeyStore:
    return reloader(state).keys


DEPENDENCIES = {
    name: Provide(provider, sync_to_thread=False)
    for name, provider in {
        "gateway": gateway,
        "admission": admission,
        "serving": serving,
        "metrics": metrics,
        "health": health,
        "live_feed": live_feed,
        "live_heartbeat_s": live_heartbeat_s,
        "dashboard_auth": dashboard_auth,
        "assets_ok": assets_ok,
        "tokens": playground_tokens,
        "reloader": reloader,
        "store": store,
        "database": database,
        "keys": keys,
    }.items()
}
