-- Clicks of some ads over a range of minutes: one primary-key range scan per ad. Used for
-- the candidates of a long window whose edge hours are only partly inside it.
SELECT ad_id, sum(clicks)::bigint
FROM clicks_1m
WHERE ad_id = ANY(%(ads)s) AND minute >= %(start)s AND minute < %(end)s
GROUP BY ad_id;
