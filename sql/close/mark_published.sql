-- Record where the broker put a list's message.
UPDATE top_ad_lists SET published_offset = %(offset)s
WHERE window_minutes = %(window_minutes)s AND filter_key = %(filter_key)s
  AND window_end = %(window_end)s AND revision = %(revision)s;
