, {cte} AS (
    INSERT INTO {table} AS r (minute, ad_id, {dimensions}, clicks)
    SELECT time_bucket('1 minute', ts), ad_id, {dimension_values}, count(*)
    FROM inserted
    GROUP BY {group_by}
    ON CONFLICT (ad_id, {dimensions}, minute) DO UPDATE SET clicks = r.clicks + excluded.clicks
)
