-- The careful path: insert the staged clicks that are new. The unique key (ts, click_id)
-- drops those already stored; RETURNING tells the worker which rows were new, and only
-- those are added to the rollups.
INSERT INTO raw_clicks (
    ts, click_id, ad_id, user_id, ip, country, attributes, kafka_partition, kafka_offset
)
SELECT ts, click_id, ad_id, user_id, ip, country, attributes, kafka_partition, kafka_offset
FROM ingest_staging
ON CONFLICT DO NOTHING
RETURNING kafka_partition, kafka_offset;
