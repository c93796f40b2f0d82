-- Clicks of given ads per hour over a window: its whole hours from clicks_1h (keyed hour
-- first: one index probe per hour and ad, in one or two chunks), the minutes before the
-- first and after the last whole hour from clicks_1m. Over a day that reads 24 rows per
-- ad instead of 1,440 minute rows spread over 24 hour chunks.
SELECT ad_id, (extract(epoch FROM hour) * 1000)::bigint, clicks::bigint
FROM clicks_1h
WHERE hour = ANY(%(hours)s) AND ad_id = ANY(%(ads)s)
    AND hour >= %(hours_start)s AND hour < %(hours_end)s
UNION ALL
SELECT ad_id, (extract(epoch FROM time_bucket('1 hour', minute)) * 1000)::bigint,
    sum(clicks)::bigint
FROM clicks_1m
WHERE ad_id = ANY(%(ads)s) AND minute >= %(start)s AND minute < %(hours_start)s
GROUP BY 1, 2
UNION ALL
SELECT ad_id, (extract(epoch FROM time_bucket('1 hour', minute)) * 1000)::bigint,
    sum(clicks)::bigint
FROM clicks_1m
WHERE ad_id = ANY(%(ads)s) AND minute >= %(hours_end)s AND minute < %(end)s
GROUP BY 1, 2;
