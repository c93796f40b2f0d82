-- One list's ranked ads.
INSERT INTO top_ads (window_minutes, filter_key, window_end, revision, rank, ad_id, clicks)
SELECT %(window_minutes)s, %(filter_key)s, %(window_end)s, %(revision)s, r, a, c
FROM unnest(%(ranks)s::integer[], %(ads)s::text[], %(clicks)s::bigint[]) AS t (r, a, c);
