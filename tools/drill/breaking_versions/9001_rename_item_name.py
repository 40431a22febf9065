"""Breaking on purpose, for make drill-migration-control: items.name renamed to title in one
step, without expand/contract. Every release reading `name` fails from the commit on.

Revision ID: 9001
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "9001"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.alter_column("items", "name", new_column_name="title")


def downgrade() -> None:
    op.alter_column("items", "title", new_column_name="name")
