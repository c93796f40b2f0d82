-- One filtered rollup's CTE in sql/ingest/upsert_rollups.sql, which explains the order.
{name} AS (
    INSERT INTO {table} AS r (minute, ad_id, {dimensions}, clicks)
    SELECT minute, ad_id, {dimensions}, sum(clicks)::bigint
    FROM deltas
    GROUP BY ad_id, {dimensions}, minute
    ORDER BY ad_id, {dimensions}, minute
    ON CONFLICT (ad_id, {dimensions}, minute) DO UPDATE SET clicks = r.clicks + excluded.clicks
)
