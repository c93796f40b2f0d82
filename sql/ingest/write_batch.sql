-- One batch in one statement: insert the staged clicks that are new (the unique key
-- (ts, click_id) drops duplicates, also duplicates inside the batch), then add exactly
-- the inserted rows to every rollup. RETURNING feeds the rollups, so dedup needs no
-- second pass over raw_clicks. The placeholder below the hourly rollup takes one CTE per
-- filtered rollup (sql/ingest/upsert_filtered_rollup.sql).
WITH inserted AS (
    INSERT INTO raw_clicks (
        ts, click_id, ad_id, user_id, ip, country, attributes, kafka_partition, kafka_offset
    )
    SELECT
        'epoch'::timestamptz + ts_ms * INTERVAL '1 millisecond',
        click_id, ad_id, user_id, ip::inet, country, attributes::jsonb,
        kafka_partition, kafka_offset
    FROM ingest_staging
    ON CONFLICT DO NOTHING
    RETURNING ts, ad_id, country, attributes
),
per_minute AS (
    INSERT INTO clicks_1m AS r (minute, ad_id, clicks)
    SELECT time_bucket('1 minute', ts), ad_id, count(*)
    FROM inserted
    GROUP BY 1, 2
    ON CONFLICT (ad_id, minute) DO UPDATE SET clicks = r.clicks + excluded.clicks
),
per_hour AS (
    INSERT INTO clicks_1h AS r (hour, ad_id, clicks)
    SELECT time_bucket('1 hour', ts), ad_id, count(*)
    FROM inserted
    GROUP BY 1, 2
    ON CONFLICT (ad_id, hour) DO UPDATE SET clicks = r.clicks + excluded.clicks
)
{filtered_rollups}
SELECT count(*) FROM inserted;
