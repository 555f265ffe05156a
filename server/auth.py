"""Client authentication: ``Authorization: Bearer <key>``."""

from __future__ import annotations

import hmac

from router.errors import LLMGateError

__all__ = ["AuthError", "check_bearer"]


class AuthError(LLMGateError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


def check_bearer(authorization: str | None, key: str | None) -> None:
    """Accept the request if no key is configured or the bearer token matches it."""
    if key is None:
        return
    if not authorization:
        raise AuthError("You didn't provide an API key. Send 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise AuthError("Incorrect API key provided.")
