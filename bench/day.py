"""``python -m bench day``: ingest late in a design-scale day.

The rollups of one UTC day up to hour H are built with binary COPY by the query
benchmark's writer (bench/query_dataset.py), in a database of their own that is kept
between runs; then the real ingest (loadgen into a fresh topic, ``IngestWorker``
processes, as in bench/ingest.py) consumes events whose event time starts at hour H of
that day, so every insert lands in the day-chunk that already holds H hours of rows.
With ``--hours 0`` the database is empty: the baseline.

What is reported, next to events/s: the WAL the run wrote (``pg_current_wal_lsn``
difference and ``pg_stat_wal``, per click consumed), its full-page images, the buffer hit
ratio of the rollup chunks (``pg_statio_user_tables``, shared buffers only: a miss may
still be served by the OS page cache) and of the database, and the sizes of the chunks
being written. A ``CHECKPOINT`` precedes the run, so every page the run touches first
costs a full-page image, as it does after each checkpoint in production.

The day starts at midnight UTC of the day before the run (event time in the past, so a
whole day fits). A kept dataset is reused; before each run the rows a former run wrote
(at and after hour H, and raw_clicks) are deleted. A former run's late clicks (1%, up to
2 minutes) stay counted in the dataset's last minutes, which changes counts, not sizes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from adclick.db.migrate import upgrade
from adclick.db.rollups import filtered_rollups
from adclick.kafka import create_topics, make_producer
from adclick.loadgen.generator import generate
from adclick.loadgen.send import send_blocks
from adclick.resources import load_sql
from adclick.settings import Settings
from adclick.stack import stack_up
from adclick.stack.lifecycle import local_targets
from adclick.stack.secrets import passfile_path
from bench.day_queries import add_history, query_times
from bench.environment import bench_database_settings, delete_topics, fresh_topic_names
from bench.ingest import _collect, _run_workers, _spec
from bench.query_dataset import HOUR_MS, DatasetSpec, ensure_dataset, write_watermarks

MINUTE_MS = 60_000
DAY_MS = 24 * HOUR_MS
DAY_DATABASE = "adclick_bench_day"


@dataclass(frozen=True)
class DayRun:
    """What one invocation measures."""

    spec: DatasetSpec
    events: int
    workers: int
    partitions: int
    minute: int = 0
    history_days: int = 0
    query_repeat: int = 0


def day_start_ms(now_ms: int) -> int:
    """Midnight UTC of the day before ``now_ms``: a whole day of event time in the past."""
    return now_ms - now_ms % DAY_MS - DAY_MS


def day_database(spec: DatasetSpec) -> str:
    """The database of the day's rollups up to hour ``spec.hours``."""
    zipf = f"{spec.zipf:g}".replace(".", "p")
    sparse = f"_f{spec.full_hours}" if spec.sparse_hours else ""
    return f"{DAY_DATABASE}_z{zipf}_{spec.hours}h_{spec.ads}a_{spec.clicks_per_minute}c{sparse}"


def ratios(baseline: dict[str, Any], late: dict[str, Any]) -> dict[str, float | None]:
    """Late-day figure / baseline figure: events/s, and the costs per click consumed.

    From the unrounded totals (a baseline's FPIs per click round to 0.0).
    """

    def ratio(late_value: float, base_value: float) -> float | None:
        return round(late_value / base_value, 3) if base_value else None

    out = {"events_per_s": ratio(late["events_per_s"], baseline["events_per_s"])}
    for key in ("wal_bytes", "wal_fpi", "rollup_blocks_read"):
        out[f"{key}_per_click"] = ratio(
            late[key] / late["events"], baseline[key] / baseline["events"]
        )
    return out


