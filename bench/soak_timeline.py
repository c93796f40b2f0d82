"""The soak's timeline: one row every 10 s of what an operator would watch, from the
processes' own /metrics, the database and the query clients; and its picture."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from adclick.db.connect import connect
from adclick.query.window_index import read_stream_clock
from adclick.settings import Settings
from bench.latency import percentiles
from bench.soak_processes import Processes
from bench.soak_queries import QueryLoad


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of one /metrics page by name; empty when the process is away."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def total(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _labels, value in metrics.get(name, []))


def histogram_p99(before: dict[str, float], after: dict[str, float]) -> float | None:
    """The 99th percentile's bucket bound of the observations between two scrapes."""
    counts = sorted((float(le), after[le] - before.get(le, 0.0)) for le in after)
    observed = counts[-1][1] if counts else 0.0
    if observed <= 0:
        return None
    for bound, cumulative in counts:
        if cumulative >= 0.99 * observed:
            return bound
    return math.inf


@dataclass
class Sampler:
    settings: Settings
    processes: Processes
    queries: QueryLoad
    ingest_port: int
    close_port: int
    speedup: float
    # Processes outside the soak's own, by name (the broker, the postmaster): their pids
    # now (a restart changes the postmaster's).
    others: Callable[[], dict[str, int | None]] = dict
    rows: list[dict[str, Any]] = field(default_factory=list)
    _last: dict[str, Any] = field(default_factory=dict)

    def sample(self) -> dict[str, Any]:
        now = self.processes.now()
        ingest = scrape(self.ingest_port)
        closer = scrape(self.close_port)
        consumed = total(ingest, "adclick_ingest_events_consumed_total")
        buckets = {
            labels["le"]: value
            for labels, value in ingest.get("adclick_ingest_freshness_seconds_bucket", [])
        }
        with connect(self.settings, autocommit=True) as conn:
            clock = read_stream_clock(
                [conn], self.settings.clicks_topic, self.settings.idle_partition_timeout
            )
            size, lsn = conn.execute(
                "SELECT pg_database_size(current_database()), pg_current_wal_lsn() - '0/0'::pg_lsn"
            ).fetchone() or (0, 0)
        closed = total(closer, "adclick_close_last_closed_timestamp_seconds")
        cpu = self.processes.cpu_seconds(self.others())
        last = self._last
        dt = now - last["t"] if last else None
        row: dict[str, Any] = {
            "t_s": round(now, 1),
            "events_per_s": round((consumed - last["consumed"]) / dt) if dt and ingest else None,
            "consumer_lag": total(ingest, "adclick_ingest_consumer_lag_messages") or None,
            "freshness_p99_s": histogram_p99(last.get("buckets", {}), buckets),
            "watermark_lag_event_s": _seconds(clock.newest_ms, clock.watermark_ms),
            "closer_lag_event_s": (
                round(clock.watermark_ms / 1000 - closed, 1)
                if closed and clock.watermark_ms
                else None
            ),
            "api": percentiles(self.queries.since(last["t"] if last else 0.0)),
            "rss_mib": self.processes.rss_mib(),
            # Cores each process used since the last row (a restarted one from 0 again).
            "cpu_cores": {
                name: round(max(0.0, seconds - last["cpu"].get(name, 0.0)) / dt, 2)
                for name, seconds in cpu.items()
            }
            if dt
            else {},
            "database_bytes": int(size),
            "wal_bytes": int(lsn) - last["lsn"] if last else 0,
        }
        if row["closer_lag_event_s"] is not None:
            row["closer_lag_wall_s"] = round(row["closer_lag_event_s"] / self.speedup, 2)
        self._last = {
            "t": now,
            "consumed": consumed,
            "buckets": buckets,
            "lsn": int(lsn),
            "cpu": cpu,
        }
        self.rows.append(row)
        return row


def _seconds(newest_ms: int | None, watermark_ms: int | None) -> float | None:
    if newest_ms is None or watermark_ms is None:
        return None
    return round((newest_ms - watermark_ms) / 1000, 1)


def draw(rows: list[dict[str, Any]], faults: list[dict[str, Any]], path: Path) -> None:
    """The timeline as a PNG: one panel per measure, the faults as labelled lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [row["t_s"] / 60 for row in rows]

    def series(key: str) -> list[float]:
        return [math.nan if row.get(key) is None else float(row[key]) for row in rows]

    def per_process(key: str) -> list[tuple[str, list[float]]]:
        names = sorted({name for row in rows for name in row.get(key, {})})
        return [(name, [row.get(key, {}).get(name, math.nan) for row in rows]) for name in names]

    def api(op: str) -> list[float]:
        return [row["api"].get(op, {}).get("p99_ms", math.nan) for row in rows]

    panels = [
        ("events/s consumed", [("events/s", series("events_per_s"))]),
        ("consumer lag (messages)", [("lag", series("consumer_lag"))]),
        ("freshness p99 (s)", [("p99", series("freshness_p99_s"))]),
        ("closer lag (wall s)", [("closer", series("closer_lag_wall_s"))]),
        ("API p99 (ms)", [(op, api(op)) for op in ("topAds 60 min", "adClicks")]),
        ("RSS (MiB)", per_process("rss_mib")),
        ("CPU (cores)", per_process("cpu_cores")),
    ]  # fmt: skip
    figure, axes = plt.subplots(len(panels), 1, figsize=(11, 2.2 * len(panels)), sharex=True)
    for axis, (title, lines) in zip(axes, panels, strict=True):
        for label, values in lines:
            axis.plot(t, values, label=label, linewidth=1)
        axis.set_ylabel(title, fontsize=8)
        if len(lines) > 1:
            axis.legend(fontsize=6, ncol=4, loc="upper left")
        for fault in faults:  # a fault's span (at least a line)
            start, end = fault["at_s"] / 60, max(fault["end_s"], fault["at_s"] + 1) / 60
            color = "tab:blue" if fault["kind"] == "burst" else "red"
            axis.axvspan(start, end, color=color, alpha=0.15, linewidth=0)
    for fault in faults:
        axes[0].annotate(
            fault["kind"], (fault["at_s"] / 60, 1.0), xycoords=("data", "axes fraction"),
            rotation=90, fontsize=6, va="top",
            color="tab:blue" if fault["kind"] == "burst" else "red",
        )  # fmt: skip
    axes[-1].set_xlabel("wall time (minutes)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def wait_interval(started: float, interval_s: float) -> None:
    """Sleep to the next multiple of ``interval_s`` since ``started`` (monotonic)."""
    elapsed = time.monotonic() - started
    time.sleep(interval_s - elapsed % interval_s)
