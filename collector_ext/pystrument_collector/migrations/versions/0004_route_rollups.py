"""route_rollups: request statistics per route and per project, by minute, hour and day, kept by triggers

One row per (project, grain, level, bucket start, group, shard) with the count, error count, sum, min and max of the
request durations and a sparse log-scale histogram of them (``hist_idx`` bucket numbers, ``hist_cnt`` counts;
bucket 0 is <= 0.1 ms, bucket k covers (0.1 ms * 1.1^(k-1), 0.1 ms * 1.1^k], the last one everything above
~1000 s). Grains are 60, 3600 and 86400 s; buckets start at multiples of the grain since the epoch (UTC). A
group is one (service, method, route, path) -- ``path`` only when there is no route template -- or, with
``all_routes``, the whole project (so project-wide figures read one row per bucket, not one per route).

The collector's write path is untouched: a statement-level AFTER INSERT trigger with a transition table adds
each statement's new records (only the rows really inserted; ON CONFLICT DO NOTHING skips the rest) in one
upsert, in key order, under a shard of the writing backend (pg_backend_pid() % 16), so concurrent writers
rarely wait on one another's rows; readers sum the shards. Deleting, updating or truncating records
(retention, a project's deletion) rebuilds the touched hours from the records that remain, and their days
from the hour rows, so the rollups always add up to the records.

Also: an index on (project_id, duration) for the records list sorted by duration.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"
PROJECT_GROUP = "'00000000-0000-0000-0000-000000000000'::uuid"

TABLE = """
CREATE TABLE route_rollups (
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    bucket_seconds INTEGER NOT NULL,
    bucket_start TIMESTAMP WITH TIME ZONE NOT NULL,
    group_key UUID NOT NULL,
    shard SMALLINT NOT NULL,
    all_routes BOOLEAN NOT NULL,
    service_name VARCHAR(200) NOT NULL,
    method VARCHAR(16) NOT NULL,
    route TEXT NOT NULL,
    path TEXT NOT NULL,
    count BIGINT NOT NULL,
    error_count BIGINT NOT NULL,
    sum_duration FLOAT NOT NULL,
    min_duration FLOAT NOT NULL,
    max_duration FLOAT NOT NULL,
    hist_idx SMALLINT[] NOT NULL,
    hist_cnt INTEGER[] NOT NULL,
    CONSTRAINT route_rollups_pkey PRIMARY KEY (project_id, bucket_seconds, all_routes, bucket_start, group_key, shard)
)
"""

BUCKET_FUNCTION = """
CREATE FUNCTION pystrument_duration_bucket(d double precision) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN d <= 0.0001 OR d IS NULL THEN 0
                ELSE least(170, ceil(ln(d / 0.0001) / ln(1.1)))::smallint END
$$
"""

# {source}: performance_records rows as ``r``. Inner level: per group (and per project) and histogram bucket;
# outer level: one row per group with the histogram as two arrays.
AGGREGATE = """
INSERT INTO route_rollups AS t (project_id, bucket_seconds, bucket_start, group_key, shard, all_routes,
                                service_name, method, route, path, count, error_count, sum_duration,
                                min_duration, max_duration, hist_idx, hist_cnt)
SELECT project_id, grain, bucket_start,
       CASE WHEN whole THEN {project_group} ELSE md5(row(service_name, method, route, path)::text)::uuid END,
       (pg_backend_pid() % 16)::smallint, whole, service_name, method, route, path,
       sum(n)::bigint, sum(e)::bigint, sum(s), min(lo), max(hi), array_agg(b ORDER BY b), array_agg(n::int ORDER BY b)
