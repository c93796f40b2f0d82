-- A list the closer could not make, and why; recorded once.
INSERT INTO skipped_top_lists (window_minutes, filter_key, window_end, reason)
VALUES (%(window_minutes)s, %(filter_key)s, %(window_end)s, %(reason)s)
ON CONFLICT DO NOTHING;
