-- The role adclick_analyst stays: roles are cluster-wide and other databases of the
-- cluster may use it. Once no database refers to it, a superuser may DROP ROLE it.
DROP TRIGGER IF EXISTS analyst_views ON filtered_rollups;
-- The views, their grants and the schema's default privileges.
DROP SCHEMA IF EXISTS analyst CASCADE;
-- The pseudonym key (a later upgrade makes a new one: every pseudonym changes), and
-- pgcrypto when it was installed here.
DROP SCHEMA IF EXISTS private CASCADE;
