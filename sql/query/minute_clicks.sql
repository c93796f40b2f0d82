-- One minute of clicks_1m (found through its BRIN index on minute).
SELECT ad_id, clicks FROM clicks_1m WHERE minute = %(minute)s;
