-- Record a verified cold file (before its chunk is dropped). A catalogued file is never
-- replaced (tiering refuses a chunk whose range is catalogued with other rows); a second
-- maintainer cataloguing the same range at the same moment changes nothing.
INSERT INTO cold_files (relation, range_start, range_end, url, rows, checksum, bytes, hot_bytes)
VALUES (%(relation)s, %(range_start)s, %(range_end)s, %(url)s, %(rows)s, %(checksum)s,
        %(bytes)s, %(hot_bytes)s)
ON CONFLICT (relation, range_start) DO NOTHING;
