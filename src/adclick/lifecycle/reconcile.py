"""``adclick reconcile``: every rollup row against counts recomputed from raw clicks.

All in one REPEATABLE READ snapshot: ingest commits raw clicks and rollups together, so
a consistent snapshot must agree exactly, even while ingest runs. Each run is recorded in
``reconciliations``; the API's /metrics reports the newest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from adclick.db.connect import connect, snapshot_transaction
from adclick.lifecycle.recompute import Rollup, check_range, differences, rollups, stage_expected
from adclick.resources import load_sql
from adclick.settings import Settings


@dataclass(frozen=True)
class Discrepancy:
    rollup: str
    bucket: datetime
    ad_id: str
    dimensions: tuple[str, ...]
    expected: int
    stored: int


@dataclass
class ReconciliationReport:
    rows_checked: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)


def reconcile(
    settings: Settings,
    start: datetime,
    end: datetime,
    on_rollup: Callable[[Rollup], None] | None = None,
) -> ReconciliationReport:
    report = ReconciliationReport()
    with connect(settings) as conn:
        start, end = check_range(conn, settings, start, end)
        with snapshot_transaction(conn):
            for rollup in rollups(settings):
                if on_rollup is not None:
                    on_rollup(rollup)
                first, last = rollup.aligned(start, end)
                stage_expected(conn, settings, rollup, first, last)
                params = {"start": first, "end": last}
                row = conn.execute("SELECT count(*) FROM expected").fetchone()
                report.rows_checked += int(row[0]) if row else 0
                for t, ad, *rest in conn.execute(differences(rollup), params).fetchall():
                    *dims, expected, stored = rest
                    report.discrepancies.append(
                        Discrepancy(rollup.table, t, ad, tuple(dims), expected, stored)
                    )
        conn.execute(
            load_sql("lifecycle/record_reconciliation"),
            (start, end, report.rows_checked, len(report.discrepancies)),
        )
        conn.commit()
    return report