def run_day(base: Settings, run: DayRun, *, rebuild: bool) -> dict[str, Any]:
    """Build (or keep) the day up to hour H, then ingest ``run.events`` at its end."""
    stack_up(base, lambda message: print(f"stack: {message}"))
    spec = run.spec
    database = day_database(spec)
    dataset_info: dict[str, Any]
    day_ms = day_start_ms(int(time.time() * 1000))
    if spec.hours == 0:
        settings = bench_database_settings(base, database, recreate=True)
        upgrade(settings)
        dataset_info = {"rows": {}, "build_s": 0.0, "reused": False}
    else:
        settings, dataset = ensure_dataset(
            base,
            spec,
            rebuild=rebuild,
            database=database,
            end_ms=day_ms + spec.hours * HOUR_MS,
            extra_parameters={"ends_at_hour_of_day": spec.hours},
        )
        day_ms = dataset.end_ms - spec.hours * HOUR_MS  # a kept dataset's day
        dataset_info = {
            "rows": dataset.rows,
            "build_s": dataset.build_s,
            "reused": dataset.reused,
        }
    # Ingest starts at minute M of the dataset's last hour (--minute), or at its end.
    data_end_ms = day_ms + spec.hours * HOUR_MS
    at_ms = data_end_ms - (HOUR_MS - run.minute * MINUTE_MS if run.minute else 0)
    tables = ["clicks_1m", "clicks_1h", *(r.table for r in filtered_rollups(settings))]
    settings = settings.model_copy(
        update={**fresh_topic_names("bench-day"), "topic_partitions": run.partitions}
    )
    create_topics(settings)
    try:
        with _admin(base, database) as admin:
            _forget_former_runs(admin, tables, at_ms)
            if spec.hours:
                # The stream has reached at_ms on every partition, as in production: the
                # workers then claim rows from at_ms on as new (adclick.ingest.new_keys)
                # and add late clicks for the builder's minutes as upserts; without it
                # they claim those too, are refused, and upsert everything for a while.
                write_watermarks(admin, settings, at_ms - 1)
            if run.history_days:
                made = add_history(admin, filtered_rollups(settings), day_ms, run.history_days)
                print(f"history: {run.history_days - 1} days before the day, {made} chunks made")
            load = _spec(run.events, spec.zipf, spec.ads, spec.clicks_per_minute / 60, at_ms)
            print(f"preloading {run.events:,} events from {_dt(at_ms):%Y-%m-%d %H:%M} UTC")
            report = send_blocks(generate(load), make_producer(settings), settings.clicks_topic)
            print(f"preloaded: {report.summary()}")
            admin.execute("CHECKPOINT")
            before = _snapshot(admin, tables)
            processes, queue = _run_workers(settings, run.workers, freshness=False)
            results = _collect(processes, queue)
            time.sleep(1.0)  # the workers' statistics reach the cumulative views at exit
            after = _snapshot(admin, tables)
            sizes = _chunk_sizes(admin, tables, at_ms)
    finally:
        delete_topics(settings, [settings.clicks_topic, settings.dlq_topic, settings.top_ads_topic])
    consumed = sum(r.totals.consumed for r in results)
    starts = [r.totals.first_batch_at for r in results if r.totals.first_batch_at]
    ends = [r.totals.last_commit_at for r in results if r.totals.last_commit_at]
    elapsed = max(ends) - min(starts)
    queries = (
        query_times(
            settings,
            filtered_rollups(settings),
            at_ms,
            ads=spec.ads,
            repeat=run.query_repeat,
            full_from_ms=day_ms + spec.sparse_hours * HOUR_MS,
        )
        if run.query_repeat and spec.hours
        else None
    )
    return {
        "built_hours": spec.hours,
        "sparse_hours": spec.sparse_hours,
        "ads": spec.ads,
        "clicks_per_minute": spec.clicks_per_minute,
        "zipf": spec.zipf,
        "events": consumed,
        "workers": run.workers,
        "partitions": run.partitions,
        "ingest_from": f"{_dt(at_ms):%Y-%m-%dT%H:%MZ}",
        "inserted": sum(r.totals.inserted for r in results),
        "elapsed_s": round(elapsed, 2),
        "events_per_s": round(consumed / elapsed),
        **_deltas(before, after, consumed),
        "chunks_written": sizes,
        "dataset": dataset_info,
        "history_days": run.history_days,
        "queries": queries,
    }


def _admin(base: Settings, database: str) -> psycopg.Connection[Any]:
    """A superuser connection (CHECKPOINT, every statistics view) to ``database``."""
    port = local_targets(base).db_port
    return psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{port}/{database}",
        autocommit=True,
        passfile=str(passfile_path(base.state_dir)),
    )


def _forget_former_runs(admin: psycopg.Connection[Any], tables: list[str], end_ms: int) -> None:
    # Ingest writes raw_clicks (the builder never does) and rollup rows from end_ms on.
    admin.execute("TRUNCATE raw_clicks")
    for table in [*tables, "rollup_changes"]:
        column = "hour" if table == "clicks_1h" else "minute"
        admin.execute(
            sql.SQL("DELETE FROM {} WHERE {} >= %s").format(
                sql.Identifier(table), sql.Identifier(column)
            ),
            [_dt(end_ms)],
        )


def _snapshot(admin: psycopg.Connection[Any], tables: list[str]) -> dict[str, int]:
    admin.execute("SELECT pg_stat_clear_snapshot()")
    wal = admin.execute(load_sql("bench/day_wal")).fetchone()
    statio = admin.execute(load_sql("bench/day_statio"), {"tables": tables}).fetchone()
    assert wal is not None and statio is not None
    names = ["lsn", "wal_records", "wal_fpi", "wal_bytes", "db_hit", "db_read"]
    out = {name: int(value) for name, value in zip(names, wal, strict=True)}
    for name, value in zip(["heap_hit", "heap_read", "idx_hit", "idx_read"], statio, strict=True):
        out[name] = int(value)
    return out


def _deltas(before: dict[str, int], after: dict[str, int], clicks: int) -> dict[str, Any]:
    d = {key: after[key] - before[key] for key in before}

    def ratio(hit: int, read: int) -> float | None:
        return round(hit / (hit + read), 4) if hit + read else None

    return {
        "wal_bytes": d["lsn"],
        "wal_bytes_per_click": round(d["lsn"] / clicks, 1),
        "wal_fpi": d["wal_fpi"],
        "wal_fpi_per_click": round(d["wal_fpi"] / clicks, 4),
        "wal_records": d["wal_records"],
        "rollup_heap_hit_ratio": ratio(d["heap_hit"], d["heap_read"]),
        "rollup_index_hit_ratio": ratio(d["idx_hit"], d["idx_read"]),
        "rollup_blocks_read": d["heap_read"] + d["idx_read"],
        "database_hit_ratio": ratio(d["db_hit"], d["db_read"]),
    }


def _chunk_sizes(
    admin: psycopg.Connection[Any], tables: list[str], at_ms: int
) -> dict[str, dict[str, int]]:
    """Table, index and total bytes of each rollup's chunk holding ``at_ms``."""
    return {
        table: {"table_bytes": int(heap), "index_bytes": int(index), "total_bytes": int(total)}
        for table, _chunk, heap, index, total in admin.execute(
            load_sql("bench/day_chunks"), {"tables": tables, "at": _dt(at_ms)}
        )
    }


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
