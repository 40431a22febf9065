"""Expand: items.category, a nullable text column the API accepts and returns.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nullable, no default: PostgreSQL changes only its catalog (no table rewrite, the
    # ACCESS EXCLUSIVE lock held for milliseconds, bounded by lock_timeout). Code of the
    # previous release neither reads nor writes it, so it keeps working beside it.
    op.add_column("items", sa.Column("category", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("items", "category")
