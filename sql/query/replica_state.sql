-- Is this database a standby, does it receive its primary's WAL, and how far behind its
-- replay is, in seconds. pg_stat_wal_receiver has a row while a WAL receiver runs (its
-- status column is shown only to privileged roles, the row to every role). A standby
-- whose replay has caught up with every WAL byte it received is 0 behind; otherwise the
-- lag is the age of the newest transaction it replayed (the primary committed it then).
-- On a primary: false, false, 0.
SELECT pg_is_in_recovery() AS standby,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS streaming,
       CASE
           WHEN NOT pg_is_in_recovery() THEN 0
           WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
           ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0)
       END::float8 AS lag_s;
