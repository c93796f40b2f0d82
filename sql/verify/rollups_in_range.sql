-- Every rollup row in a range of minutes, in one shape:
-- (rollup, ad_id, bucket start in epoch seconds, country or '', clicks).
SELECT 'clicks_1m', ad_id, extract(epoch FROM minute)::bigint, '', clicks
FROM clicks_1m
WHERE minute BETWEEN %(first)s AND %(last)s
UNION ALL
SELECT 'clicks_1m_by_country', ad_id, extract(epoch FROM minute)::bigint, country, clicks
FROM clicks_1m_by_country
WHERE minute BETWEEN %(first)s AND %(last)s
UNION ALL
SELECT 'clicks_1h', ad_id, extract(epoch FROM hour)::bigint, '', clicks
FROM clicks_1h
WHERE hour BETWEEN time_bucket('1 hour', %(first)s::timestamptz) AND %(last)s;
