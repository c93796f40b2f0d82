-- Add a batch's per-hour deltas (aggregated by the worker) to clicks_1h.
INSERT INTO clicks_1h AS r (hour, ad_id, clicks)
SELECT 'epoch'::timestamptz + h * INTERVAL '1 millisecond', a, c
FROM unnest(%(minutes)s::bigint[], %(ads)s::text[], %(clicks)s::bigint[]) AS t (h, a, c)
ON CONFLICT (ad_id, hour) DO UPDATE SET clicks = r.clicks + excluded.clicks;
