-- The ingest floor: clicks with an event time before `before` are dead-lettered
-- ("already_tiered"), never written. `adclick maintain` raises it to the end of every chunk
-- it is about to export or drop, before it reads the chunk, so no click can land in a
-- tiered range: it could not be deduplicated against its raw data (gone to cold storage),
-- and it would bring the chunk back to be exported again over a verified cold file.
--
-- One row, read FOR SHARE by every ingest transaction and updated by maintenance: the
-- update waits for the batches in flight, and the batches after it see the new floor.
CREATE TABLE ingest_floor (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    before timestamptz NOT NULL DEFAULT '-infinity',
    relation text,            -- the relation whose chunk raised it last
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ingest_floor DEFAULT VALUES;

-- Ingest reads the floor FOR SHARE, which PostgreSQL allows only with UPDATE on some
-- column: updated_at, which tells nothing. Maintenance raises the floor.
GRANT SELECT, UPDATE (updated_at) ON ingest_floor TO adclick_ingest;
GRANT SELECT, UPDATE ON ingest_floor TO adclick_maintain;
GRANT SELECT ON ingest_floor TO adclick_api, adclick_closer;
