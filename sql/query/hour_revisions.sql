-- The revision of every hour in a range: the sum of its minutes' revisions. clicks_1h
-- changes only in the transactions that change its minutes, which raise their
-- revisions, so an hour whose sum has not moved has not changed.
SELECT (extract(epoch FROM time_bucket('1 hour', minute)) * 1000)::bigint AS hour_ms,
       sum(revision)::bigint
FROM rollup_changes
WHERE minute >= %(start)s AND minute < %(end)s
GROUP BY 1;