FROM (
    SELECT project_id, grain, bucket_start, GROUPING(service_name, method, route, path) <> 0 AS whole,
           coalesce(service_name, '') AS service_name, coalesce(method, '') AS method,
           coalesce(route, '') AS route, coalesce(path, '') AS path, b,
           count(*) AS n, count(*) FILTER (WHERE is_error) AS e, sum(duration) AS s, min(duration) AS lo,
           max(duration) AS hi
    FROM (
        SELECT r.project_id, g.grain, date_bin(make_interval(secs => g.grain), r."timestamp", {origin}) AS bucket_start,
               r.service_name, r.method, r.route, CASE WHEN r.route = '' THEN r.path ELSE '' END AS path,
               pystrument_duration_bucket(r.duration) AS b, r.duration, r.is_error
        FROM {source} CROSS JOIN (VALUES {grains}) AS g(grain)
    ) AS x
    GROUP BY GROUPING SETS ((project_id, grain, bucket_start, service_name, method, route, path, b),
                            (project_id, grain, bucket_start, b))
) AS per_bucket
GROUP BY project_id, grain, bucket_start, whole, service_name, method, route, path
ORDER BY project_id, grain, whole, bucket_start, 4
{upsert}
"""

# Merging a new partial row into the stored one of the same key (same shard).
UPSERT = """
ON CONFLICT (project_id, bucket_seconds, all_routes, bucket_start, group_key, shard) DO UPDATE SET
    count = t.count + excluded.count,
    error_count = t.error_count + excluded.error_count,
    sum_duration = t.sum_duration + excluded.sum_duration,
    min_duration = least(t.min_duration, excluded.min_duration),
    max_duration = greatest(t.max_duration, excluded.max_duration),
    (hist_idx, hist_cnt) = (
        SELECT array_agg(b ORDER BY b), array_agg(n ORDER BY b)
        FROM (SELECT b, sum(n)::int FROM unnest(t.hist_idx || excluded.hist_idx, t.hist_cnt || excluded.hist_cnt)
              AS u(b, n) GROUP BY b) AS merged(b, n)
    )
"""

INSERT_FUNCTION = """
CREATE FUNCTION pystrument_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    {aggregate};
    RETURN NULL;
END
$body$
"""

# Day rows of the days in p_days, from their (just rebuilt) hour rows: exact, and cheap (at most 24 rows a
# group), where re-reading a whole day of records would not be.
DAYS_FROM_HOURS = """
INSERT INTO route_rollups AS t (project_id, bucket_seconds, bucket_start, group_key, shard, all_routes,
                                service_name, method, route, path, count, error_count, sum_duration,
                                min_duration, max_duration, hist_idx, hist_cnt)
WITH hours AS (
    SELECT h.*, date_bin(interval '1 day', h.bucket_start, {origin}) AS day
    FROM route_rollups AS h
    JOIN (SELECT DISTINCT * FROM unnest(p_ids, p_days)) AS a(project_id, day)
      ON h.project_id = a.project_id AND h.bucket_seconds = 3600
     AND h.bucket_start >= a.day AND h.bucket_start < a.day + interval '1 day'
), totals AS (
    SELECT project_id, day, all_routes, group_key, min(service_name) AS service_name, min(method) AS method,
           min(route) AS route, min(path) AS path, sum(count)::bigint AS n, sum(error_count)::bigint AS e,
           sum(sum_duration) AS s, min(min_duration) AS lo, max(max_duration) AS hi
    FROM hours GROUP BY project_id, day, all_routes, group_key
), buckets AS (
    SELECT project_id, day, all_routes, group_key, b, sum(c)::int AS c
    FROM (SELECT project_id, day, all_routes, group_key, unnest(hist_idx) AS b, unnest(hist_cnt) AS c FROM hours) AS u
    GROUP BY project_id, day, all_routes, group_key, b
), hists AS (
    SELECT project_id, day, all_routes, group_key, array_agg(b ORDER BY b) AS bs, array_agg(c ORDER BY b) AS cs
    FROM buckets GROUP BY project_id, day, all_routes, group_key
)
SELECT d.project_id, 86400, d.day, d.group_key, (pg_backend_pid() % 16)::smallint, d.all_routes, d.service_name,
       d.method, d.route, d.path, d.n, d.e, d.s, d.lo, d.hi, h.bs, h.cs
FROM totals AS d JOIN hists AS h USING (project_id, day, all_routes, group_key)
ORDER BY d.project_id, d.all_routes, d.day, d.group_key
{upsert}
"""

# Rebuilds the minute and hour rows of the hours in p_hours from the records, then the day rows of their days
# from the hour rows.
REBUILD_FUNCTION = """
CREATE FUNCTION pystrument_rollup_rebuild(p_ids bigint[], p_hours timestamptz[]) RETURNS void
LANGUAGE plpgsql AS $body$
DECLARE
    p_days timestamptz[];
BEGIN
    DELETE FROM route_rollups AS t
    USING (SELECT DISTINCT * FROM unnest(p_ids, p_hours)) AS a(project_id, hour)
    WHERE t.project_id = a.project_id AND t.bucket_seconds IN (60, 3600)
      AND t.bucket_start >= a.hour AND t.bucket_start < a.hour + interval '1 hour';
    {aggregate};
    p_days := ARRAY(SELECT date_bin(interval '1 day', h, {origin}) FROM unnest(p_hours) AS h);
    DELETE FROM route_rollups AS t
    USING (SELECT DISTINCT * FROM unnest(p_ids, p_days)) AS a(project_id, day)
    WHERE t.project_id = a.project_id AND t.bucket_seconds = 86400 AND t.bucket_start = a.day;
    {days};
