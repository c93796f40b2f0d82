-- One filtered rollup's two CTEs in sql/ingest/upsert_rollups.sql, which explains them.
{name_new} AS (
    INSERT INTO {table} (minute, ad_id, {dimensions}, clicks)
    SELECT minute, ad_id, {dimensions}, sum(clicks)::bigint
    FROM deltas
    WHERE new
    GROUP BY ad_id, {dimensions}, minute
    ORDER BY ad_id, {dimensions}, minute
),

{name} AS (
    INSERT INTO {table} AS r (minute, ad_id, {dimensions}, clicks)
    SELECT minute, ad_id, {dimensions}, sum(clicks)::bigint
    FROM deltas
    WHERE NOT new
    GROUP BY ad_id, {dimensions}, minute
    ORDER BY ad_id, {dimensions}, minute
    ON CONFLICT (ad_id, {dimensions}, minute) DO UPDATE SET clicks = r.clicks + excluded.clicks
)
