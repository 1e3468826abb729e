"""logs: OTLP log records, partitioned by day on timestamp, keyed by (project_id, timestamp, log_id)

Log records arrive over ``/v1/logs`` and OTLP/gRPC with the trace and span they were written in. Like ``spans``,
the table is range-partitioned by day (partitions ``logs_pYYYYMMDD`` made ahead by
pystrument_collector.retention, rows outside them in ``logs_default``) and kept as long as spans. A record has no
id of its own: ``log_id`` is a digest of what is stored, so an exporter's retry is stored once. ``project_id``
leads the primary key and the index (a later Citus distribution shards by it). No per-row foreign key (write
speed, as for spans): a statement-level trigger deletes a deleted project's logs.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE logs (
    project_id BIGINT NOT NULL,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    log_id UUID NOT NULL,
    trace_id VARCHAR(32) COLLATE "C",
    span_id VARCHAR(16) COLLATE "C",
    severity_number SMALLINT NOT NULL,
    severity_text VARCHAR(32) NOT NULL,
    body JSONB,
    attributes JSONB NOT NULL,
    service_name VARCHAR(200) NOT NULL,
    scope_name TEXT NOT NULL,
    CONSTRAINT logs_pkey PRIMARY KEY (project_id, timestamp, log_id)
) PARTITION BY RANGE (timestamp)
"""

CASCADE_FUNCTION = """
CREATE FUNCTION pystrument_delete_project_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM logs WHERE project_id IN (SELECT id FROM deleted_projects);
    RETURN NULL;
END
$$
"""

CASCADE_TRIGGER = """
CREATE TRIGGER projects_delete_logs AFTER DELETE ON projects
REFERENCING OLD TABLE AS deleted_projects
FOR EACH STATEMENT EXECUTE FUNCTION pystrument_delete_project_logs()
"""


def upgrade() -> None:
    op.execute(TABLE)
    op.execute("CREATE INDEX ix_logs_project_trace ON logs (project_id, trace_id, timestamp)")
    op.execute("CREATE TABLE logs_default PARTITION OF logs DEFAULT")
    op.execute(CASCADE_FUNCTION)
    op.execute(CASCADE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER projects_delete_logs ON projects")
    op.execute("DROP FUNCTION pystrument_delete_project_logs()")
    op.execute("DROP TABLE logs")
