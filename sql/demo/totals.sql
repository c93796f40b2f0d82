-- Everything counted so far, and over how many ads (the demo's headline).
SELECT coalesce(sum(clicks), 0)::bigint, count(DISTINCT ad_id) FROM clicks_1h;
