-- One filtered rollup's two CTEs in sql/ingest/upsert_rollups.sql, which explains them.
{name_new} AS (
    INSERT INTO {table} (minute, ad_id, {dimensions}, clicks)
    SELECT minute, ad_id, {dimensions}, sum(clicks)::bigint
    FROM deltas
    WHERE new
    GROUP BY minute, ad_id, {dimensions}
    ORDER BY minute, ad_id, {dimensions}
),

{name} AS (
    INSERT INTO {table} AS r (minute, ad_id, {dimensions}, clicks)
    SELECT minute, ad_id, {dimensions}, sum(clicks)::bigint
    FROM deltas
    WHERE NOT new
    GROUP BY minute, ad_id, {dimensions}
    ORDER BY minute, ad_id, {dimensions}
    ON CONFLICT (minute, ad_id, {dimensions}) DO UPDATE SET clicks = r.clicks + excluded.clicks
)
