"""Run tokens: the signed, single-use link between the playground's form and its stream.

The token carries the whole run (`RunSpec`): the form's POST stores nothing, so any
worker can serve the stream. It is signed with a key derived from the dashboard's
session secret, expires after `TokenBook.ttl_s`, and is accepted once per process: a
reconnecting browser, a replayed URL or another tab is `Refused` instead of running the
prompt again. A GET cannot be forged cross-site into a run either: the session cookie is
``SameSite=Strict`` and the token comes from a POST that passed the CSRF check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import zlib

import msgspec

from server.dashboard.auth import DashboardAuth
from server.dashboard.playground.simulate import Simulate

__all__ = ["TOKEN_TTL_S", "Refused", "RunSpec", "TokenBook"]

TOKEN_TTL_S = 60.0


class RunSpec(msgspec.Struct, frozen=True, array_like=True):
    """Everything a run needs, as the form validated it."""

    route: str
    prompt: str
    max_tokens: int | None
    simulate: Simulate
    n: int
    """The words before a simulated cut or stall; the milliseconds before a slow first
    token."""

    @property
    def simulated(self) -> bool:
        """A rehearsal on a private engine (`server.dashboard.playground.simulate`)."""
        return self.simulate != "none"


class _Ticket(msgspec.Struct, frozen=True, array_like=True):
    spec: RunSpec
    nonce: str
    expires: float
    """Wall-clock seconds (the token may be redeemed by another worker)."""


class Refused(Exception):
    """The token cannot start a run; the message says why, for the page."""


class TokenBook:
    """Issues and redeems run tokens: ``base64url(zlib(ticket)).base64url(hmac)``.

    The key follows the dashboard's session secret, which the lifespan replaces with
    the database's (`DashboardAuth.use_seed`) after the book is made. Nonces redeemed
    are remembered until their token expires, so each token starts at most one run in
    this process.
    """

    def __init__(self, auth: DashboardAuth, ttl_s: float = TOKEN_TTL_S) -> None:
        self._auth = auth
        self.ttl_s = ttl_s
        self._used: dict[str, float] = {}

    def _sign(self, payload: str) -> bytes:
        key = hmac.new(self._auth.session_secret, b"llmgate playground token", hashlib.sha256)
        return hmac.new(key.digest(), payload.encode(), hashlib.sha256).digest()

    def issue(self, spec: RunSpec, now: float) -> str:
        """A token for one run of ``spec``, valid for `ttl_s` from ``now``."""
        ticket = _Ticket(spec, os.urandom(12).hex(), now + self.ttl_s)
        payload = _b64(zlib.compress(msgspec.json.encode(ticket)))
        return f"{payload}.{_b64(self._sign(payload))}"

    def redeem(self, token: str, now: float) -> RunSpec:
        """The run of ``token``, once; raises `Refused`."""
        payload, sep, signature = token.partition(".")
        try:
            given = _unb64(signature)
        except ValueError:
            raise Refused("This run's link is malformed.") from None
        if not sep or not hmac.compare_digest(given, self._sign(payload)):
            raise Refused("This run's link is not valid: it was not issued by this dashboard.")
        try:
            ticket = msgspec.json.decode(zlib.decompress(_unb64(payload)), type=_Ticket)
        except (ValueError, zlib.error, msgspec.DecodeError):
            raise Refused("This run's link is malformed.") from None
        for nonce, expires in list(self._used.items()):
            if expires < now:
                del self._used[nonce]
        if ticket.expires <= now:
            raise Refused("This run's link has expired: run the prompt again.")
        if ticket.nonce in self._used:
            raise Refused("This run has already been streamed: run the prompt again.")
        self._used[ticket.nonce] = ticket.expires
        return ticket.spec


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
