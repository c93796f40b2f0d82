-- One hour of a per-minute rollup for the API's hour index (adclick.query.hour_index):
-- per key (the ad, and a filtered rollup's dimension values), the clicks of each quarter
-- of the hour, in four columns (hour_index.BLOCKS). The hour's clicks are their sum. A
-- window's edge inside the hour is then known to the quarter hour, which bounds far more
-- tightly than the hour's total when every ad is about equally popular.
COPY (
    SELECT {keys},
        coalesce(sum(clicks) FILTER (
            WHERE minute < %(hour)s + INTERVAL '15 minutes'), 0),
        coalesce(sum(clicks) FILTER (
            WHERE minute >= %(hour)s + INTERVAL '15 minutes'
              AND minute < %(hour)s + INTERVAL '30 minutes'), 0),
        coalesce(sum(clicks) FILTER (
            WHERE minute >= %(hour)s + INTERVAL '30 minutes'
              AND minute < %(hour)s + INTERVAL '45 minutes'), 0),
        coalesce(sum(clicks) FILTER (
            WHERE minute >= %(hour)s + INTERVAL '45 minutes'), 0)
    FROM {table}
    WHERE minute >= %(hour)s AND minute < %(hour)s + INTERVAL '1 hour'
    GROUP BY {keys}
) TO STDOUT (FORMAT CSV)
