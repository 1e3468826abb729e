"""project_id in every primary key and unique index of spans, performance_records and analyses; fewer span indexes

Citus shards a table by one column and wants it in every unique constraint, and a query that names one
``project_id`` then runs on one shard. ``route_rollups`` (0004) and ``logs`` (0006) already lead with it; this
migration makes the others do so, in place (rows are kept, each index is rebuilt once):

- ``spans``: primary key ``(project_id, trace_id, span_id, start_time)``. Every read of spans names a project and
  a trace (detail, analysis, hot functions, differential), which this key serves; ``ix_spans_project_start`` is
  used by no query (retention drops day partitions whole), so it goes: about a third of a span's index bytes.
- ``performance_records``: primary key ``(project_id, trace_id, span_id)``.
- ``analyses``: primary key ``(project_id, id)``; ``ix_analyses_trace`` becomes ``(project_id, trace_id)``.

No foreign key references these tables, so none has to change; their own keys to ``projects`` stay (on Citus
``projects`` becomes a reference table, which distributed tables may reference).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE spans DROP CONSTRAINT spans_pkey")
    op.execute("ALTER TABLE spans ADD CONSTRAINT spans_pkey PRIMARY KEY (project_id, trace_id, span_id, start_time)")
    op.execute("DROP INDEX IF EXISTS ix_spans_project_start")
    op.execute("ALTER TABLE performance_records DROP CONSTRAINT performance_records_pkey")
    op.execute(
        "ALTER TABLE performance_records ADD CONSTRAINT performance_records_pkey "
        "PRIMARY KEY (project_id, trace_id, span_id)"
    )
    op.execute("ALTER TABLE analyses DROP CONSTRAINT analyses_pkey")
    op.execute("ALTER TABLE analyses ADD CONSTRAINT analyses_pkey PRIMARY KEY (project_id, id)")
    op.execute("DROP INDEX IF EXISTS ix_analyses_trace")
    op.execute("CREATE INDEX ix_analyses_trace ON analyses (project_id, trace_id)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_analyses_trace")
    op.execute("CREATE INDEX ix_analyses_trace ON analyses (trace_id)")
    op.execute("ALTER TABLE analyses DROP CONSTRAINT analyses_pkey")
    op.execute("ALTER TABLE analyses ADD CONSTRAINT analyses_pkey PRIMARY KEY (id)")
    op.execute("ALTER TABLE performance_records DROP CONSTRAINT performance_records_pkey")
    op.execute(
        "ALTER TABLE performance_records ADD CONSTRAINT performance_records_pkey PRIMARY KEY (trace_id, span_id)"
    )
    op.execute("ALTER TABLE spans DROP CONSTRAINT spans_pkey")
    op.execute("ALTER TABLE spans ADD CONSTRAINT spans_pkey PRIMARY KEY (trace_id, span_id, start_time)")
    op.execute("CREATE INDEX ix_spans_project_start ON spans (project_id, start_time)")
