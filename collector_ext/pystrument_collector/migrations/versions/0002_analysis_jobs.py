"""analysis job queue columns: lease, language, provider used

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
    op.add_column("analyses", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("analyses", sa.Column("language", sa.String(length=8), nullable=False, server_default="en"))
    op.add_column("analyses", sa.Column("provider_used", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("analyses", "provider_used")
    op.drop_column("analyses", "language")
    op.drop_column("analyses", "lease_expires_at")
