-- The first minute at or after a time that has rollups (a first start closes from there).
SELECT (extract(epoch FROM min(minute)) * 1000)::bigint FROM rollup_changes
WHERE minute >= %(since)s;
