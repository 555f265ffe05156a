"""The policy store's tables.

``providers`` and ``routes`` hold the live configuration, one row per name, as the
canonical JSON of their msgspec Structs. ``revisions`` keeps every revision with a
full snapshot, so a rollback is just another write. ``config_state`` is a single row:
the current revision (the row every writer locks) and the ``[defaults]`` policy.
``request_log`` has one row per finished request (written by `server.observe`);
``responses`` one per stored Responses API response (`server.store.responses`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKeyRow",
    "Base",
    "BudgetCounter",
    "ConfigState",
    "LoginLink",
    "ProviderRow",
    "RequestLog",
    "RevisionRow",
    "RouteRow",
    "SignedOut",
    "StoredResponse",
]

NAME_LENGTH = 200
TARGET_LENGTH = 256


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "pk": "pk_%(table_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
        }
    )
    type_annotation_map = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class ProviderRow(Base):
    __tablename__ = "providers"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    config: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class RouteRow(Base):
    __tablename__ = "routes"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    policy: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class RevisionRow(Base):
    __tablename__ = "revisions"

    # Assigned by the writer holding the state lock (current + 1), so ids are dense.
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(NAME_LENGTH))
    summary: Mapped[str] = mapped_column(Text)
    snapshot: Mapped[dict[str, Any]]


class ConfigState(Base):
    __tablename__ = "config_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)
    """0 until the first write: an empty database, which `seed_if_empty` fills."""
    defaults: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    secret: Mapped[str | None] = mapped_column(String(64))
    """A random key this installation's processes share (the dashboard's cookies)."""
    keys_version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    """Bumped by every change of ``api_keys``, which each process polls alongside the
    revision (and hears of through ``NOTIFY llmgate_keys`` on PostgreSQL)."""


class RequestLog(Base):
    """One finished request: its outcome, timings, usage and full engine record.

    The dashboard lists rows newest first, filtered by route, status or target: each
    filter has a ``(column, created_at)`` index, which also serves the filter alone.
    """

    __tablename__ = "request_log"
    __table_args__ = (
        CheckConstraint("status IN ('ok', 'partial', 'failed')", name="status"),
        Index("ix_request_log_route_created_at", "route", "created_at"),
        Index("ix_request_log_status_created_at", "status", "created_at"),
        Index("ix_request_log_target_created_at", "target", "created_at"),
        Index("ix_request_log_api_key_id_created_at", "api_key_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The request id the client saw (``x-llmgate-request-id``)."""
    created_at: Mapped[datetime] = mapped_column(index=True)
    """When the request started (UTC)."""
    route: Mapped[str] = mapped_column(String(NAME_LENGTH))
    target: Mapped[str | None] = mapped_column(String(TARGET_LENGTH))
    """The target that answered (``ok``) or was tried last; None if none was tried."""
    status: Mapped[str] = mapped_column(String(16))
    """``ok``, ``partial`` (content was delivered, then it failed) or ``failed``."""
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    total_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    """None while no price is known for the targets that answered."""
    error: Mapped[str | None] = mapped_column(Text)
    record: Mapped[dict[str, Any]]
    """The engine's `RequestRecord`: every attempt and stream switch."""
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    """The virtual API key that asked (None: the master key, or no key)."""
    transcript: Mapped[list[Any] | None] = mapped_column(JSON)
    """What the client was shown, with each switch in place (`server.observe.transcript`)."""
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    """About how much the row takes: its record and transcript as JSON, and the rest
    (``request_log_max_mb``); None for rows written before it was kept."""


class ApiKeyRow(Base):
    """A virtual client key. Only the SHA-256 of its secret is stored; ``prefix`` (the
    secret's first characters) lets people tell keys apart. A name is unique among the
    keys not revoked."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index(
            "uq_api_keys_active_name",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    routes: Mapped[list[Any] | None] = mapped_column(JSON)
    """Route names the key may use; None: every route and target."""
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The key's own `router.policy.Budget` (its ``downgrade_to`` unused)."""
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class BudgetCounter(Base):
    """Use of one budget limit in one calendar window: ``scope`` is ``route:<name>`` or
    ``key:<id>``, ``metric`` ``usd``, ``tokens`` or ``requests``, ``period`` ``minute`` to
    ``month``, ``window_start`` the window's first second (Unix time). ``used`` only
    grows within a window, except when a process hands back requests it leased and did
    not serve (see `server.core.budgets`)."""

    __tablename__ = "budget_counters"

    scope: Mapped[str] = mapped_column(String(TARGET_LENGTH), primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    used: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class StoredResponse(Base):
    """A Responses API response kept for ``GET /v1/responses/{id}`` and for the
    follow-ups that name it in ``previous_response_id``, until ``expires_at``."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    """The key that made it, the only one that sees it (None: the master key, or none)."""
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    session: Mapped[str | None] = mapped_column(String(512))
    """The conversation's session key, which its follow-ups inherit (affinity)."""
    conversation: Mapped[list[Any]] = mapped_column(JSON)
    """Every turn so far as the engine's messages, this response's output included,
    without the instructions (a follow-up brings its own, as OpenAI's do)."""
    input_items: Mapped[list[Any]] = mapped_column(JSON)
    """This request's input items, each with an id (``GET .../input_items``)."""
    response: Mapped[dict[str, Any]]
    """The ``Response`` object as the client received it."""


class LoginLink(Base):
    """A one-time dashboard sign-in link (`server.store.login_links`): its token's hash."""

    __tablename__ = "login_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class SignedOut(Base):
    """A dashboard session signed out before its cookie expires: refused from then on,
    by every process (`server.store.login_links.sign_out`)."""

    __tablename__ = "signed_out"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]
