"""Budgets: per-window counters shared by every process, a budget per API key, and
the key that made each logged request, and a random secret the processes share.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budget_counters",
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope", "metric", "period", "window_start", name="pk_budget_counters"
        ),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("budget", sa.JSON(), nullable=True))
    with op.batch_alter_table("request_log") as batch:
        batch.add_column(sa.Column("api_key_id", sa.String(32), nullable=True))
    with op.batch_alter_table("config_state") as batch:
        batch.add_column(sa.Column("secret", sa.String(64), nullable=True))
    op.create_index(
        "ix_request_log_api_key_id_created_at", "request_log", ["api_key_id", "created_at"]
    )


def downgrade() -> None:
    with op.batch_alter_table("config_state") as batch:
        batch.drop_column("secret")
    op.drop_index("ix_request_log_api_key_id_created_at", "request_log")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("api_key_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("budget")
    op.drop_table("budget_counters")
