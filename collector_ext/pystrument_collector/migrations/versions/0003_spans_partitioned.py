"""spans partitioned by day on start_time, unique on (trace_id, span_id, start_time), with a default partition

Postgres wants the partition key in every unique index of a partitioned table, so the key becomes
(trace_id, span_id, start_time): a span sent again carries the same start time, so retransmissions still
collide on it. Day partitions (spans_pYYYYMMDD) are made ahead of time by pystrument_collector.retention;
rows outside them land in spans_default, so nothing is ever refused for want of a partition.

For write speed (spans are the one high-volume table): ids compare bytewise (COLLATE "C"; they are hex or
the seed's ASCII trace ids), and the per-row foreign key to projects is replaced by a statement-level
trigger that deletes a deleted project's spans in one statement (the same cascade, without a lookup per
inserted span). Request records keep their foreign key, so a write for a project deleted meanwhile is still
refused as soon as it carries a request span.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    "trace_id, span_id, project_id, parent_span_id, name, kind, start_time, duration, status_code, "
    "status_message, service_name, synthetic, attributes, events"
)

TABLE = """
CREATE TABLE spans (
    trace_id VARCHAR(32) COLLATE "C" NOT NULL,
    span_id VARCHAR(16) COLLATE "C" NOT NULL,
    project_id BIGINT NOT NULL{project_fk},
    parent_span_id VARCHAR(16) COLLATE "C",
    name TEXT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    start_time TIMESTAMP WITH TIME ZONE NOT NULL,
    duration FLOAT NOT NULL,
    status_code SMALLINT NOT NULL,
    status_message TEXT NOT NULL,
    service_name VARCHAR(200) NOT NULL,
    synthetic BOOLEAN NOT NULL,
    attributes JSONB NOT NULL,
    events JSONB NOT NULL,
    {key}
){partitioning}
"""


CASCADE_FUNCTION = """
CREATE FUNCTION pystrument_delete_project_spans() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM spans WHERE project_id IN (SELECT id FROM deleted_projects);
    RETURN NULL;
END
$$
"""

CASCADE_TRIGGER = """
CREATE TRIGGER projects_delete_spans AFTER DELETE ON projects
REFERENCING OLD TABLE AS deleted_projects
FOR EACH STATEMENT EXECUTE FUNCTION pystrument_delete_project_spans()
"""


def upgrade() -> None:
    op.execute("ALTER TABLE spans RENAME TO spans_unpartitioned")
    op.execute("ALTER INDEX spans_pkey RENAME TO spans_unpartitioned_pkey")
    op.execute("ALTER INDEX ix_spans_project_start RENAME TO ix_spans_unpartitioned_project_start")
    op.execute(
        TABLE.format(
            key="CONSTRAINT spans_pkey PRIMARY KEY (trace_id, span_id, start_time)",
            partitioning=" PARTITION BY RANGE (start_time)",
            project_fk="",
        )
    )
    op.execute("CREATE INDEX ix_spans_project_start ON spans (project_id, start_time)")
    op.execute("CREATE TABLE spans_default PARTITION OF spans DEFAULT")
    op.execute(f"INSERT INTO spans ({COLUMNS}) SELECT {COLUMNS} FROM spans_unpartitioned")
    op.execute("DROP TABLE spans_unpartitioned")
    op.execute(CASCADE_FUNCTION)
    op.execute(CASCADE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER projects_delete_spans ON projects")
    op.execute("DROP FUNCTION pystrument_delete_project_spans()")
    op.execute("ALTER TABLE spans RENAME TO spans_partitioned")
    op.execute("ALTER INDEX spans_pkey RENAME TO spans_partitioned_pkey")
    op.execute("ALTER INDEX ix_spans_project_start RENAME TO ix_spans_partitioned_project_start")
    op.execute(
        TABLE.replace(' COLLATE "C"', "").format(
            key="CONSTRAINT spans_pkey PRIMARY KEY (trace_id, span_id)",
            partitioning="",
            project_fk=" REFERENCES projects (id) ON DELETE CASCADE",
        )
    )
    op.execute("CREATE INDEX ix_spans_project_start ON spans (project_id, start_time)")
    op.execute(
        f"INSERT INTO spans ({COLUMNS}) SELECT DISTINCT ON (trace_id, span_id) {COLUMNS} FROM spans_partitioned "
        "ORDER BY trace_id, span_id, start_time"
    )
    op.execute("DROP TABLE spans_partitioned")
