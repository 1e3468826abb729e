"""The rollups' ground truth, shared by the API's and the receiver's rollup tests."""

ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

# Rollups recomputed from the records, per grain and level (route or whole project), against the stored ones
# summed over shards: the number of rows that differ (0 = equal).
MISMATCHES = f"""
WITH x AS (
    SELECT project_id, g AS bucket_seconds, date_bin(make_interval(secs => g), "timestamp", {ORIGIN}) AS bucket_start,
           service_name, method, route, CASE WHEN route = '' THEN path ELSE '' END AS path, duration, is_error
    FROM performance_records, (VALUES (60), (900), (3600), (86400)) AS grains(g)
), truth AS (
    SELECT project_id, bucket_seconds, bucket_start, GROUPING(service_name, method, route, path) <> 0 AS all_routes,
           coalesce(service_name, '') AS service_name, coalesce(method, '') AS method, coalesce(route, '') AS route,
           coalesce(path, '') AS path, count(*) AS n, count(*) FILTER (WHERE is_error) AS e,
           round(sum(duration)::numeric, 6) AS s, min(duration) AS lo, max(duration) AS hi,
           (SELECT array_agg(v ORDER BY v) FROM unnest(array_agg(pystrument_duration_bucket(duration))) AS v) AS b
    FROM x
    GROUP BY GROUPING SETS ((project_id, bucket_seconds, bucket_start, service_name, method, route, path),
                            (project_id, bucket_seconds, bucket_start))
), stored AS (
    SELECT project_id, bucket_seconds, bucket_start, all_routes, service_name, method, route, path,
           sum(count) AS n, sum(error_count) AS e, round(sum(sum_duration)::numeric, 6) AS s,
           min(min_duration) AS lo, max(max_duration) AS hi,
           (SELECT array_agg(v ORDER BY v) FROM (
                SELECT b FROM route_rollups r2, unnest(r2.hist_idx, r2.hist_cnt) AS h(b, c), generate_series(1, c)
                WHERE r2.project_id = r.project_id AND r2.bucket_seconds = r.bucket_seconds
                  AND r2.bucket_start = r.bucket_start AND r2.group_key = r.group_key
           ) AS y(v)) AS b
    FROM route_rollups AS r
    GROUP BY project_id, bucket_seconds, bucket_start, group_key, all_routes, service_name, method, route, path
)
SELECT count(*) FROM ((TABLE truth EXCEPT TABLE stored) UNION ALL (TABLE stored EXCEPT TABLE truth)) AS diff
"""
