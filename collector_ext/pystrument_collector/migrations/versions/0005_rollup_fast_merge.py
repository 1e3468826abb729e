"""route_rollups: a cheaper merge of a new histogram bucket into a stored rollup row

The statement-level insert trigger of 0004 upserts each statement's partial rows; merging a stored row's sparse
histogram with the new one ran an unnest/group/sort subquery per row, about half of the trigger's cost. Nearly
every merged row of a small statement (an OTLP request's records) brings a single bucket: that bucket is now
found with ``width_bucket`` (a binary search of the sorted ``hist_idx``) and its count added, or the bucket
inserted at its place, by array slicing; only rows bringing several buckets still take the subquery. The table,
what its rows mean, and the other triggers are unchanged.

Revision ID: 0005
Revises: 0004
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Merging a new partial row ``excluded`` into the stored row ``t`` of the same key (same result as 0004's). The
# slices start at 1 explicitly: ``[:name`` would read as a bind parameter to SQLAlchemy's text().
UPSERT = """
ON CONFLICT (project_id, bucket_seconds, all_routes, bucket_start, group_key, shard) DO UPDATE SET
    count = t.count + excluded.count,
    error_count = t.error_count + excluded.error_count,
    sum_duration = t.sum_duration + excluded.sum_duration,
    min_duration = least(t.min_duration, excluded.min_duration),
    max_duration = greatest(t.max_duration, excluded.max_duration),
    hist_idx = CASE
        WHEN cardinality(excluded.hist_idx) <> 1 THEN
            (SELECT array_agg(DISTINCT b ORDER BY b) FROM unnest(t.hist_idx || excluded.hist_idx) AS u(b))
        WHEN t.hist_idx[width_bucket(excluded.hist_idx[1], t.hist_idx)] = excluded.hist_idx[1] THEN t.hist_idx
        ELSE t.hist_idx[1:width_bucket(excluded.hist_idx[1], t.hist_idx)] || excluded.hist_idx
             || t.hist_idx[width_bucket(excluded.hist_idx[1], t.hist_idx) + 1:] END,
    hist_cnt = CASE
        WHEN cardinality(excluded.hist_idx) <> 1 THEN
            (SELECT array_agg(n ORDER BY b) FROM (
                SELECT b, sum(n)::int FROM unnest(t.hist_idx || excluded.hist_idx, t.hist_cnt || excluded.hist_cnt)
                AS u(b, n) GROUP BY b) AS merged(b, n))
        WHEN t.hist_idx[width_bucket(excluded.hist_idx[1], t.hist_idx)] = excluded.hist_idx[1] THEN
            t.hist_cnt[1:width_bucket(excluded.hist_idx[1], t.hist_idx) - 1]
            || (t.hist_cnt[width_bucket(excluded.hist_idx[1], t.hist_idx)] + excluded.hist_cnt[1])
            || t.hist_cnt[width_bucket(excluded.hist_idx[1], t.hist_idx) + 1:]
        ELSE t.hist_cnt[1:width_bucket(excluded.hist_idx[1], t.hist_idx)] || excluded.hist_cnt
             || t.hist_cnt[width_bucket(excluded.hist_idx[1], t.hist_idx) + 1:] END
"""

INSERT_FUNCTION = """
CREATE OR REPLACE FUNCTION pystrument_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    {aggregate};
    RETURN NULL;
END
$body$
"""


def _v0004() -> ModuleType:
    """Migration 0004's module, for its aggregate query and function text."""
    path = Path(__file__).with_name("0004_route_rollups.py")
    spec = importlib.util.spec_from_file_location("pystrument_migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    v4 = _v0004()
    aggregate = v4.AGGREGATE.format(
        source="new_records AS r",
        origin=v4.ORIGIN,
        project_group=v4.PROJECT_GROUP,
        grains="(60), (3600), (86400)",
        upsert=UPSERT.strip(),
    )
    op.execute(INSERT_FUNCTION.format(aggregate=aggregate.strip()))


def downgrade() -> None:
    v4 = _v0004()
    op.execute(
        v4.INSERT_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).format(
            aggregate=v4._aggregate("new_records AS r")
        )
    )
