"""outbox.topic: the outbox also carries the registry's manual retrain commands (retrain-commands).

Existing rows are registry events, hence the default.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from contracts.topics import TopicName

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.add_column(
            sa.Column(
                "topic",
                sa.String(64),
                nullable=False,
                server_default=TopicName.REGISTRY_EVENTS.value,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.drop_column("topic")
