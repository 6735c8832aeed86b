"""oauth installations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 20:33:14.304786
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "installations",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("crm", sa.String(length=32), nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "crm"),
    )
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_installations_external_id"), ["external_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_installations_external_id"))

    op.drop_table("installations")
