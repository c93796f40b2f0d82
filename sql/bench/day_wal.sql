-- WAL position, WAL statistics and the database's buffer hits and reads (bench day).
SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, w.wal_records, w.wal_fpi, w.wal_bytes,
       d.blks_hit, d.blks_read
FROM pg_stat_wal w, pg_stat_database d
WHERE d.datname = current_database()
