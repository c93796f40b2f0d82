-- Every retention policy. Durations as seconds (numeric): an interval stored by hand may
-- be larger than a Python timedelta can hold, and must still be read (then refused).
SELECT relation, extract(epoch FROM hot), extract(epoch FROM cold), updated_at, updated_by
FROM retention_policies
ORDER BY relation;
