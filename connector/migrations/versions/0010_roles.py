"""user roles, account membership, and the setup pages' audit trail

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 11:40:00

Existing users keep what they could do: one with an account becomes a rep of that account (they
saw its conversations and dashboard); one without (an operator who saw every account) becomes an
admin of every account.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_members",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "account_id"),
    )
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("user_email", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_entries_account", "audit_entries", ["account_id", "id"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=8), nullable=False,
                                      server_default="rep"))
        batch_op.add_column(sa.Column("all_accounts", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.execute("INSERT INTO account_members (user_id, account_id) "
               "SELECT id, account_id FROM users WHERE account_id IS NOT NULL")
    op.execute(sa.text("UPDATE users SET role = 'admin', all_accounts = :yes "
                       "WHERE account_id IS NULL").bindparams(yes=True))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("account_id")


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.String(length=64), nullable=True))
    # A user of several accounts keeps one of them; an operator keeps every account.
    op.execute("UPDATE users SET account_id = (SELECT MIN(m.account_id) FROM account_members m "
               "WHERE m.user_id = users.id) WHERE NOT all_accounts")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("all_accounts")
        batch_op.drop_column("role")
        batch_op.create_foreign_key("users_account_id_fkey", "accounts", ["account_id"], ["id"],
                                    ondelete="CASCADE")
    op.drop_index("ix_audit_entries_account", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("account_members")
