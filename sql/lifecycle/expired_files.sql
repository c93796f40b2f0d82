-- Cold files whose data is older than hot + cold retention.
SELECT relation, range_start, url FROM cold_files
WHERE relation = %(relation)s AND range_end <= %(before)s
ORDER BY range_start;
