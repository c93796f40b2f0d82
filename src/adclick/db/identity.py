"""Which database a URL reaches, as the server says it, and the checks built on that.

Two URLs can spell one database in many ways (``localhost`` and ``127.0.0.1``, a host
in the authority or in ``?host=``, a Unix socket or TCP), and two URLs spelled alike
can reach different databases (two socket directories). Text cannot decide it, so every
process that uses shards or a read replica asks each server at its start: the cluster's
system identifier and the database's oid name a database (a streaming standby answers
its primary's). Two shards that are one database would have every reader count that
database twice while ingest writes each partition once; a read URL that is not a
standby of its own database would answer with another database's counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from adclick.db.connect import Connection, connect
from adclick.errors import ConfigurationError, DependencyUnavailableError
from adclick.redact import mask_secrets
from adclick.resources import load_sql
from adclick.settings import Settings

# A process checks at its start; an unreachable database is reported by the caller's
# own connection (or /readyz) rather than waited for here.
IDENTITY_TIMEOUT_S = 5


@dataclass(frozen=True)
class DatabaseIdentity:
    """A database as its server names it."""

    system_identifier: str
    database_oid: int
    database: str
    standby: bool

    @property
    def key(self) -> tuple[str, int]:
        """Equal for two connections exactly when they reach one database (or a
        streaming standby of it)."""
        return self.system_identifier, self.database_oid

    @property
    def directory_name(self) -> str:
        """A name for this database that no other database has and no configuration
        change alters (a shard's cold files go under it)."""
        return f"db-{self.system_identifier}-{self.database_oid}"

    def describe(self) -> str:
        role = "a standby" if self.standby else "a primary"
        return (
            f"database {self.database!r} (oid {self.database_oid}) of cluster "
            f"{self.system_identifier}, {role}"
        )


def database_identity(conn: Connection) -> DatabaseIdentity:
    """The identity of the database ``conn`` is connected to."""
    row = conn.execute(load_sql("query/database_identity")).fetchone()
    assert row is not None  # current_database() is always in pg_database
    return DatabaseIdentity(str(row[0]), int(row[1]), str(row[2]), bool(row[3]))


def identify(settings: Settings) -> DatabaseIdentity:
    """The identity of the database ``settings.database_url`` reaches."""
    with connect(settings, autocommit=True, timeout_s=IDENTITY_TIMEOUT_S) as conn:
        return database_identity(conn)


@dataclass(frozen=True)
class _Named:
    """A configured database: what the operator calls it, its URL, and where it is."""

    label: str
    url: str
    settings: Settings


def _configured(
    settings: Settings, *, home: bool, reads: bool
) -> list[tuple[_Named, _Named | None]]:
    """Each database to write (a shard, or the one database) with its read source (when
    ``reads``)."""
    if not settings.shards:
        reads_at = settings.for_reads() if settings.database_read_url is not None else None
        if not reads:
            reads_at = None
        read = None if reads_at is None else _Named("ADCLICK_DATABASE_READ_URL", "", reads_at)
        return [(_Named("ADCLICK_DATABASE_URL", settings.database_url, settings), read)]
    pairs: list[tuple[_Named, _Named | None]] = []
    for index, (shard, at_shard) in enumerate(
        zip(settings.shards, settings.shard_settings(), strict=True)
    ):
        read = (
            None
            if shard.read_url is None or not reads
            else _Named(f"shard {index}'s read_url", shard.read_url, at_shard.for_reads())
        )
        pairs.append((_Named(f"shard {index}", shard.url, at_shard), read))
    if home and len(settings.every_database()) > len(settings.shards):
        pairs.append((_Named("ADCLICK_DATABASE_URL", settings.database_url, settings), None))
    return pairs


def identity_problems(
    settings: Settings,
    *,
    home: bool = True,
    reads: bool = True,
    unreachable: Callable[[str, DependencyUnavailableError], str | None] | None = None,
) -> list[str]:
    """Why the configured databases are not what they claim (empty: they are).

    Two shards (or a shard and ADCLICK_DATABASE_URL, with ``home``) must be distinct
    databases; a read URL must be a streaming standby of its own database. A database
    that cannot be reached is passed to ``unreachable`` (its answer, if any, is a
    problem) or, without it, raises DependencyUnavailableError.
    """
    problems: list[str] = []
    seen: list[tuple[_Named, DatabaseIdentity]] = []

    def ident(named: _Named) -> DatabaseIdentity | None:
        try:
            return identify(named.settings)
        except DependencyUnavailableError as exc:
            if unreachable is None:
                raise
            said = unreachable(named.label, exc)
            if said is not None:
                problems.append(said)
            return None

    for written, read in _configured(settings, home=home, reads=reads):
        primary = ident(written)
        if primary is not None:
            seen.append((written, primary))
        if read is not None:
            replica = ident(read)
            if primary is not None and replica is not None:
                problem = _read_source_problem(written, primary, read, replica)
                if problem is not None:
                    problems.append(problem)
    for (first, one), (second, other) in itertools.combinations(seen, 2):
        if one.key == other.key:
            problems.append(_same_database(first, second, one))
    return problems


def check_databases(
    settings: Settings, *, home: bool = True, reads: bool = True, reachable_only: bool = False
) -> None:
    """Refuse (ConfigurationError) databases that are not what they claim; see
    ``identity_problems``. Called at the start of every process that uses shards or
    a read replica; without either it costs nothing. With ``reachable_only`` a database
    that cannot be reached is left out (the API starts without it and is not ready)."""
    if not settings.shards and (settings.database_read_url is None or not reads):
        return
    unreachable = (lambda _label, _exc: None) if reachable_only else None
    problems = identity_problems(settings, home=home, reads=reads, unreachable=unreachable)
    if problems:
        raise ConfigurationError("\n".join(problems))


def _url_text(named: _Named) -> str:
    return mask_secrets(named.url or named.settings.database_url)


def _same_database(first: _Named, second: _Named, identity: DatabaseIdentity) -> str:
    return (
        f"{first.label} ({_url_text(first)}) and {second.label} ({_url_text(second)}) "
        f"are one database ({identity.describe()}): every shard must be a database of "
        "its own (ingest would write each partition once and every reader count that "
        "database twice), and ADCLICK_DATABASE_URL, when it is a shard's database, "
        "must spell that shard's url alike"
    )


def _read_source_problem(
    written: _Named, primary: DatabaseIdentity, read: _Named, replica: DatabaseIdentity
) -> str | None:
    if replica.key == primary.key:
        return None  # its standby, or (as an operator may choose) the database itself
    return (
        f"{read.label} ({_url_text(read)}) must name a streaming standby of "
        f"{written.label}'s database ({_url_text(written)}, {primary.describe()}); "
        f"it reaches {replica.describe()}, whose counts are not that database's"
    )
