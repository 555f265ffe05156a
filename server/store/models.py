"""The policy store's tables.

``providers`` and ``routes`` hold the live configuration, one row per name, as the
canonical JSON of their msgspec Structs. ``revisions`` keeps every revision with a
full snapshot, so a rollback is just another write. ``config_state`` is a single row:
the current revision (the row every writer locks) and the ``[defaults]`` policy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, DateTime, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "ConfigState", "ProviderRow", "RevisionRow", "RouteRow"]

NAME_LENGTH = 200


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
