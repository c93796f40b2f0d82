-- Raise the ingest floor to the end of a chunk about to be exported or dropped. Waits for
-- the ingest batches in flight (they hold the row FOR SHARE); later batches see the new
-- floor and dead-letter clicks below it.
UPDATE ingest_floor
SET before = %(before)s, relation = %(relation)s, updated_at = now()
WHERE before < %(before)s;
