"""Who may use the dashboard: a signed-in admin, with a session cookie.

Signing in takes the admin key (``[server] admin_key_env``) or, if one is set, the admin
password (``[server] admin_password_env``). The session is litestar's client-side
cookie session (AES-GCM, HttpOnly, SameSite=Strict, path ``/admin``) under a key derived
from those secrets: every worker and node with the same secrets accepts it, and changing
either secret signs everybody out. Every form and htmx request carries a CSRF token
(litestar's double-submit `CSRFMiddleware`). Without an admin key or password the
dashboard is disabled and says how to enable it, except on a first run: ``llmgate
serve`` on a loopback address then prints a one-time sign-in link
(`server.store.login_links`) and tells its workers so (`FIRST_RUN_ENV`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Any

from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.session.base import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.types import ASGIApp, Receive, Scope, Send

from server.core.admission import Admission
from server.core.gateway import Gateway
from server.store.login_links import is_signed_out

__all__ = [
    "FIRST_RUN_ENV",
    "SESSION_PATH",
    "DashboardAuth",
    "signed_in",
]

SESSION_PATH = "/admin"
FIRST_RUN_ENV = "LLMGATE_FIRST_RUN_LINK"
"""Set to ``1`` by ``llmgate serve`` for its workers when it printed a sign-in link."""
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0


class DashboardAuth:
    """The dashboard's secrets, read once from the gateway's environment."""

    def __init__(self, gateway: Gateway, admission: Admission) -> None:
        settings = gateway.config.server
        admin, master = admission.admin_key, admission.master_key
        key = admin if admin != master else None
        password = gateway.env.get(settings.admin_password_env) or None
        self.key = key
        self.password = password
        self.first_run = key is None and password is None and gateway.env.get(FIRST_RUN_ENV) == "1"
        """No admin key or password, and ``serve`` printed a one-time sign-in link."""
        self.admin_key_env = settings.admin_key_env
        self.admin_password_env = settings.admin_password_env
        self.session_seconds = max(60, round(settings.dashboard_session_hours * 3600))
        self.secure_cookies = settings.dashboard_secure_cookies
        self._failures: dict[str, list[float]] = {}
        self.signed_out: set[str] = set()
        """Sessions this process saw signed out (the database has every process's)."""
        self.use_seed(os.urandom(32))

    def use_seed(self, seed: bytes) -> None:
        """Key the session and CSRF cookies with ``seed``: random, never derived from the
        admin key or password (a CSRF cookie anyone can fetch would let them test
        guesses offline). A gateway serving from a database uses the seed stored there
        (`PolicyStore.instance_secret`), so every process accepts every session; the
        admin's secrets are mixed in, so that changing one signs everybody out."""
        material = f"{self.key or ''}\0{self.password or ''}".encode()
        base = hmac.new(seed, material, hashlib.sha256).digest()
        self.session_secret = hmac.new(base, b"session", hashlib.sha256).digest()
        self.csrf_secret = hmac.new(base, b"csrf", hashlib.sha256).hexdigest()

    def throttled(self, client: str, now: float) -> float:
        """Seconds ``client`` must wait before trying to sign in again: after
        `MAX_FAILURES` failed tries within `FAILURE_WINDOW_S`, until the oldest expires."""
        recent = [t for t in self._failures.get(client, ()) if now - t < FAILURE_WINDOW_S]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        if len(recent) < MAX_FAILURES:
            return 0.0
        return FAILURE_WINDOW_S - (now - recent[0])

    def failed(self, client: str, now: float) -> None:
        if len(self._failures) > 10_000:  # bounded: forget the oldest clients
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, []).append(now)

    @property
    def enabled(self) -> bool:
        return self.key is not None or self.password is not None or self.first_run

    def check(self, secret: str) -> str | None:
        """Which secret ``secret`` is, ``admin key`` or ``admin password``, or None
        (constant time)."""
        given = secret.strip().encode()
        found = None
        for name, known in (("admin key", self.key), ("admin password", self.password)):
            if known is not None and hmac.compare_digest(given, known.encode()):
                found = name
        return found

    def session_config(self) -> CookieBackendConfig:
        return CookieBackendConfig(
            secret=self.session_secret,
            key="llmgate_session",
            max_age=self.session_seconds,
            path=SESSION_PATH,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
        )

    def csrf_config(self) -> CSRFConfig:
        return CSRFConfig(
            secret=self.csrf_secret,
            cookie_name="llmgate_csrf",
            cookie_path=SESSION_PATH,
            cookie_samesite="strict",
            cookie_secure=self.secure_cookies,
            header_name="x-csrftoken",
        )

    @staticmethod
    def middleware() -> list[DefineMiddleware]:
        """The session and CSRF middleware, keyed when a request arrives with the app's
        `DashboardAuth` of the moment (its seed comes from the database at startup)."""
        return [DefineMiddleware(_Keyed, kind="session"), DefineMiddleware(_Keyed, kind="csrf")]


class _Backend(ClientSideSessionBackend):
    def load_data(self, data: list[bytes]) -> dict[str, Any]:
        """A cookie that does not decrypt and decode is no session. litestar only
        catches a bad tag or bad base64: a tampered expiry is a JSON error, a 500."""
        try:
            return super().load_data(data)
        except Exception:
            return {}


class _Keyed:
    """litestar's cookie session or CSRF middleware, built with the current secrets of
    ``app.state.dashboard_auth`` (and rebuilt if they change). Built lazily also because
    routers are deep-copied on registration, and a cipher cannot be copied."""

    def __init__(self, app: ASGIApp, kind: str) -> None:
        self.app = app
        self.kind = kind
        self._built: tuple[bytes | str, ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth: DashboardAuth = scope["litestar_app"].state.dashboard_auth
        secret = auth.session_secret if self.kind == "session" else auth.csrf_secret
        if self._built is None or self._built[0] != secret:
            inner: ASGIApp
            if self.kind == "session":
                inner = SessionMiddleware(self.app, _Backend(auth.session_config()))
            else:
                inner = CSRFMiddleware(self.app, auth.csrf_config())
            self._built = (secret, inner)
        await self._built[1](scope, receive, send)


def signed_in(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The session id of a signed-in session not yet expired, else None (whether it was
    signed out is `session_guard`'s to ask)."""
    session = connection.scope.get("session")
    if not isinstance(session, dict):
        return None
    until, sid = session.get("until"), session.get("sid")
    if isinstance(until, int | float) and until > time.time() and isinstance(sid, str):
        return sid
    return None


async def session_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard of every dashboard page except sign-in; see `server.dashboard.not_signed_in`.
    A session signed out is refused although its cookie is still valid: a copy of the
    cookie stops working too, in every process sharing the database."""
    sid = signed_in(connection)
    if sid is None:
        raise NotAuthorizedException("sign in to use the dashboard")
    auth: DashboardAuth = connection.app.state.dashboard_auth
    if sid in auth.signed_out:
        raise NotAuthorizedException("this session was signed out")
    reloader = connection.app.state.reloader
    if reloader is not None and await is_signed_out(reloader.store.engine, sid):
        auth.signed_out.add(sid)
        raise NotAuthorizedException("this session was signed out")
