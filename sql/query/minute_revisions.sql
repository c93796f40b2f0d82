-- The revision of every minute in a range: it moves whenever the minute's rollups change.
SELECT (extract(epoch FROM minute) * 1000)::bigint AS minute_ms, sum(revision)::bigint
FROM rollup_changes
WHERE minute >= %(start)s AND minute < %(end)s
GROUP BY minute;
