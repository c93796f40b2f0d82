-- A list re-ranked after its minutes changed came out the same: remember what it saw.
UPDATE top_ad_lists SET input_revision = %(input_revision)s
WHERE window_minutes = %(window_minutes)s AND filter_key = %(filter_key)s
  AND window_end = %(window_end)s AND revision = %(revision)s;
