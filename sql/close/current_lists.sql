-- The current (newest) revision of every list whose window ends at or after a time.
SELECT DISTINCT ON (window_minutes, filter_key, window_end)
       window_minutes, filter_key, (extract(epoch FROM window_end) * 1000)::bigint,
       revision, input_revision
FROM top_ad_lists
WHERE window_end >= %(since)s
ORDER BY window_minutes, filter_key, window_end, revision DESC;
