"""The query benchmark's dataset: hours of per-minute rollups at design scale.

Going through Kafka and the ingest workers would take hours for 6 hours of 700,000
clicks a minute (about 57,000 events/s ingest, docs/benchmarks.md), so the rollups are
written directly, with binary COPY: per minute, the clicks are drawn over the ads with the
loadgen's own samplers (bounded Zipf popularity, the same ads popular in every minute,
the loadgen's country mix), and the rows are exactly those the ingest worker would have
committed for them: ``clicks_1m``, ``clicks_1h``, every configured filtered rollup,
``rollup_changes`` (one row per minute, partition -1, revision 1: how the API's window
index learns that a minute has data) and ``partition_watermarks`` (stream time a few
seconds into the minute after the last one).

Rows are written in minute order, as ingest writes them (the BRIN indexes on minute rely
on it). The keys and indexes are dropped for the load and built afterwards, sorted, which
is much faster than growing them row by row; they are therefore compact, where ingest's
would have grown by page splits. The dataset lives in its own database and is kept
between runs: its parameters are recorded in it (table ``bench_dataset``), and a run
with the same parameters reuses it. Each set of data parameters has its own database
(the default set ``adclick_bench_query``), so that building, say, the uniform dataset
does not destroy the default one that ``bench close`` also uses; drop the databases
that are no longer wanted (``DROP DATABASE``), they take gigabytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adclick.db.connect import Connection, connect
from adclick.db.migrate import head_revision, upgrade
from adclick.db.rollups import FilteredRollup, filtered_rollups
from adclick.loadgen.generator import (
    DEFAULT_ADS,
    DEFAULT_ZIPF,
    LoadSpec,
    _Draws,
    ad_id,
    ad_id_width,
)
from adclick.resources import load_sql
from adclick.settings import Settings
from bench.environment import bench_database_settings, ensure_database_cluster

# Not adclick_bench: ``bench ingest`` recreates that one on every run, and this dataset
# is meant to outlive runs.
QUERY_DATABASE = "adclick_bench_query"
QUERY_TOPIC = "bench-query-clicks"
SEED = 7
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
# Stream time: this far into the minute after the dataset's last minute.
STREAM_TIME_INTO_NEXT_MINUTE_MS = 5_000


@dataclass(frozen=True)
class DatasetSpec:
    """What to build."""

    hours: int
    ads: int
    clicks_per_minute: int
    zipf: float
    seed: int = SEED
    # Only the last ``full_hours`` hours get every per-minute row; the hours before get
    # their clicks_1h rows in full and one per-minute row per hour and table (so their
    # chunks exist). None: every hour in full. ``bench day`` uses it to reach hour 23 on
    # a disk that cannot hold a whole design-scale day (docs/benchmarks.md).
    full_hours: int | None = None

    @property
    def minutes(self) -> int:
        return self.hours * 60

    @property
    def sparse_hours(self) -> int:
        """The leading hours whose per-minute rollups hold one row per chunk and table."""
        return 0 if self.full_hours is None else max(0, self.hours - self.full_hours)

    @property
    def database(self) -> str:
        """The dataset's own database."""
        if self == DEFAULT_SPEC:
            return QUERY_DATABASE
        zipf = f"{self.zipf:g}".replace(".", "p")
        return (
            f"{QUERY_DATABASE}_z{zipf}_{self.hours}h_{self.ads}a_{self.clicks_per_minute}c"
            + (f"_s{self.seed}" if self.seed != SEED else "")
            + (f"_f{self.full_hours}" if self.sparse_hours else "")
        )

    def describe(self) -> str:
        skew = "uniform" if self.zipf == 0 else f"Zipf {self.zipf}"
        sparse = (
            f"; per-minute rollups sparse in the first {self.sparse_hours} h"
            if self.sparse_hours
            else ""
        )
        return (
            f"{self.hours} h of {self.clicks_per_minute:,} clicks/min over {self.ads:,} ads "
            f"({skew}{sparse})"
        )


