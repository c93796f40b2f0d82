-- The ranked ads of one stored list.
SELECT rank, ad_id, clicks FROM top_ads
WHERE window_minutes = %(window_minutes)s AND filter_key = %(filter_key)s
  AND window_end = %(window_end)s AND revision = %(revision)s
ORDER BY rank;
