-- Is this database a standby, does it receive its primary's WAL, and how far its replay
-- is behind the primary, in seconds. %(primary_lsn)s is the primary's
-- pg_current_wal_lsn(), read just before: a standby that has replayed up to it was
-- current then (0 behind); otherwise it is behind by at least the age of the newest
-- transaction it replayed (the primary committed it then, and more since), unknown
-- (infinite) when it replayed none since it started. What the standby has received
-- cannot tell: a sender that stalls sends nothing, and a standby that replayed all it
-- got would look current however far the primary has gone on.
-- On a primary: false, false, 0.
SELECT pg_is_in_recovery() AS standby,
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS streaming,
       CASE
           WHEN NOT pg_is_in_recovery() THEN 0
           WHEN pg_last_wal_replay_lsn() >= %(primary_lsn)s::pg_lsn THEN 0
           ELSE coalesce(extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()),
                         'Infinity')
       END::float8 AS lag_s;
