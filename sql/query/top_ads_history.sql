-- Stored top lists of one window length and filter whose window ends in [start, end):
-- the current revision of each, or every revision. An empty list has one row of NULLs.
SELECT (extract(epoch FROM l.window_end) * 1000)::bigint AS window_end_ms,
       l.revision, a.rank, a.ad_id, a.clicks
FROM top_ad_lists AS l
LEFT JOIN top_ads AS a
       ON a.window_minutes = l.window_minutes AND a.filter_key = l.filter_key
      AND a.window_end = l.window_end AND a.revision = l.revision
      AND a.rank <= %(limit)s
WHERE l.window_minutes = %(minutes)s AND l.filter_key = %(filter_key)s
  AND l.window_end >= %(start)s AND l.window_end < %(end)s
  AND (%(all_revisions)s OR l.revision = (
      SELECT max(n.revision) FROM top_ad_lists AS n
      WHERE n.window_minutes = l.window_minutes AND n.filter_key = l.filter_key
        AND n.window_end = l.window_end))
ORDER BY l.window_end, l.revision, a.rank;
