"""libpq password files (``host:port:database:user:password`` lines): read and written.

adclick reads them itself (adclick.db.connect), for the local stack's secrets and for a
deployment's (``adclick migrate --logins``, ADCLICK_DATABASE_PASSFILE).
"""

from __future__ import annotations

import re
from pathlib import Path

from adclick.errors import ConfigurationError

# A field of a password file ends at a ':' that no backslash escapes.
_FIELD = re.compile(r"((?:[^:\\]|\\.)*)(?::|$)")


def passfile_entries(path: Path) -> list[tuple[str, str, str, str, str]]:
    """The lines of a password file as (host, port, database, user, password).

    ``\\:`` and ``\\\\`` are unescaped; blank lines and those starting with # are skipped.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the password file {path}: {exc.strerror}") from None
    entries = []
    # Lines end at \n only (not at every character str.splitlines() takes), as for libpq.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        fields = [re.sub(r"\\(.)", r"\1", f) for f in _FIELD.findall(line)[:5]]
        if len(fields) < 5 or not fields[3] or not fields[4]:
            # The line itself is not shown: it holds a password.
            raise ConfigurationError(f"{path}, line {number}: not host:port:database:user:password")
        host, port, database, user, password = fields
        entries.append((host, port, database, user, password))
    return entries


def read_passfile(path: Path) -> dict[str, str]:
    """The password of each user a password file names (its first line wins)."""
    passwords: dict[str, str] = {}
    for _host, _port, _database, user, password in passfile_entries(path):
        passwords.setdefault(user, password)
    return passwords


def password_from(path: Path, host: str, port: str, database: str, user: str) -> str | None:
    """The password libpq would take from the file for this connection: that of the first
    line whose fields each equal the connection's or are ``*``."""
    wanted = (host, port, database, user)
    for *fields, password in passfile_entries(path):
        if all(f in ("*", w) for f, w in zip(fields, wanted, strict=True)):
            return password
    return None


def pgpass_line(host: str, user: str, password: str) -> str:
    """One line of a libpq password file for ``user`` at ``host`` (any port and database)."""

    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return f"{escaped(host)}:*:*:{escaped(user)}:{escaped(password)}\n"
