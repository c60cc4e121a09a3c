"""processed_messages.outcome holds every outcome code: VARCHAR(16) -> VARCHAR(32).

"duplicate_command" (17 characters) did not fit, so on PostgreSQL a zombie trainer's second
deployment for one command was refused as unstorable instead of being recorded as ignored.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_messages") as table:
        table.alter_column("outcome", existing_type=sa.String(16), type_=sa.String(32))


def downgrade() -> None:
    with op.batch_alter_table("processed_messages") as table:
        table.alter_column("outcome", existing_type=sa.String(32), type_=sa.String(16))
