"""who connected a CRM and when; whether an account's CRM connects by OAuth or a token

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 11:40:00

``installations.connected_at`` and ``connected_by`` say when and by whom an OAuth install was
made (existing installs count from their last update). ``accounts.crm_auth`` is ``oauth`` or
``token``: how the account's CRM credentials connect, so its connection state can be told
without opening the sealed credentials.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("connected_by", sa.String(length=200), nullable=True))
    op.execute("UPDATE installations SET connected_at = updated_at")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("crm_auth", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("crm_auth")
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.drop_column("connected_by")
        batch_op.drop_column("connected_at")
