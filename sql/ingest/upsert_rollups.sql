-- Add a batch's deltas to every rollup in one statement. The worker sends its clicks per
-- (minute, ad, dimension values), the finest grain of all rollups, once; the server sums
-- them per rollup. adclick.ingest.writer fills in the placeholders in braces: the
-- dimensions of all filtered rollups (one text[] parameter each), and two CTEs per
-- filtered rollup (sql/ingest/upsert_filtered_rollup.sql).
--
-- new marks the deltas whose (minute, ad) the worker knows is in no per-minute rollup
-- yet (adclick.ingest.new_keys): their rows are plainly inserted, without the index
-- lookup and speculative insertion of ON CONFLICT. If the claim is wrong the unique key
-- refuses the statement and the worker repeats it with no delta marked new.
--
-- Every INSERT takes its rows in key order: two writers that ever overlap (during a
-- rebalance) lock rows in the same order, so cannot deadlock, and neighbouring index pages
-- are touched together. COLLATE "C" is the rollups' key collation.
WITH deltas AS MATERIALIZED (
    SELECT
        'epoch'::timestamptz + t.m * INTERVAL '1 millisecond' AS minute,
        t.a COLLATE "C" AS ad_id{dimension_columns},
        t.c AS clicks,
        t.n AS new
    FROM unnest(
        %(minutes)s::bigint[], %(ads)s::text[]{dimension_arrays}, %(clicks)s::bigint[],
        %(new)s::boolean[]
    ) AS t (m, a{dimension_aliases}, c, n)
),

per_hour AS (
    -- time_bucket: whole UTC hours, whatever the session's time zone. By position, as a
    -- dimension may share the output's name.
    INSERT INTO clicks_1h AS r (hour, ad_id, clicks)
    SELECT time_bucket('1 hour', minute), ad_id, sum(clicks)::bigint
    FROM deltas
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (hour, ad_id) DO UPDATE SET clicks = r.clicks + excluded.clicks
),

per_minute_new AS (
    INSERT INTO clicks_1m (minute, ad_id, clicks)
    SELECT minute, ad_id, sum(clicks)::bigint
    FROM deltas
    WHERE new
    GROUP BY ad_id, minute
    ORDER BY ad_id, minute
){filtered_upserts}

INSERT INTO clicks_1m AS r (minute, ad_id, clicks)
SELECT minute, ad_id, sum(clicks)::bigint
FROM deltas
WHERE NOT new
GROUP BY ad_id, minute
ORDER BY ad_id, minute
ON CONFLICT (ad_id, minute) DO UPDATE SET clicks = r.clicks + excluded.clicks;
