"""calls.attestation holds a carrier's full verification status

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 09:45:00

Twilio's ``StirVerstat`` (``TN-Validation-Passed-A``) is 22 characters; the column held 16, so
PostgreSQL refused every such call (SQLite does not enforce lengths).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column("attestation", existing_type=sa.String(length=16),
                              type_=sa.String(length=64), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.alter_column("attestation", existing_type=sa.String(length=64),
                              type_=sa.String(length=16), existing_nullable=True)
