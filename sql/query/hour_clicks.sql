-- One hour of clicks_1h, streamed into the API's hour index.
COPY (SELECT ad_id, clicks FROM clicks_1h WHERE hour = %(hour)s) TO STDOUT (FORMAT CSV)
