-- Which database this connection reached, as the server says it (not as the URL spells
-- it): the cluster's system identifier (made at initdb, kept by every streaming standby
-- of it) and the database's oid (the same on a standby, which replays the catalogue).
-- Two URLs whose answers are equal reach one database.
SELECT (SELECT system_identifier FROM pg_control_system())::text AS system_identifier,
       d.oid::bigint AS database_oid,
       d.datname AS database,
       pg_is_in_recovery() AS standby
FROM pg_database AS d
WHERE d.datname = current_database();
