"""Client authentication: ``Authorization: Bearer <key>``, the master key or a virtual key.

The master key (``[server] master_key_env``) may use everything. Virtual keys
(`server.store.keys`) are checked against the `KeyRing` the process holds in memory:
a dictionary lookup of the secret's hash. With neither a master key nor any virtual
key, requests need no key (``serve`` then listens on loopback only).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

import msgspec

from router.policy import Budget
from server.errors import AuthError

__all__ = [
    "ApiKey",
    "KeyRing",
    "bearer_token",
    "check_bearer",
    "hash_secret",
]


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as anyone may see it: never its secret."""

    id: str
    name: str
    prefix: str
    routes: tuple[str, ...] | None
    budget: Budget | None = None
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, route: str) -> bool:
        return self.routes is None or route in self.routes


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRing:
    """The active keys of one version, by the hash of their secret."""

    __slots__ = ("_by_hash", "version")

    def __init__(self, version: int = 0, keys: Mapping[str, ApiKey] | None = None) -> None:
        self.version = version
        self._by_hash = dict(keys or {})

    def __bool__(self) -> bool:
        return bool(self._by_hash)

    def __len__(self) -> int:
        return len(self._by_hash)

    def find(self, secret: str) -> ApiKey | None:
        return self._by_hash.get(hash_secret(secret))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def check_bearer(authorization: str | None, key: str | None) -> None:
    """Accept the request if no key is configured or the bearer token matches it."""
    if key is None:
        return
    if not authorization:
        raise AuthError("You didn't provide an API key. Send 'Authorization: Bearer <key>'.")
    token = bearer_token(authorization)
    if token is None or not hmac.compare_digest(token.encode(), key.encode()):
        raise AuthError("Incorrect API key provided.")
