-- The demo's live view: the 10 most-clicked ads of the last %(minutes)s minutes, with
-- their three biggest countries. The country rollup is keyed minute first, so the ten
-- ads' countries come from one pass over those minutes, not one scan per ad.
WITH recent AS (
    SELECT ad_id, sum(clicks) AS clicks
    FROM clicks_1m
    WHERE minute >= time_bucket('1 minute', now()) - make_interval(mins => %(minutes)s)
    GROUP BY ad_id
    ORDER BY clicks DESC, ad_id
    LIMIT 10
),

countries AS (
    SELECT f.ad_id, f.country, sum(f.clicks) AS clicks,
           row_number() OVER (PARTITION BY f.ad_id ORDER BY sum(f.clicks) DESC, f.country) AS n
    FROM clicks_1m_by_country AS f
    JOIN recent USING (ad_id)
    WHERE f.minute >= time_bucket('1 minute', now()) - make_interval(mins => %(minutes)s)
    GROUP BY f.ad_id, f.country
)

SELECT r.ad_id, r.clicks,
       (SELECT string_agg(k.country || ' ' || k.clicks, ', ' ORDER BY k.n)
        FROM countries AS k
        WHERE k.ad_id = r.ad_id AND k.n <= 3)
FROM recent AS r
ORDER BY r.clicks DESC, r.ad_id;
