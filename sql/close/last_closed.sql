-- The newest minute end the closer has closed (for any window and filter).
SELECT (extract(epoch FROM max(window_end)) * 1000)::bigint FROM top_ad_lists;
