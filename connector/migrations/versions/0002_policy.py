"""policy: decisions, line types, consent log, call activity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 20:23:35.752112
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "call_activity",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("customer", sa.String(length=20), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "carrier", "event_id"),
    )
    with op.batch_alter_table("call_activity", schema=None) as batch_op:
        batch_op.create_index("ix_call_activity_customer", ["account_id", "customer", "at"], unique=False)

    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("business_number", sa.String(length=20), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index("ix_consent_account_number", ["account_id", "number", "id"], unique=False)

    op.create_table(
        "contact_profiles",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "number"),
    )
    op.create_table(
        "line_types",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("line_type", sa.String(length=24), nullable=False),
        sa.Column("looked_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "number"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_trace", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("scenario", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("burst_leader_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("line_type", sa.String(length=24), nullable=True))
        batch_op.drop_index(batch_op.f("ix_calls_account_caller"))
        batch_op.create_index(
            "ix_calls_account_caller", ["account_id", "caller", "occurred_at"], unique=False
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("intent", sa.String(length=16), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("intent")

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_account_caller")
        batch_op.create_index(batch_op.f("ix_calls_account_caller"), ["account_id", "caller"], unique=False)
        batch_op.drop_column("line_type")
        batch_op.drop_column("burst_leader_id")
        batch_op.drop_column("send_at")
        batch_op.drop_column("language")
        batch_op.drop_column("scenario")
        batch_op.drop_column("decision_trace")

    op.drop_table("line_types")
    op.drop_table("contact_profiles")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_account_number")

    op.drop_table("consent_events")
    with op.batch_alter_table("call_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_call_activity_customer")

    op.drop_table("call_activity")
