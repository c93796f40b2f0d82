"""What the integration tests share: sending messages, running workers, reading results."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import psycopg
from confluent_kafka import Consumer, TopicPartition

from adclick.db.connect import connect
from adclick.db.rollups import ensure_filtered_rollups
from adclick.ingest.worker import IngestWorker, WorkerTotals
from adclick.kafka import make_producer
from adclick.loadgen.generator import LoadSpec, generate
from adclick.loadgen.send import send_blocks
from adclick.loadgen.truth import Truth, TruthAccumulator
from adclick.settings import ProcessKind, Settings
from adclick.stack.lifecycle import local_targets
from adclick.stack.timescaledb import TimescaleCluster


def send(settings: Settings, payloads: list[bytes | dict[str, Any]], key: bytes = b"") -> None:
    """Send messages to the clicks topic; dicts are sent as JSON keyed by their ad_id."""
    producer = make_producer(settings)
    for payload in payloads:
        if isinstance(payload, dict):
            message_key = str(payload.get("ad_id", "")).encode() or key
            producer.produce(settings.clicks_topic, value=orjson.dumps(payload), key=message_key)
        else:
            producer.produce(settings.clicks_topic, value=payload, key=key)
        producer.poll(0)
    assert producer.flush(30) == 0


def create_filtered_rollups(settings: Settings) -> None:
    """Create the settings' filtered rollups as the owner, as ``adclick migrate`` does: the
    workers' role may not (a new dimension set needs a migrate before ingest)."""
    with connect(settings) as conn:
        ensure_filtered_rollups(conn, settings)


def ingest_until_idle(settings: Settings, idle_s: float = 2.0) -> WorkerTotals:
    """Run one worker in this process until the topic is drained and idle (as the ingest
    role, like ``adclick ingest``)."""
    return IngestWorker(settings.for_process(ProcessKind.INGEST)).run(exit_when_idle_s=idle_s)


class WorkerThread(threading.Thread):
    """A worker in a thread, for tests that run several in one group."""

    def __init__(self, settings: Settings, name: str, idle_s: float | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.worker = IngestWorker(settings.for_process(ProcessKind.INGEST), name)
        self.idle_s = idle_s
        self.totals: WorkerTotals | None = None

    def run(self) -> None:
        self.totals = self.worker.run(exit_when_idle_s=self.idle_s)


def ingest_process(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """``adclick ingest`` as a separate process (for kill -9 and signal tests)."""
    return adclick_process(settings, "ingest", *args)


def adclick_process(settings: Settings, command: str, *args: str) -> subprocess.Popen[bytes]:
    """An ``adclick`` command as a separate process with the test's settings."""
    environment = {**os.environ, **settings.as_environment()}
    return subprocess.Popen(
        [sys.executable, "-m", "adclick", command, *args],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def query(settings: Settings, statement: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of one query on the test's database."""
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


def execute(settings: Settings, statement: str, *params: object) -> None:
    """Run one statement (DDL, a deliberate corruption) on the test's database."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(statement, params)  # type: ignore[arg-type]


def rollup_counts(settings: Settings) -> dict[tuple[str, int], int]:
    """clicks_1m as {(ad_id, minute epoch seconds): clicks}."""
    rows = query(
        settings, "SELECT ad_id, extract(epoch FROM minute)::bigint, clicks FROM clicks_1m"
    )
    return {(ad, int(minute)): int(clicks) for ad, minute, clicks in rows}


def country_rollup_counts(settings: Settings) -> dict[tuple[str, int, str], int]:
    """clicks_1m_by_country as {(ad_id, minute epoch seconds, country): clicks}."""
    rows = query(
        settings,
        "SELECT ad_id, extract(epoch FROM minute)::bigint, country, clicks"
        " FROM clicks_1m_by_country",
    )
    return {(ad, int(minute), country): int(clicks) for ad, minute, country, clicks in rows}


def hourly_counts(settings: Settings) -> dict[tuple[str, int], int]:
    """clicks_1h as {(ad_id, hour epoch seconds): clicks}."""
    rows = query(settings, "SELECT ad_id, extract(epoch FROM hour)::bigint, clicks FROM clicks_1h")
    return {(ad, int(hour)): int(clicks) for ad, hour, clicks in rows}


def hours_from_minutes(per_minute: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Roll per-minute counts up to hours, the way clicks_1h must hold them."""
    hours: Counter[tuple[str, int]] = Counter()
    for (ad, minute), clicks in per_minute.items():
        hours[(ad, minute - minute % 3600)] += clicks
    return dict(hours)


def duplicate_click_ids(settings: Settings) -> int:
    """How many click_ids raw_clicks holds more than once (must be 0)."""
    rows = query(
        settings,
        "SELECT count(*) FROM (SELECT click_id FROM raw_clicks"
        " GROUP BY click_id HAVING count(*) > 1) AS d",
    )
    return int(rows[0][0])


def read_topic(
    settings: Settings, topic: str, expected: int, timeout_s: float = 30, *, keyed: bool = False
) -> list[Any]:
    """Every message of a one-partition topic, as decoded JSON, waiting for ``expected``.

    With ``keyed``, each message is a (key, decoded JSON) pair.
    """
    consumer = Consumer(
        settings.kafka_client_config(
            **{"group.id": f"reader-{time.monotonic_ns()}", "enable.auto.commit": False}
        )
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    messages.append(_decoded(message, keyed))
        # Anything beyond what was expected would be a bug too: give it a moment to show.
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                messages.append(_decoded(message, keyed))
    finally:
        consumer.close()
    return messages


def _decoded(message: Any, keyed: bool) -> Any:
    value = orjson.loads(message.value())
    return (message.key(), value) if keyed else value


def load(settings: Settings, spec: LoadSpec) -> Truth:
    """Send what ``spec`` generates to the clicks topic; returns the exact truth of it."""
    truth = TruthAccumulator.for_spec(spec)
    send_blocks(generate(spec), make_producer(settings), settings.clicks_topic, truth=truth)
    return truth.to_truth()


def recent_spec(events: int, seed: int, **options: Any) -> LoadSpec:
    """A load whose event time ends a few minutes before now (nothing lands in the future)."""
    event_rate = options.pop("event_rate", 2_000.0)
    span_ms = int(events * 1000 / event_rate)
    start_ms = (int(time.time() * 1000) - span_ms - 300_000) // 60_000 * 60_000
    return LoadSpec(events=events, start_ms=start_ms, seed=seed, event_rate=event_rate, **options)


def click_at(ad: str, at: datetime, user: str) -> dict[str, object]:
    """A click on ``ad`` by ``user`` at ``at`` (from Germany, one address)."""
    return {
        "ad_id": ad,
        "timestamp": int(at.timestamp() * 1000),
        "user_id": user,
        "ip": "10.0.0.1",
        "country": "DE",
    }


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds, or fail the test naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def committed_offsets(settings: Settings) -> int:
    """Sum of the next offsets the ingest group has committed (its progress)."""
    rows = query(
        settings,
        "SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets WHERE consumer_group = %s",
        settings.consumer_group,
    )
    return int(rows[0][0])


def restart_database(settings: Settings, down_s: float) -> None:
    """Crash the session's PostgreSQL (``pg_ctl stop -m immediate``: every session is cut
    off, nothing is checkpointed) and start it again ``down_s`` seconds later."""
    cluster = TimescaleCluster(settings.state_dir, local_targets(settings).db_port)
    cluster.stop(immediate=True)
    time.sleep(down_s)
    cluster.start()
