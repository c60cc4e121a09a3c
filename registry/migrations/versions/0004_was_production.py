"""model_versions.was_production: whether a version has ever been production.

Rolling back production restores only such a version, never an archived candidate kept out by
its A/B test (keep_production). Before this revision every archived version had been production
(keep_production arrived just before it), so production and archived rows are marked.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as table:
        table.add_column(
            sa.Column("was_production", sa.Boolean, nullable=False, server_default=sa.false())
        )
    versions = sa.table(
        "model_versions", sa.column("status", sa.String), sa.column("was_production", sa.Boolean)
    )
    op.execute(
        versions.update()
        .where(versions.c.status.in_(["production", "archived"]))
        .values(was_production=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as table:
        table.drop_column("was_production")