DEFAULT_SPEC = DatasetSpec(
    hours=6, ads=DEFAULT_ADS, clicks_per_minute=700_000, zipf=DEFAULT_ZIPF, seed=SEED
)


@dataclass(frozen=True)
class Dataset:
    """A built dataset: the minutes [start_ms, end_ms), and what it took."""

    spec: DatasetSpec
    start_ms: int
    end_ms: int
    newest_ms: int
    rows: dict[str, int]
    build_s: float
    reused: bool


def dataset_settings(
    base: Settings, spec: DatasetSpec, *, recreate: bool, database: str | None = None
) -> Settings:
    """Settings naming the dataset's database (created when missing) and clicks topic."""
    ensure_database_cluster(base)
    settings = bench_database_settings(base, database or spec.database, recreate=recreate)
    # No topic is created: the API reads only the database, and the topic's name is
    # only the key of the stream clock (partition_watermarks).
    return settings.model_copy(update={"clicks_topic": QUERY_TOPIC})


def ensure_dataset(
    base: Settings,
    spec: DatasetSpec,
    *,
    rebuild: bool,
    database: str | None = None,
    end_ms: int | None = None,
    extra_parameters: dict[str, Any] | None = None,
) -> tuple[Settings, Dataset]:
    """The dataset of ``spec``: the kept one when its parameters match, else a new one.

    By default the dataset lives in ``spec.database`` and ends at the current minute;
    ``bench day`` names its own database and makes it end at an hour of a UTC day
    (``end_ms``), and records how it chose that end in ``extra_parameters``.
    """
    settings = dataset_settings(base, spec, recreate=False, database=database)
    parameters = {**_parameters(settings, spec), **(extra_parameters or {})}
    if not rebuild:
        kept = _read_record(settings, spec, parameters)
        if kept is not None:
            print(
                f"reusing the dataset in {database or spec.database} ({spec.describe()}, built in "
                f"{kept.build_s:,.0f} s); --rebuild builds it again"
            )
            return settings, kept
    settings = dataset_settings(base, spec, recreate=True, database=database)
    upgrade(settings)
    dataset = _build(settings, spec, end_ms=end_ms)
    _write_record(settings, dataset, parameters)
    return settings, dataset


def _parameters(settings: Settings, spec: DatasetSpec) -> dict[str, Any]:
    # The schema and the rollup configuration are part of what was built: a new
    # migration or dimension set makes a kept dataset stale.
    return {
        **asdict(spec),
        "schema_revision": head_revision(settings),
        "dimension_sets": settings.dimension_sets,
        "topic": settings.clicks_topic,
        "partitions": settings.topic_partitions,
        "allowed_lateness_s": settings.allowed_lateness.total_seconds(),
    }


def _read_record(
    settings: Settings, spec: DatasetSpec, parameters: dict[str, Any]
) -> Dataset | None:
    with connect(settings) as conn:
        if conn.execute("SELECT to_regclass('bench_dataset')").fetchone() in (None, (None,)):
            return None
        row = conn.execute(
            "SELECT parameters, start_minute, end_minute, newest_event_time, row_counts, "
            "build_seconds FROM bench_dataset"
        ).fetchone()
    # Through JSON, so that the comparison sees what a stored record would hold.
    if row is None or row[0] != json.loads(json.dumps(parameters)):
        return None
    return Dataset(
        spec, _ms(row[1]), _ms(row[2]), _ms(row[3]), dict(row[4]), float(row[5]), reused=True
    )


def _write_record(settings: Settings, dataset: Dataset, parameters: dict[str, Any]) -> None:
    with connect(settings) as conn:
        conn.execute(load_sql("bench/dataset_record"))
        conn.execute("DELETE FROM bench_dataset")
        conn.execute(
            "INSERT INTO bench_dataset (parameters, start_minute, end_minute, "
            "newest_event_time, row_counts, build_seconds) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                psycopg.types.json.Jsonb(parameters),
                _dt(dataset.start_ms),
                _dt(dataset.end_ms),
                _dt(dataset.newest_ms),
                psycopg.types.json.Jsonb(dataset.rows),
                dataset.build_s,
            ],
        )
        conn.commit()


