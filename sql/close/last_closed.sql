-- The newest minute end the closer has closed (for any window and filter), a minute whose
-- lists it recorded as skipped included: the next minute to close is the one after it.
SELECT (extract(epoch FROM greatest(
    (SELECT max(window_end) FROM top_ad_lists),
    (SELECT max(window_end) FROM skipped_top_lists)
)) * 1000)::bigint;
