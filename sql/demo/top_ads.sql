-- The demo's live view: the 10 most-clicked ads of the last %(minutes)s minutes, with
-- their three biggest countries.
WITH recent AS (
    SELECT ad_id, sum(clicks) AS clicks
    FROM clicks_1m
    WHERE minute >= time_bucket('1 minute', now()) - make_interval(mins => %(minutes)s)
    GROUP BY ad_id
    ORDER BY clicks DESC, ad_id
    LIMIT 10
)
SELECT r.ad_id, r.clicks,
       (SELECT string_agg(country || ' ' || c, ', ' ORDER BY c DESC, country)
        FROM (SELECT country, sum(clicks) AS c
              FROM clicks_1m_by_country AS f
              WHERE f.ad_id = r.ad_id
                AND f.minute >= time_bucket('1 minute', now()) - make_interval(mins => %(minutes)s)
              GROUP BY country
              ORDER BY c DESC, country
              LIMIT 3) AS top_countries)
FROM recent AS r
ORDER BY r.clicks DESC, r.ad_id;