# -- building ----------------------------------------------------------------------


class _Minutes:
    """Draws the clicks of one minute after the other, always over the same ads."""

    def __init__(self, spec: DatasetSpec, start_ms: int) -> None:
        self.spec = spec
        # The loadgen's samplers: its bounded Zipf over a scattered ranking (so ad id
        # order says nothing about popularity) and its country mix.
        self.load = LoadSpec(
            events=0, start_ms=start_ms, seed=spec.seed, ads=spec.ads, zipf=spec.zipf
        )
        self.draws = _Draws(self.load, np.random.default_rng(spec.seed))
        width = ad_id_width(spec.ads)
        # Index 0 is never drawn (ads are numbered from 1); it keeps indexes equal to numbers.
        self.names: npt.NDArray[np.object_] = np.empty(spec.ads + 1, dtype=object)
        self.names[:] = [ad_id(number, width) for number in range(spec.ads + 1)]
        self.countries: npt.NDArray[np.object_] = np.array(self.load.country_codes, dtype=object)

    def draw(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Ad numbers and country indexes of one minute's clicks."""
        n = self.spec.clicks_per_minute
        return self.draws.ads(n), self.draws.countries(n)

    def draw_hour_per_ad(self) -> npt.NDArray[np.int64]:
        """Clicks per ad number over an hour of minutes (a sparse hour's clicks_1h)."""
        per_ad = np.zeros(self.spec.ads + 1, dtype=np.int64)
        for _ in range(60):
            per_ad += np.bincount(
                self.draws.ads(self.spec.clicks_per_minute), minlength=len(per_ad)
            )
        return per_ad


def _build(settings: Settings, spec: DatasetSpec, *, end_ms: int | None = None) -> Dataset:
    started = time.perf_counter()
    # By default the dataset ends at the current minute, so it looks live; stream time is
    # then a few seconds into the minute after its last minute.
    if end_ms is None:
        end_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    start_ms = end_ms - spec.minutes * MINUTE_MS
    newest_ms = end_ms + STREAM_TIME_INTO_NEXT_MINUTE_MS
    rollups = filtered_rollups(settings)
    tables = ["clicks_1m", "clicks_1h", *(r.table for r in rollups)]
    minutes = _Minutes(spec, start_ms)
    rows = dict.fromkeys(tables, 0)
    print(f"building {spec.describe()} in {settings.database_url.rsplit('/', 1)[1]}")
    with connect(settings) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        keys = {table: _drop_keys(conn, table) for table in tables}
        conn.commit()
        hour_sums = np.zeros(spec.ads + 1, dtype=np.int64)
        with _progress() as progress:
            task = progress.add_task("minutes", total=spec.minutes, rows=0)
            full_from_ms = start_ms + spec.sparse_hours * HOUR_MS
            for table in one_row_per_chunk(conn, rollups, start_ms, full_from_ms, SPARSE_AD):
                rows[table] += spec.sparse_hours
            for sparse_ms in range(start_ms, full_from_ms, HOUR_MS):
                rows["clicks_1h"] += _write_per_ad(
                    conn, minutes, "clicks_1h", sparse_ms, minutes.draw_hour_per_ad()
                )
                conn.commit()
                progress.update(task, advance=60, rows=sum(rows.values()))
                progress.console.print(
                    f"sparse hour {_dt(sparse_ms):%H}:00, {sum(rows.values()):,} rows, "
                    f"{time.perf_counter() - started:,.0f} s"
                )
            hour_ms = full_from_ms - full_from_ms % HOUR_MS
            for minute_ms in range(full_from_ms, end_ms, MINUTE_MS):
                if minute_ms - minute_ms % HOUR_MS != hour_ms:
                    rows["clicks_1h"] += _write_per_ad(
                        conn, minutes, "clicks_1h", hour_ms, hour_sums
                    )
                    hour_ms, hour_sums[:] = minute_ms - minute_ms % HOUR_MS, 0
                ads, countries = minutes.draw()
                per_ad = np.bincount(ads, minlength=spec.ads + 1)
                hour_sums += per_ad
                rows["clicks_1m"] += _write_per_ad(conn, minutes, "clicks_1m", minute_ms, per_ad)
                for rollup in rollups:
                    rows[rollup.table] += _write_filtered_minute(
                        conn, minutes, rollup, minute_ms, ads, countries
                    )
                conn.commit()
                progress.update(task, advance=1, rows=sum(rows.values()))
                done = (minute_ms - start_ms) // MINUTE_MS + 1
                if not progress.console.is_terminal and done % 30 == 0:
                    # No live bar in a log file: a line every half hour of data instead.
                    progress.console.print(
                        f"{done}/{spec.minutes} minutes, {sum(rows.values()):,} rows, "
                        f"{time.perf_counter() - started:,.0f} s"
                    )
            rows["clicks_1h"] += _write_per_ad(conn, minutes, "clicks_1h", hour_ms, hour_sums)
            conn.commit()
        loaded_s = time.perf_counter() - started
        print(f"rows written: {_rows_text(rows)} in {loaded_s:,.0f} s; building keys and indexes")
        for table in tables:
            _restore_keys(conn, table, keys[table])
            conn.commit()
        _write_changes(conn, start_ms, end_ms)
        write_watermarks(conn, settings, newest_ms)
        conn.commit()
    indexed_s = time.perf_counter() - started
    print(f"keys and indexes built at {indexed_s:,.0f} s; vacuum and analyze")
    # What autovacuum would have done to data this old: hint bits, visibility map,
    # statistics for the planner.
    with connect(settings, autocommit=True) as conn:
        for table in [*tables, "rollup_changes", "partition_watermarks"]:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    build_s = time.perf_counter() - started
    print(f"dataset built: {_rows_text(rows)} in {build_s:,.0f} s")
    return Dataset(spec, start_ms, end_ms, newest_ms, rows, round(build_s, 1), reused=False)


_TIME_COLUMN = {"clicks_1m": "minute", "clicks_1h": "hour"}
SPARSE_AD = "ad-sparse"


def one_row_per_chunk(
    conn: psycopg.Connection[Any],
    rollups: Sequence[FilteredRollup],
    start_ms: int,
    end_ms: int,
    ad: str,
) -> list[str]:
    """One row of ``ad`` per chunk interval of [start_ms, end_ms) in clicks_1m and every
    filtered rollup (a quarter hour since migration 0010), so that each chunk exists: what
    costs planning and retention is the number of chunks, not their rows (sparse hours
    here, bench day's history days). Returns the tables written."""
    row = conn.execute(
        "SELECT time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = 'clicks_1m' AND column_name = 'minute'"
    ).fetchone()
    assert row is not None, "clicks_1m is not a hypertable"
    steps = sql.SQL("generate_series(%(start)s, %(end)s - %(step)s, %(step)s)")
    per_minute = [("clicks_1m", ()), *((r.table, r.dimensions) for r in rollups)]
    for table, dimensions in per_minute:
        columns = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(d)) for d in dimensions)
        values = sql.SQL("").join(sql.SQL(", 'XX'") for _ in dimensions)
        conn.execute(
            sql.SQL(
                "INSERT INTO {table} (minute, ad_id{columns}, clicks) "
                "SELECT m, %(ad)s{values}, 1 FROM {steps} AS m ON CONFLICT DO NOTHING"
            ).format(table=sql.Identifier(table), columns=columns, values=values, steps=steps),
            {"start": _dt(start_ms), "end": _dt(end_ms), "step": row[0], "ad": ad},
        )
    return [table for table, _dimensions in per_minute]


