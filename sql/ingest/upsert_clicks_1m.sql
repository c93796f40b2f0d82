-- Add a batch's per-minute deltas (aggregated by the worker) to clicks_1m.
INSERT INTO clicks_1m AS r (minute, ad_id, clicks)
SELECT 'epoch'::timestamptz + m * INTERVAL '1 millisecond', a, c
FROM unnest(%(minutes)s::bigint[], %(ads)s::text[], %(clicks)s::bigint[]) AS t (m, a, c)
ON CONFLICT (ad_id, minute) DO UPDATE SET clicks = r.clicks + excluded.clicks;
