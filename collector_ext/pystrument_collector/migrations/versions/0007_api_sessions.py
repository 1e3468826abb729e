"""api_sessions: the web UI's login sessions, revocable (logout, a new API token) and shared by every server

The cookie holds a random session id; the table keeps only its SHA-256, with the fingerprint of the API token
it was granted under (a session of an older token is void) and when it expires.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_sessions",
        sa.Column("id_hash", sa.String(length=64), primary_key=True),
        sa.Column("token_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_api_sessions_expires", "api_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_api_sessions_expires", table_name="api_sessions")
    op.drop_table("api_sessions")
