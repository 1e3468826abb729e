"""route_rollups: 15-minute rows beside the minute, hour and day ones, for the dashboard's default time series

The statistics of the last 24 hours (the dashboard's default window) come in 15-minute buckets. With minute, hour
and day rows only, each bucket summed 15 minute rows of the whole project, histograms included: some 1,440 rows
and 60,000 histogram entries a request, read, sent and added up in Python, about half of that request's time at
1M requests over 7 days. Rows now also come at a 900-second grain (per route and for the whole project), so a
15-minute bucket is one row per shard, and the partial hours at a window's edges are read as at most three
quarter-hour rows and 14 minute rows each, not up to 59 minute rows.

- The insert trigger's aggregate (0004 with 0005's merge) and the rebuild of touched hours (0004) make the
  900-second rows too; a rebuild deletes them with the minute and hour rows of the hours it rebuilds.
- The 900-second rows of what is stored are made from the minute rows (exact: a quarter hour is 15 whole
  minutes of the same origin), one per group and quarter hour, under shard 0.

Revision ID: 0010
Revises: 0009
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0010"
down_revision = "0009"  # packed function spans (another branch); 0010 does not depend on its content
branch_labels = None
depends_on = None

GRAINS = "(60), (900), (3600), (86400)"
REBUILT_GRAINS = "(60), (900), (3600)"  # per touched hour, from the records; its days come from the hour rows
OLD_GRAINS, OLD_REBUILT_GRAINS = "(60), (3600), (86400)", "(60), (3600)"

QUARTERS_FROM_MINUTES = """
INSERT INTO route_rollups (project_id, bucket_seconds, bucket_start, group_key, shard, all_routes, service_name,
                           method, route, path, count, error_count, sum_duration, min_duration, max_duration,
                           hist_idx, hist_cnt)
WITH minutes AS (
    SELECT m.*, date_bin(interval '15 minutes', m.bucket_start, {origin}) AS quarter
    FROM route_rollups AS m WHERE m.bucket_seconds = 60
), totals AS (
    SELECT project_id, quarter, all_routes, group_key, min(service_name) AS service_name, min(method) AS method,
           min(route) AS route, min(path) AS path, sum(count)::bigint AS n, sum(error_count)::bigint AS e,
           sum(sum_duration) AS s, min(min_duration) AS lo, max(max_duration) AS hi
    FROM minutes GROUP BY project_id, quarter, all_routes, group_key
), buckets AS (
    SELECT project_id, quarter, all_routes, group_key, b, sum(c)::int AS c
    FROM (SELECT project_id, quarter, all_routes, group_key, unnest(hist_idx) AS b, unnest(hist_cnt) AS c
          FROM minutes) AS u
    GROUP BY project_id, quarter, all_routes, group_key, b
), hists AS (
    SELECT project_id, quarter, all_routes, group_key, array_agg(b ORDER BY b) AS bs, array_agg(c ORDER BY b) AS cs
    FROM buckets GROUP BY project_id, quarter, all_routes, group_key
)
SELECT t.project_id, 900, t.quarter, t.group_key, 0::smallint, t.all_routes, t.service_name, t.method, t.route,
       t.path, t.n, t.e, t.s, t.lo, t.hi, h.bs, h.cs
FROM totals AS t JOIN hists AS h USING (project_id, quarter, all_routes, group_key)
ORDER BY t.project_id, t.all_routes, t.quarter, t.group_key
"""


def _migration(name: str) -> ModuleType:
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"pystrument_migration_{name[:4]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def aggregate(source: str, grains: str = GRAINS, fast_merge: bool = True) -> str:
    """0004's rollup aggregate over ``source`` at ``grains``, with 0005's merge (or 0004's). Also the Citus
    writer's ``pystrument_rollup_add``."""
    v4, v5 = _migration("0004_route_rollups.py"), _migration("0005_rollup_fast_merge.py")
    upsert = v5.UPSERT if fast_merge else v4.UPSERT
    return v4.AGGREGATE.format(
        source=source, origin=v4.ORIGIN, project_group=v4.PROJECT_GROUP, grains=grains, upsert=upsert.strip()
    ).strip()


def _functions(grains: str, rebuilt: str) -> tuple[str, str]:
    """The insert trigger's and the rebuild's function text at these grains."""
    v4, v5 = _migration("0004_route_rollups.py"), _migration("0005_rollup_fast_merge.py")
    insert = v5.INSERT_FUNCTION.format(aggregate=aggregate("new_records AS r", grains))
    rebuild = v4.REBUILD_FUNCTION.format(
        aggregate=aggregate(v4.REBUILD_SOURCE, rebuilt, fast_merge=False), days=v4._days_from_hours(), origin=v4.ORIGIN
    ).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    deleted = "t.bucket_seconds IN (60, 3600)"  # the rows of the touched hours, deleted before they are rebuilt
    assert rebuild.count(deleted) == 1
    rebuilt_seconds = ", ".join(g.strip("() ") for g in rebuilt.split(","))
    return insert, rebuild.replace(deleted, f"t.bucket_seconds IN ({rebuilt_seconds})")


def upgrade() -> None:
    v4 = _migration("0004_route_rollups.py")
    for function in _functions(GRAINS, REBUILT_GRAINS):
        op.execute(function)
    op.execute(QUARTERS_FROM_MINUTES.format(origin=v4.ORIGIN))


def downgrade() -> None:
    for function in _functions(OLD_GRAINS, OLD_REBUILT_GRAINS):
        op.execute(function)
    op.execute("DELETE FROM route_rollups WHERE bucket_seconds = 900")
