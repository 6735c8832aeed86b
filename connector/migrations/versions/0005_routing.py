"""routing and escalation

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 20:41:54.903177
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "routing_state",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "team"),
    )
    op.create_table(
        "escalation_timers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "level"),
    )
    with op.batch_alter_table("escalation_timers", schema=None) as batch_op:
        batch_op.create_index("ix_escalation_due", ["fired_at", "cancelled_at", "due_at"], unique=False)

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("customer_replied_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("human_responded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("human_responded_at")
        batch_op.drop_column("customer_replied_at")
        batch_op.drop_column("owner_id")

    with op.batch_alter_table("escalation_timers", schema=None) as batch_op:
        batch_op.drop_index("ix_escalation_due")

    op.drop_table("escalation_timers")
    op.drop_table("routing_state")
