"""Filtered per-minute rollups, one table per configured dimension set.

The dimension sets are configuration (``ADCLICK_DIMENSION_SETS``), so their tables are
created from it, idempotently, by ``adclick migrate`` / ``adclick up`` and at the start of
every ingest worker, and recorded in the ``filtered_rollups`` catalog. A set added later
counts from then on; ``adclick recalculate`` (see the lifecycle docs) fills its past.

Only the schema's owner may create them (and grant the process roles their rights on
them): a worker running as ``adclick_ingest`` finds them made by ``adclick migrate``, or
stops with a message saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from adclick.db.connect import Connection
from adclick.errors import ConfigurationError
from adclick.resources import load_sql
from adclick.settings import ROLLUP_BRIN_SUFFIX, Settings, rollup_table_name

# "country" is a column of every event; every other dimension is a further attribute.
COLUMN_DIMENSIONS = frozenset({"country"})


@dataclass(frozen=True)
class FilteredRollup:
    """The per-minute rollup of clicks by ad and the given dimensions."""

    dimensions: tuple[str, ...]

    @property
    def table(self) -> str:
        """Table name, e.g. ``clicks_1m_by_country``."""
        return rollup_table_name(self.dimensions)


def raw_dimension(dimension: str) -> sql.Composable:
    """SQL for a dimension's value in a row of raw_clicks ('' when absent, as in ingest)."""
    if dimension in COLUMN_DIMENSIONS:
        return sql.Identifier(dimension)
    return sql.SQL("coalesce(attributes ->> {}, '')").format(sql.Literal(dimension))


def filtered_rollups(settings: Settings) -> list[FilteredRollup]:
    """The filtered rollups the settings declare."""
    return [FilteredRollup(tuple(dims)) for dims in settings.dimension_sets]


def ensure_filtered_rollups(conn: Connection, settings: Settings) -> None:
    """Create the tables of the configured filtered rollups when missing, and catalog them.

    Raises ConfigurationError when one is missing and the connection's role may not
    create it (a process role: the owner's ``adclick migrate`` creates them).
    """
    template = load_sql("schema/filtered_rollup")
    for rollup in filtered_rollups(settings):
        _check_columns(conn, rollup)
        if _catalogued(conn, rollup):
            continue
        columns = sql.SQL(", ").join(
            sql.SQL('{} text COLLATE "C" NOT NULL').format(sql.Identifier(d))
            for d in rollup.dimensions
        )
        key = sql.SQL(", ").join(sql.Identifier(d) for d in rollup.dimensions)
        statement = sql.SQL(template).format(
            table=sql.Identifier(rollup.table),
            table_name=sql.Literal(rollup.table),
            brin_index=sql.Identifier(f"{rollup.table}{ROLLUP_BRIN_SUFFIX}"),
            dimension_columns=columns,
            dimension_key=key,
            dimensions=sql.Literal(list(rollup.dimensions)),
        )
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege as exc:
            conn.rollback()
            raise ConfigurationError(
                f"the filtered rollup {rollup.table} (ADCLICK_DIMENSION_SETS) does not exist "
                f"and this role may not create it ({exc.diag.message_primary}): run "
                "`adclick migrate` as the schema's owner first"
            ) from None
    conn.commit()


def _check_columns(conn: Connection, rollup: FilteredRollup) -> None:
    """Raise ConfigurationError if the rollup's table exists without the set's columns:
    a table of that name made for another set (an earlier configuration) would fail every
    batch written to it, batch after batch."""
    found = {
        name
        for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(%s))"
            " AND attnum > 0 AND NOT attisdropped",
            (rollup.table,),
        )
    }
    expected = {"minute", "ad_id", "clicks", *rollup.dimensions}
    if found and found != expected:
        conn.rollback()
        raise ConfigurationError(
            f"the table {rollup.table} has the columns {sorted(found)}, not those of the "
            f"dimension set {list(rollup.dimensions)} (ADCLICK_DIMENSION_SETS): it was made "
            "for another set; rename a dimension, or drop the table if its counts are not "
            "needed"
        )


def _catalogued(conn: Connection, rollup: FilteredRollup) -> bool:
    row = conn.execute(
        "SELECT to_regclass(format('%%I', table_name)) IS NOT NULL FROM filtered_rollups"
        " WHERE table_name = %s",
        (rollup.table,),
    ).fetchone()
    return bool(row and row[0])
