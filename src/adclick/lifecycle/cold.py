"""Cold storage: where the Parquet files go, and DuckDB over the catalogued files.

The URL is any fsspec URL (a local directory by default, s3://..., gs://...). DuckDB
reads local files itself and other URLs through the fsspec filesystem registered with it.

:func:`query_cold` runs an operator's SQL over raw clicks that are not pseudonymised, so
its DuckDB is locked down: one SELECT statement only (no COPY, EXPORT, ATTACH, INSTALL,
LOAD, SET, PRAGMA, CREATE...), file access limited to the catalogued files
(``enable_external_access`` off, ``allowed_paths``), and the configuration locked so that
the statement cannot undo it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any

import duckdb
import fsspec

from adclick.db.connect import Connection, connect
from adclick.errors import AdclickError
from adclick.settings import Settings


class ColdQueryCode(StrEnum):
    """Why a cold query was refused or failed; docs/lifecycle.md lists them."""

    NOT_A_SELECT = "NOT_A_SELECT"  # anything but exactly one SELECT statement
    FILE_ACCESS_REFUSED = "FILE_ACCESS_REFUSED"  # a file outside the catalogued cold files
    BAD_QUERY = "BAD_QUERY"  # DuckDB's own error: syntax, unknown column, ...


class ColdQueryError(AdclickError):
    """A cold query that was refused or failed; ``code`` is stable, the message says why."""

    def __init__(self, code: ColdQueryCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def cold_storage_url(settings: Settings) -> str:
    """The configured URL, or ``<state dir>/cold``; never with a trailing slash."""
    return settings.cold_storage_base


@contextlib.contextmanager
def duckdb_connection(url: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB that can read files under ``url``."""
    duck = duckdb.connect()
    try:
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        if protocol not in ("file", "local"):
            duck.register_filesystem(fsspec.filesystem(protocol))
        yield duck
    finally:
        duck.close()


def catalogued_files(conn: Connection) -> dict[str, list[str]]:
    """URLs of the cold files per relation."""
    files: dict[str, list[str]] = {}
    for relation, url in conn.execute(
        "SELECT relation, url FROM cold_files ORDER BY relation, range_start"
    ).fetchall():
        files.setdefault(relation, []).append(url)
    conn.commit()
    return files


def query_cold(
    conn: Connection, settings: Settings, statement: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SELECT ``statement`` in DuckDB, where each relation with cold files is a view
    of them; raise :class:`ColdQueryError` for anything else (see :func:`query_files`)."""
    select = _one_select(statement)  # refused before the catalog is even read
    return query_files(cold_storage_url(settings), catalogued_files(conn), select)


def query_cold_everywhere(
    settings: Settings, statement: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``query_cold`` over the cold files of every database (each shard's, and the home
    database's): each catalogues only its own files, and with ADCLICK_SHARDS a relation's
    view is the union of them all (the shards' rows are disjoint), never one shard's."""
    select = _one_select(statement)  # refused before any catalog is read
    files: dict[str, list[str]] = {}
    for database in settings.every_database():
        with connect(database) as conn:
            for relation, urls in catalogued_files(conn).items():
                files.setdefault(relation, []).extend(urls)
    return query_files(cold_storage_url(settings), files, select)


def query_files(
    url: str, files: Mapping[str, Sequence[str]], statement: str | duckdb.Statement
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SELECT over views of ``files`` (relation -> file URLs under ``url``), in a
    DuckDB that can read those files and nothing else, and write no file."""
    select = _one_select(statement) if isinstance(statement, str) else statement
    with duckdb_connection(url) as duck:
        for relation, urls in files.items():
            # DuckDB takes no parameters in a view's definition: the URLs (from our own
            # catalog) are quoted as literals; the relation names are our table names.
            listed = ", ".join("'" + u.replace("'", "''") + "'" for u in urls)
            view = f'CREATE VIEW "{relation}" AS SELECT * FROM read_parquet([{listed}])'  # noqa: S608
            duck.execute(view)
        _lock(duck, [u for urls in files.values() for u in urls])
        try:
            result = duck.execute(select)
            columns = [d[0] for d in result.description or []]
            return columns, result.fetchall()
        except duckdb.PermissionException as exc:
            raise ColdQueryError(
                ColdQueryCode.FILE_ACCESS_REFUSED,
                f"only the catalogued cold files can be read ({_first_line(exc)})",
            ) from None
        except duckdb.Error as exc:
            raise ColdQueryError(ColdQueryCode.BAD_QUERY, _first_line(exc)) from None


def _one_select(statement: str) -> duckdb.Statement:
    """The statement parsed, if it is exactly one SELECT (DESCRIBE, SHOW, SUMMARIZE and
    VALUES are SELECTs too); what is run is this parse, so nothing else can slip through."""
    try:
        statements = duckdb.extract_statements(statement)
    except duckdb.Error as exc:
        raise ColdQueryError(ColdQueryCode.BAD_QUERY, _first_line(exc)) from None
    kinds = [s.type.name for s in statements]
    if kinds != ["SELECT"]:
        raise ColdQueryError(
            ColdQueryCode.NOT_A_SELECT,
            "cold query runs exactly one SELECT statement; got "
            + (", ".join(kinds) or "no statement"),
        )
    return statements[0]


def _lock(duck: duckdb.DuckDBPyConnection, urls: Sequence[str]) -> None:
    """Let ``duck`` read ``urls`` and no other file, for good."""
    allowed = list(urls)
    for url in urls:
        # Through an fsspec filesystem DuckDB may also name a file "proto:///path".
        protocol, sep, rest = url.partition("://")
        if sep and not rest.startswith("/"):
            allowed.append(f"{protocol}:///{rest}")
    duck.execute("SET allowed_paths = $1", [allowed])
    duck.execute("SET enable_external_access = false")
    duck.execute("SET lock_configuration = true")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
