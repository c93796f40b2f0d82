-- One list's header; a second closer racing on the same revision fails on the key.
INSERT INTO top_ad_lists (window_minutes, filter_key, window_end, revision, input_revision)
VALUES (%(window_minutes)s, %(filter_key)s, %(window_end)s, %(revision)s, %(input_revision)s);
