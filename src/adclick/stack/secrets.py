"""The local stack's database passwords: one generated secret per role.

They live in ``<state>/secrets/pgpass`` (directory 0700, file 0600), a libpq password
file, so adclick (``ADCLICK_DATABASE_PASSFILE`` defaults to it), psql (``PGPASSFILE``,
which ``adclick env`` prints) and any libpq client find them, and no URL holds one.
Removing a line makes ``adclick up`` generate a new password for that role.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from adclick.db.passfile import pgpass_line, read_passfile

# The stack listens on the loopback only (adclick.stack.lifecycle.local_targets).
_HOSTS = ("127.0.0.1", "localhost")


def passfile_path(state_dir: Path) -> Path:
    """Where the stack's password file is."""
    return state_dir.resolve() / "secrets" / "pgpass"


def ensure_passwords(state_dir: Path, roles: Iterable[str]) -> dict[str, str]:
    """The password of each role, generated (and stored) for those that have none yet."""
    path = passfile_path(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    passwords = read_passfile(path) if path.exists() else {}
    missing = [role for role in roles if role not in passwords]
    if missing or not path.exists():
        passwords |= {role: secrets.token_urlsafe(32) for role in missing}
        temporary = path.with_name(path.name + ".new")
        # Created 0600: the passwords are never readable by others, not even briefly.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write("# adclick local stack: one password per database role (adclick up)\n")
            for role, password in passwords.items():
                for host in _HOSTS:
                    out.write(pgpass_line(host, role, password))
        os.replace(temporary, path)
    path.chmod(0o600)  # libpq ignores a password file others can read
    return passwords
