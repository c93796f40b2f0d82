#!/usr/bin/env bash
# The timescale/timescaledb image runs this once, on an empty data volume, as the cluster
# superuser (docker/compose.yaml). It makes the schema's owner: role adclick, a login with
# CREATEROLE (migration 0007 creates the process roles) but no superuser, owning the
# database adclick. Its password is the one in its Docker secret, a libpq password line
# (host:port:database:user:password, hex password) written by docker/make-secrets; the
# server stores only its SCRAM-SHA-256 verifier (password_encryption's default).
set -euo pipefail
line=$(grep -v '^#' /run/secrets/adclick_owner | head -n 1)
password=${line##*:}
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_password="$password" <<'SQL'
CREATE ROLE adclick LOGIN CREATEROLE PASSWORD :'owner_password';
ALTER DATABASE adclick OWNER TO adclick;
ALTER SCHEMA public OWNER TO adclick;
SQL