END
$body$
"""

REBUILD_SOURCE = (
    "performance_records AS r JOIN (SELECT DISTINCT * FROM unnest(p_ids, p_hours)) AS a(project_id, hour) "
    'ON r.project_id = a.project_id AND r."timestamp" >= a.hour AND r."timestamp" < a.hour + interval \'1 hour\''
)

# Hours touched by a statement's old (and new) rows, for projects that still exist: a project's deletion
# cascades to its records and its rollups alike, with nothing to rebuild.
CHANGE_FUNCTION = """
CREATE FUNCTION pystrument_rollup_{name}() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    ids bigint[];
    hours timestamptz[];
BEGIN
    SELECT array_agg(x.project_id), array_agg(x.hour) INTO ids, hours
    FROM (SELECT DISTINCT c.project_id, date_bin(interval '1 hour', c."timestamp", {origin}) AS hour
          FROM ({changed}) AS c
          WHERE EXISTS (SELECT 1 FROM projects p WHERE p.id = c.project_id)) AS x;
    IF ids IS NOT NULL THEN
        PERFORM pystrument_rollup_rebuild(ids, hours);
    END IF;
    RETURN NULL;
END
$body$
"""

TRUNCATE_FUNCTION = """
CREATE FUNCTION pystrument_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    DELETE FROM route_rollups;
    RETURN NULL;
END
$body$
"""

TRIGGERS = (
    "CREATE TRIGGER records_rollup_insert AFTER INSERT ON performance_records "
    "REFERENCING NEW TABLE AS new_records FOR EACH STATEMENT EXECUTE FUNCTION pystrument_rollup_insert()",
    "CREATE TRIGGER records_rollup_delete AFTER DELETE ON performance_records "
    "REFERENCING OLD TABLE AS old_records FOR EACH STATEMENT EXECUTE FUNCTION pystrument_rollup_delete()",
    "CREATE TRIGGER records_rollup_update AFTER UPDATE ON performance_records "
    "REFERENCING OLD TABLE AS old_records NEW TABLE AS new_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION pystrument_rollup_update()",
    "CREATE TRIGGER records_rollup_truncate AFTER TRUNCATE ON performance_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION pystrument_rollup_truncate()",
)


def _aggregate(source: str, grains: str = "(60), (3600), (86400)") -> str:
    upsert = UPSERT.strip()
    return AGGREGATE.format(source=source, origin=ORIGIN, project_group=PROJECT_GROUP, grains=grains, upsert=upsert)


def _days_from_hours() -> str:
    return DAYS_FROM_HOURS.format(origin=ORIGIN, upsert=UPSERT.strip()).strip()


def upgrade() -> None:
    op.execute(TABLE)
    op.execute(BUCKET_FUNCTION)
    op.execute(INSERT_FUNCTION.format(aggregate=_aggregate("new_records AS r")))
    op.execute(
        REBUILD_FUNCTION.format(
            aggregate=_aggregate(REBUILD_SOURCE, "(60), (3600)").strip(), days=_days_from_hours(), origin=ORIGIN
        )
    )
    op.execute(CHANGE_FUNCTION.format(name="delete", origin=ORIGIN, changed="SELECT * FROM old_records"))
    both = 'SELECT project_id, "timestamp" FROM old_records UNION ALL SELECT project_id, "timestamp" FROM new_records'
    op.execute(CHANGE_FUNCTION.format(name="update", origin=ORIGIN, changed=both))
    op.execute(TRUNCATE_FUNCTION)
    op.execute(_aggregate("performance_records AS r"))  # the records stored so far
    for trigger in TRIGGERS:
        op.execute(trigger)
    op.execute("CREATE INDEX ix_records_project_duration ON performance_records (project_id, duration)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_records_project_duration")
    for name in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER records_rollup_{name} ON performance_records")
        op.execute(f"DROP FUNCTION pystrument_rollup_{name}()")
    op.execute("DROP FUNCTION pystrument_rollup_rebuild(bigint[], timestamptz[])")
    op.execute("DROP FUNCTION pystrument_duration_bucket(double precision)")
    op.execute("DROP TABLE route_rollups")
