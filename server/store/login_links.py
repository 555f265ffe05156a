"""One-time dashboard sign-in links, as ``llmgate serve`` prints them on a first run
(no admin key or password, a loopback address), as Jupyter does.

A link's token is random; only its SHA-256 is stored (``login_links``), with when it
expires. Redeeming it marks it used in the same statement that checks it, so of any
number of processes sharing the database exactly one can ever accept it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.database import WRITE
from server.store.models import LoginLink

__all__ = ["LINK_TTL", "issue_link", "redeem_link"]

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
