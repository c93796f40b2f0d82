"""Logins for the process roles (migration 0007 makes them as groups that cannot log in).

The deployment sets the passwords, never the repository: ``adclick migrate --logins
FILE`` reads them from a libpq password file (a Docker secret, say), the local stack
from its own ``<state>/secrets/pgpass``. Only the SCRAM-SHA-256 verifier of a password
reaches the server (computed by libpq), so no statement log can hold a password.
"""

from __future__ import annotations

from psycopg import sql

from adclick.db.connect import Connection
from adclick.settings import PROCESS_ROLES


def set_password(conn: Connection, role: str, password: str, *, login: bool = True) -> None:
    """Give ``role`` this password (as its SCRAM verifier) and, with ``login``, LOGIN."""
    verifier = conn.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    ).decode()
    statement = "ALTER ROLE {} WITH LOGIN PASSWORD {}" if login else "ALTER ROLE {} PASSWORD {}"
    conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Literal(verifier)))


def grant_logins(conn: Connection, passwords: dict[str, str]) -> list[str]:
    """Make the process roles named in ``passwords`` logins with those passwords.

    Other names are ignored: a password file may hold the owner's or anyone's line too.
    Returns the roles made logins.
    """
    granted = []
    for role in sorted(PROCESS_ROLES.values()):
        if role in passwords:
            set_password(conn, role, passwords[role])
            granted.append(role)
    conn.commit()
    return granted