def _write_per_ad(
    conn: Connection,
    minutes: _Minutes,
    table: str,
    bucket_ms: int,
    per_ad: npt.NDArray[np.int64],
) -> int:
    """One bucket (a minute or an hour) of clicks_1m or clicks_1h."""
    clicked = np.flatnonzero(per_ad)
    return _copy(
        conn,
        table,
        [_TIME_COLUMN[table], "ad_id", "clicks"],
        ["timestamptz", "text", "int8"],
        zip(repeat(_dt(bucket_ms)), minutes.names[clicked].tolist(), per_ad[clicked].tolist()),
    )


def _write_filtered_minute(
    conn: Connection,
    minutes: _Minutes,
    rollup: FilteredRollup,
    minute_ms: int,
    ads: npt.NDArray[np.int64],
    countries: npt.NDArray[np.int64],
) -> int:
    # Loadgen clicks carry a country and no further attributes: ingest counts a
    # dimension other than country as '' (adclick.ingest.aggregate).
    spread = len(minutes.countries) if "country" in rollup.dimensions else 1
    keys = ads * spread + (countries if spread > 1 else 0)
    counts = np.bincount(keys, minlength=(minutes.spec.ads + 1) * spread)
    clicked = np.flatnonzero(counts)
    n = len(clicked)
    columns: list[Iterable[Any]] = [
        repeat(_dt(minute_ms), n),
        minutes.names[clicked // spread].tolist(),
    ]
    for dim in rollup.dimensions:
        values = minutes.countries[clicked % spread].tolist() if dim == "country" else repeat("", n)
        columns.append(values)
    columns.append(counts[clicked].tolist())
    return _copy(
        conn,
        rollup.table,
        ["minute", "ad_id", *rollup.dimensions, "clicks"],
        ["timestamptz", "text", *(["text"] * len(rollup.dimensions)), "int8"],
        zip(*columns, strict=True),
    )


def _copy(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> int:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    written = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
            written += 1
    return written


def _write_changes(conn: Connection, start_ms: int, end_ms: int) -> int:
    # What ingest's mark_changed_minutes leaves after one change per minute; partition
    # -1 marks a change from outside ingest, as the migration's backfill does.
    return _copy(
        conn,
        "rollup_changes",
        ["minute", "kafka_partition", "revision"],
        ["timestamptz", "int4", "int8"],
        ((_dt(m), -1, 1) for m in range(start_ms, end_ms, MINUTE_MS)),
    )


def write_watermarks(conn: Connection, settings: Settings, newest_ms: int) -> None:
    # Every partition a little behind the newest: stream time is the maximum, the
    # global watermark the minimum minus the allowed lateness.
    newest = newest_ms
    lateness = int(settings.allowed_lateness.total_seconds() * 1000)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO partition_watermarks (topic, kafka_partition, max_event_time, "
            "watermark) VALUES (%s, %s, %s, %s)",
            [
                (settings.clicks_topic, p, _dt(newest - 500 * p), _dt(newest - 500 * p - lateness))
                for p in range(settings.topic_partitions)
            ],
        )


def _drop_keys(conn: Connection, table: str) -> list[tuple[str, str, str]]:
    keys = [
        (str(kind), str(name), str(definition))
        for kind, name, definition in conn.execute(load_sql("bench/table_keys"), {"table": table})
    ]
    for kind, name, _definition in keys:
        if kind == "constraint":
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(name)
                )
            )
        else:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return keys


def _restore_keys(conn: Connection, table: str, keys: list[tuple[str, str, str]]) -> None:
    for kind, name, definition in keys:
        started = time.perf_counter()
        # The definitions are the catalog's own DDL, read back by _drop_keys.
        ddl = sql.SQL(definition)
        if kind == "constraint":
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                    sql.Identifier(table), sql.Identifier(name), ddl
                )
            )
        else:
            conn.execute(ddl)
        print(f"  {name}: {time.perf_counter() - started:,.0f} s")


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def _rows_text(rows: dict[str, int]) -> str:
    return ", ".join(f"{table} {count:,}" for table, count in rows.items())


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
