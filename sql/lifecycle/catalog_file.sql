-- Record a verified cold file (before its chunk is dropped).
INSERT INTO cold_files (relation, range_start, range_end, url, rows, checksum, bytes, hot_bytes)
VALUES (%(relation)s, %(range_start)s, %(range_end)s, %(url)s, %(rows)s, %(checksum)s,
        %(bytes)s, %(hot_bytes)s)
ON CONFLICT (relation, range_start) DO UPDATE
SET range_end = excluded.range_end, url = excluded.url, rows = excluded.rows,
    checksum = excluded.checksum, bytes = excluded.bytes, hot_bytes = excluded.hot_bytes,
    exported_at = now();
