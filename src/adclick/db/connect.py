"""psycopg connections with clear errors when the database is unreachable.

A URL without a password takes it from the settings' password file (the local stack's
``<state>/secrets/pgpass``, or ADCLICK_DATABASE_PASSFILE, e.g. a Docker secret), read
here rather than by libpq, which ignores a file its group may read (as a mounted secret
often is). No message shows a password: the URL and the driver's error pass through
``mask_secrets``.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from adclick.db.passfile import password_from
from adclick.errors import DependencyUnavailableError
from adclick.redact import mask_secrets
from adclick.settings import Settings

Connection = psycopg.Connection[tuple[Any, ...]]


def connection_options(settings: Settings) -> dict[str, str]:
    """libpq options every adclick connection adds to the URL: a session in UTC, and the
    password from the password file when the URL has none."""
    try:
        params = conninfo_to_dict(settings.database_url)
    except psycopg.ProgrammingError:
        return {}  # connecting reports the bad URL
    options = {"options": _in_utc(str(params.get("options") or ""))}
    passfile = settings.passfile
    if passfile is None or params.get("password"):
        return options
    user = str(params.get("user") or getpass.getuser())
    password = password_from(
        passfile,
        host=str(params.get("host") or "localhost"),
        port=str(params.get("port") or "5432"),
        database=str(params.get("dbname") or user),
        user=user,
    )
    return options if password is None else options | {"password": password}


def _in_utc(options: str) -> str:
    """The URL's server options, with the session's time zone UTC.

    Names, hours and days adclick derives from timestamps are UTC (a cold file's name, an
    hour's bucket): a session in another zone made two quarter-hour chunks around a
    daylight-saving change name one file. Set here, after the URL's own options, this
    wins over the server's default and a role's setting; libpq's PGTZ would win over
    it, so adclick drops PGTZ from its environment.
    """
    os.environ.pop("PGTZ", None)
    return f"{options} -c TimeZone=UTC".strip()


def unreachable(settings: Settings, exc: Exception) -> DependencyUnavailableError:
    """The error of a failed connection, with every password masked."""
    return DependencyUnavailableError(
        mask_secrets(f"database at {settings.database_url} is not reachable: {exc}")
    )


def connect(
    settings: Settings, *, autocommit: bool = False, timeout_s: int | None = None
) -> Connection:
    """A new connection to the adclick database (giving up after ``timeout_s`` if set)."""
    options = connection_options(settings)
    if timeout_s is not None:
        options["connect_timeout"] = str(timeout_s)
    try:
        conninfo = make_conninfo(settings.database_url, **options)
        return psycopg.connect(conninfo, autocommit=autocommit, application_name="adclick")
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        # ProgrammingError: a URL libpq cannot parse, whose message may quote the URL.
        # from None: the driver's exception would print its text (and so the URL) again.
        raise unreachable(settings, exc) from None


@contextmanager
def snapshot_transaction(conn: Connection) -> Iterator[None]:
    """A REPEATABLE READ transaction: every statement in it sees one snapshot. The
    connection's isolation level is put back afterwards, as a pool's next user expects."""
    previous = conn.isolation_level
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction():
            yield
    finally:
        conn.isolation_level = previous
