"""sms carrier credentials

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 20:38:14.440028
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_credentials", sa.Text(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("sms_credentials")
