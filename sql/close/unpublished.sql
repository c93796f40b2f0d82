-- Lists stored but not yet confirmed by the broker, in the order they are published.
SELECT window_minutes, filter_key, (extract(epoch FROM window_end) * 1000)::bigint,
       revision, input_revision
FROM top_ad_lists
WHERE published_offset IS NULL
ORDER BY window_end, revision, window_minutes, filter_key;
