-- Add a batch's deltas to one filtered rollup. The placeholders are filled per rollup
-- by adclick.ingest.writer: {dimension_arrays} is one text[] parameter per dimension.
INSERT INTO {table} AS r (minute, ad_id, {dimensions}, clicks)
SELECT 'epoch'::timestamptz + t.m * INTERVAL '1 millisecond', t.a, {dimension_values}, t.c
FROM unnest(%(minutes)s::bigint[], %(ads)s::text[], {dimension_arrays}, %(clicks)s::bigint[])
    AS t (m, a, {dimension_aliases}, c)
ON CONFLICT (ad_id, {dimensions}, minute) DO UPDATE SET clicks = r.clicks + excluded.clicks;
