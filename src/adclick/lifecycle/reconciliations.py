"""The reconciliations table as readers see it: the API reports the newest run as metrics.

Apart from reconcile.py so that the API does not import the recomputation (DuckDB and
the Parquet reader come with it) for one SELECT.
"""

from __future__ import annotations

from datetime import datetime

from adclick.db.connect import Connection


def last_run(conn: Connection) -> tuple[datetime, int] | None:
    """When the newest reconciliation ran and how many discrepancies it found."""
    row = conn.execute(
        "SELECT ran_at, discrepancies FROM reconciliations ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return (row[0], int(row[1])) if row else None
