-- Top ads of a long unfiltered window: the whole hours from clicks_1h, the minutes
-- before the first and after the last whole hour from clicks_1m. Equal counts rank by ad
-- id ("C" collation: byte order, the order the API's in-memory ranking uses too).
SELECT ad_id, sum(clicks)::bigint AS clicks
FROM (
    SELECT ad_id, clicks FROM clicks_1m
    WHERE minute >= %(start)s AND minute < %(hours_start)s
    UNION ALL
    SELECT ad_id, clicks FROM clicks_1h
    WHERE hour >= %(hours_start)s AND hour < %(hours_end)s
    UNION ALL
    SELECT ad_id, clicks FROM clicks_1m
    WHERE minute >= %(hours_end)s AND minute < %(end)s
) AS window_clicks
GROUP BY ad_id
ORDER BY clicks DESC, ad_id
LIMIT %(limit)s;
