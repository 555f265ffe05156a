"""Who may use the dashboard: a signed-in admin, with a session cookie.

Signing in takes the admin key (``[server] admin_key_env``) or, if one is set, the admin
password (``[server] admin_password_env``). The session is litestar's client-side
cookie session (AES-GCM, HttpOnly, SameSite=Strict, path ``/admin``) under a key derived
from those secrets: every worker and node with the same secrets accepts it, and changing
either secret signs everybody out. Every form and htmx request carries a CSRF token
(litestar's double-submit `CSRFMiddleware`). Without an admin key or password the
dashboard is disabled and says how to enable it.
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
from litestar.types import ASGIApp

from server.gateway import Gateway

__all__ = [
    "SESSION_PATH",
    "DashboardAuth",
    "signed_in",
]

SESSION_PATH = "/admin"


class DashboardAuth:
    """The dashboard's secrets, read once from the gateway's environment."""

    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.config.server
        key = gateway.admin_key if gateway.admin_key != gateway.master_key else None
        password = gateway.env.get(settings.admin_password_env) or None
        self.key = key
        self.password = password
        self.admin_key_env = settings.admin_key_env
        self.admin_password_env = settings.admin_password_env
        self.session_seconds = max(60, round(settings.dashboard_session_hours * 3600))
        if self.enabled:
            material = f"llmgate dashboard\0{key or ''}\0{password or ''}".encode()
            seed = hashlib.sha256(material).digest()
        else:  # nothing can sign in; the secret only has to exist
            seed = os.urandom(32)
        self.session_secret = hmac.new(seed, b"session", hashlib.sha256).digest()
        self.csrf_secret = hmac.new(seed, b"csrf", hashlib.sha256).hexdigest()

    @property
    def enabled(self) -> bool:
        return self.key is not None or self.password is not None

    def check(self, secret: str) -> bool:
        """Whether ``secret`` is the admin key or the admin password (constant time)."""
        given = secret.strip().encode()
        ok = False
        for known in (self.key, self.password):
            if known is not None and hmac.compare_digest(given, known.encode()):
                ok = True
        return ok

    def middleware(self) -> list[DefineMiddleware]:
        session = CookieBackendConfig(
            secret=self.session_secret,
            key="llmgate_session",
            max_age=self.session_seconds,
            path=SESSION_PATH,
            httponly=True,
            samesite="strict",
        )
        csrf = CSRFConfig(
            secret=self.csrf_secret,
            cookie_name="llmgate_csrf",
            cookie_path=SESSION_PATH,
            cookie_samesite="strict",
            header_name="x-csrftoken",
        )
        return [
            DefineMiddleware(_CookieSession, config=session),
            DefineMiddleware(CSRFMiddleware, config=csrf),
        ]


class _Backend(ClientSideSessionBackend):
    def load_data(self, data: list[bytes]) -> dict[str, Any]:
        """A cookie that does not decrypt and decode is no session. litestar only
        catches a bad tag or bad base64: a tampered expiry is a JSON error, a 500."""
        try:
            return super().load_data(data)
        except Exception:
            return {}


class _CookieSession(SessionMiddleware[ClientSideSessionBackend]):
    """litestar's cookie session, with its cipher built when the app is: routers are
    deep-copied on registration, and a cipher cannot be copied."""

    def __init__(self, app: ASGIApp, config: CookieBackendConfig) -> None:
        super().__init__(app, _Backend(config))


def signed_in(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    session = connection.scope.get("session")
    if not isinstance(session, dict):
        return False
    until = session.get("until")
    return isinstance(until, int | float) and until > time.time()


def session_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every dashboard page except sign-in; see `server.dashboard.not_signed_in`."""
    if not signed_in(connection):
        raise NotAuthorizedException("sign in to use the dashboard")
