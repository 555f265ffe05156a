"""Who may use the admin API: the holder of the admin key, never a client key.

The admin key is read from the environment variable ``[server] admin_key_env`` names
(``LLMGATE_ADMIN_KEY``). Without one, or with one equal to the client key, the admin
API is disabled (403) rather than open.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from server.core.admission import Admission
from server.errors import AdminAuthError, AdminDisabled

__all__ = ["AdminAuthError", "AdminDisabled", "admin_guard", "check_admin"]


def check_admin(authorization: str | None, admission: Admission, env_name: str) -> None:
    """Accept only the admin key, and only if one is set that is not the client key."""
    key, master = admission.admin_key, admission.master_key
    if key is None or key == master:
        why = "is not set" if key is None else "must differ from the client key"
        raise AdminDisabled(
            f"The admin API is disabled: the environment variable {env_name} {why}. "
            f"Set it to an admin key and restart llmgate."
        )
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AdminAuthError(
            "You didn't provide the admin key. Send 'Authorization: Bearer <admin key>'."
        )
    if hmac.compare_digest(token.encode(), key.encode()):
        return
    if master and hmac.compare_digest(token.encode(), master.encode()):
        raise AdminAuthError(f"That is a client key; the admin API needs the key in {env_name}.")
    raise AdminAuthError("Incorrect admin key provided.")


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    state = connection.app.state
    env_name = state.gateway.config.server.admin_key_env
    check_admin(connection.headers.get("authorization"), state.admission, env_name)
