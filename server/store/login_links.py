"""One-time dashboard sign-in links, as ``llmgate serve`` prints them on a first run
(no admin key or password, a loopback address), as Jupyter does; and the dashboard
sessions signed out, which every process refuses until their cookie would expire.

A link's token is random; only its SHA-256 is stored (``login_links``), with when it
expires. Redeeming it marks it used in the same statement that checks it, so of any
number of processes sharing the database exactly one can ever accept it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.database import WRITE
from server.store.models import LoginLink, SignedOut

__all__ = ["LINK_TTL", "is_signed_out", "issue_link", "redeem_link", "sign_out"]

LINK_TTL = timedelta(minutes=15)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_link(engine: AsyncEngine, ttl: timedelta = LINK_TTL) -> str:
    """A new single-use token, valid for ``ttl``; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        conn = await conn.execution_options(**WRITE)
        async with conn.begin():
            await conn.execute(
                insert(LoginLink).values(
                    token_hash=_hash(token), created_at=now, expires_at=now + ttl
                )
            )
    return token


async def redeem_link(engine: AsyncEngine, token: str) -> bool:
    """Whether ``token`` is a link not used yet and not expired; it is used from now on."""
    now = datetime.now(UTC)
    spend = (
        update(LoginLink)
        .where(
            LoginLink.token_hash == _hash(token),
            LoginLink.used_at.is_(None),
            LoginLink.expires_at > now,
        )
        .values(used_at=now)
    )
    async with engine.connect() as conn:
        conn = await conn.execution_options(**WRITE)
        async with conn.begin():
            result = await conn.execute(spend)
    return result.rowcount == 1


async def sign_out(engine: AsyncEngine, sid: str, until: datetime) -> None:
    """Refuse the session ``sid`` from now on (until ``until``, when its cookie expires
    anyway); forget the sessions whose cookies have expired."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**WRITE)
        async with conn.begin():
            await conn.execute(delete(SignedOut).where(SignedOut.expires_at < datetime.now(UTC)))
            await conn.execute(delete(SignedOut).where(SignedOut.sid == sid))
            await conn.execute(insert(SignedOut).values(sid=sid, expires_at=until))


async def is_signed_out(engine: AsyncEngine, sid: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(select(SignedOut.sid).where(SignedOut.sid == sid))
        return found.first() is not None
