"""``python -m bench day --history-days N``: the API's rollup queries with months of chunks.

Retention keeps 90 days of per-minute rollups hot; with quarter-hour chunks that is 8,640 chunks
per rollup table, and the planner (TimescaleDB's chunk exclusion) sees all of them. The
days before the built day are sparse here, one row per chunk and table, because what
costs planning and retention is the number of chunks, not their rows.

For each query the API sends by SQL (adclick.query.sql_source: every adClicks, and the
topAds the in-memory indexes cannot serve) it reports the planning time (``EXPLAIN
(SUMMARY)``, nothing executed) and the wall time of running it as the API does, on one
connection, repeatedly, so psycopg's prepared statements and PostgreSQL's plan cache take
part as they do in a long-lived API process.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql

from adclick.db.connect import Connection, connect
from adclick.db.rollups import FilteredRollup
from adclick.loadgen.generator import ad_id, ad_id_width
from adclick.query import sql_source
from adclick.query.filters import Filter, Plan, Source
from adclick.query.window import HOUR_MS, MINUTE_MS, Window
from adclick.settings import Settings
from bench.query_dataset import one_row_per_chunk

HISTORY_AD = "ad-history"
TOP_LIMIT = 100
# Candidates whose edge minutes a long topAds window reads by SQL (query/long_windows.py):
# with uniformly popular ads, thousands.
EDGE_CANDIDATES = 10_000


def add_history(
    admin: psycopg.Connection[Any],
    rollups: list[FilteredRollup],
    day_start_ms: int,
    days: int,
) -> int:
    """One row per hour in clicks_1h and per chunk interval in the per-minute rollups for
    the ``days - 1`` days before the day; chunks made."""
    start_ms = day_start_ms - (days - 1) * 24 * HOUR_MS
    start, end = _dt(start_ms), _dt(day_start_ms)
    hours = sql.SQL("generate_series(%(start)s, %(end)s - INTERVAL '1 hour', INTERVAL '1 hour')")
    before = _chunk_count(admin)
    admin.execute(
        sql.SQL(
            "INSERT INTO clicks_1h (hour, ad_id, clicks) SELECT h, %(ad)s, 1 FROM {} AS h "
            "ON CONFLICT DO NOTHING"
        ).format(hours),
        {"start": start, "end": end, "ad": HISTORY_AD},
    )
    one_row_per_chunk(admin, rollups, start_ms, day_start_ms, HISTORY_AD)
    admin.execute("ANALYZE clicks_1h")
    return _chunk_count(admin) - before


def query_times(
    settings: Settings,
    rollups: list[FilteredRollup],
    end_ms: int,
    *,
    ads: int,
    repeat: int,
    full_from_ms: int | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Planning and wall time of the API's SQL reads, windows ending at ``end_ms``.

    ``full_from_ms``: where a sparse day's full per-minute rollups begin (bench
    query_dataset's ``full_hours``). A filtered read of a window that starts before it
    would read hours holding one row each, so it is left out (and says so).
    """
    country = next((r for r in rollups if r.dimensions == ("country",)), None)
    unfiltered = (Plan(Source.ROLLUP), Filter())
    filters = {"": unfiltered}
    if country is not None:
        by_country = (Plan(Source.FILTERED_ROLLUP, country), Filter((("country", ("US",)),)))
        filters["_us"] = by_country
    rng = random.Random(7)
    width = ad_id_width(ads)
    hour = Window(end_ms - 60 * MINUTE_MS, end_ms)
    day = Window(end_ms - 24 * HOUR_MS, end_ms)
    # A 24-hour window that starts and ends inside an hour: minutes at both ends.
    day_inside = Window(day.start_ms + 30 * MINUTE_MS, day.end_ms - 30 * MINUTE_MS)
    results: dict[str, Any] = {"chunks": {}, "queries": {}}
    with connect(settings, autocommit=True) as conn:
        results["chunks"] = dict(
            conn.execute(
                "SELECT hypertable_name, count(*) FROM timescaledb_information.chunks GROUP BY 1"
            ).fetchall()
        )
        popular = _top_ad(conn, end_ms) or ad_id(1, width)

        def random_ad() -> str:
            return ad_id(rng.randint(1, ads), width)

        cases: list[tuple[str, Callable[[], sql_source.Statement], int]] = []
        for name, window, bucket in (("60m", hour, MINUTE_MS), ("24h", day, HOUR_MS)):
            for plan_name, (plan, flt) in filters.items():
                if plan_name and full_from_ms is not None and window.start_ms < full_from_ms:
                    # Minute by minute from a filtered rollup the sparse build left empty.
                    results["queries"][f"adClicks_{name}{plan_name}"] = {
                        "skipped": "its window reads per-minute rows the sparse build left out"
                    }
                    continue
                cases.append(
                    (
                        f"adClicks_popular_{name}{plan_name}",
                        _bind(
                            sql_source.ads_series_statement, [popular], window, plan, flt, bucket
                        ),
                        repeat,
                    )
                )
                cases.append(
                    (
                        f"adClicks_random_{name}{plan_name}",
                        _random_ad_statement(random_ad, window, plan, flt, bucket),
                        repeat,
                    )
                )
        slow = max(3, repeat // 20)
        # A long window's edge: the candidates' clicks in the 30 minutes before an hour.
        edge = Window(hour.end_ms - 30 * MINUTE_MS, hour.end_ms)
        for plan_name, (plan, flt) in filters.items():
            cases.append(
                (
                    f"longWindow_edge_{EDGE_CANDIDATES}_ads_30m{plan_name}",
                    _edge_statement(random_ad, edge, plan, flt),
                    slow,
                )
            )
        cases.append(
            (
                "topAds_sql_24h_by_hours",
                _bind(sql_source.top_ads_statement, day, *unfiltered, TOP_LIMIT),
                slow,
            )
        )
        cases.append(
            (
                "topAds_sql_24h_inside_hours",
                _bind(sql_source.top_ads_statement, day_inside, *unfiltered, TOP_LIMIT),
                slow,
            )
        )
        if country is not None and (full_from_ms is None or hour.start_ms >= full_from_ms):
            cases.append(
                (
                    "topAds_sql_60m_us",
                    _bind(sql_source.top_ads_statement, hour, *filters["_us"], TOP_LIMIT),
                    slow,
                )
            )
        for name, statement, times in cases:
            say(f"{name}: planning and {times} runs")
            results["queries"][name] = _measure(conn, statement, times)
    return results


def _random_ad_statement(
    random_ad: Callable[[], str], window: Window, plan: Plan, flt: Filter, bucket_ms: int
) -> Callable[[], sql_source.Statement]:
    """The adClicks statement for another random ad at every call."""

    def statement() -> sql_source.Statement:
        return sql_source.ads_series_statement([random_ad()], window, plan, flt, bucket_ms)

    return statement


def _edge_statement(
    random_ad: Callable[[], str], window: Window, plan: Plan, flt: Filter
) -> Callable[[], sql_source.Statement]:
    """The edge read of other random candidates at every call."""

    def statement() -> sql_source.Statement:
        ads = sorted({random_ad() for _ in range(EDGE_CANDIDATES)})
        return sql_source.ads_clicks_between_statement(ads, window, plan, flt)

    return statement


def _bind(
    make: Callable[..., sql_source.Statement], *args: Any
) -> Callable[[], sql_source.Statement]:
    def bound() -> sql_source.Statement:
        return make(*args)

    return bound


def _measure(
    conn: Connection, statement: Callable[[], sql_source.Statement], times: int
) -> dict[str, Any]:
    query, params = statement()
    explained = conn.execute(
        sql.SQL("EXPLAIN (SUMMARY, FORMAT JSON) {}").format(query), params
    ).fetchone()
    assert explained is not None
    plan = explained[0] if isinstance(explained[0], list) else orjson.loads(explained[0])
    walls = []
    for _ in range(times):
        query, params = statement()
        started = time.perf_counter()
        conn.execute(query, params).fetchall()
        walls.append((time.perf_counter() - started) * 1000)
    walls.sort()
    return {
        "planning_ms": round(plan[0]["Planning Time"], 2),
        "runs": times,
        "p50_ms": round(statistics.median(walls), 2),
        "p99_ms": round(walls[min(len(walls) - 1, int(len(walls) * 0.99))], 2),
        "max_ms": round(walls[-1], 2),
    }


def _top_ad(conn: Connection, end_ms: int) -> str | None:
    row = conn.execute(
        "SELECT ad_id FROM clicks_1h WHERE hour = %s ORDER BY clicks DESC LIMIT 1",
        [_dt(end_ms - end_ms % HOUR_MS - HOUR_MS)],
    ).fetchone()
    return None if row is None else str(row[0])


def _chunk_count(admin: psycopg.Connection[Any]) -> int:
    row = admin.execute("SELECT count(*) FROM timescaledb_information.chunks").fetchone()
    return 0 if row is None else int(row[0])


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
