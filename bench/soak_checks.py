"""What the soak checks at its end, against the exact truth of everything it sent.

The truth of a long soak has tens of millions of (minute, ad, country) keys, so rollups
are compared as sorted numpy key arrays (TruthAccumulator's encoding), not as dicts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from psycopg import sql

from adclick.db.connect import connect
from adclick.db.copy_stream import csv_reader
from adclick.kafka import make_consumer
from adclick.lifecycle.reconcile import reconcile
from adclick.loadgen.generator import Block
from adclick.loadgen.truth import TruthAccumulator
from adclick.settings import Settings

IntArray = np.ndarray


class SharedTruth:
    """A TruthAccumulator several sender threads add to."""

    def __init__(self, accumulator: TruthAccumulator, lock: threading.Lock) -> None:
        self.accumulator = accumulator
        self._lock = lock

    def add(self, block: Block) -> None:
        with self._lock:
            self.accumulator.add(block)


def rollups_equal_truth(settings: Settings, truth: TruthAccumulator) -> dict[str, Any]:
    """Rows of clicks_1m_by_country, clicks_1m and clicks_1h that differ from the truth."""
    keys, counts = truth.counts()
    countries = len(truth.country_codes)
    by_ad = _summed(keys // countries, counts)  # (minute * ads + ad - 1)
    minute, ad0 = np.divmod(by_ad[0], truth.ads)
    by_hour = _summed((minute // 60) * truth.ads + ad0, by_ad[1])
    stored = {
        "clicks_1m_by_country": _stored(settings, truth, "clicks_1m_by_country", "minute"),
        "clicks_1m": _stored(settings, truth, "clicks_1m", "minute"),
        "clicks_1h": _stored(settings, truth, "clicks_1h", "hour"),
    }
    expected = {
        "clicks_1m_by_country": (keys, counts),
        "clicks_1m": by_ad,
        "clicks_1h": by_hour,
    }
    out: dict[str, Any] = {"clicks": int(counts.sum())}
    for table, (want_keys, want_counts) in expected.items():
        got_keys, got_counts = stored[table]
        differing = _differences(want_keys, want_counts, got_keys, got_counts)
        out[table] = {
            "rows": len(want_keys),
            "differing": len(differing),
            # (key as the truth encodes it, sent, stored): where to look when it fails
            "first_differing": differing[:5],
        }
    return out


def _summed(keys: IntArray, counts: IntArray) -> tuple[IntArray, IntArray]:
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
    return keys[starts], np.add.reduceat(counts, starts) if len(keys) else counts


def _stored(
    settings: Settings, truth: TruthAccumulator, table: str, bucket: str
) -> tuple[IntArray, IntArray]:
    """A rollup's rows encoded like the truth's keys (minutes or hours since the epoch)."""
    country = table.endswith("_by_country")
    statement = sql.SQL(
        "COPY (SELECT (extract(epoch FROM {bucket}) / 60)::bigint, ad_id{country}, clicks "
        "FROM {table}) TO STDOUT (FORMAT CSV)"
    ).format(
        bucket=sql.Identifier(bucket),
        country=sql.SQL(", country" if country else ""),
        table=sql.Identifier(table),
    )
    names = ["m", "ad", *(["c"] if country else []), "n"]
    types = {"m": pa.int64(), "ad": pa.string(), "c": pa.string(), "n": pa.int64()}
    with connect(settings) as conn, conn.cursor().copy(statement) as copy:
        data = csv_reader(copy, {n: types[n] for n in names}).read_all()
    m = np.asarray(data.column("m").to_numpy(), dtype=np.int64)
    ads = data.column("ad").to_pylist()
    ad0 = np.fromiter((int(a[2:]) - 1 for a in ads), dtype=np.int64, count=len(ads))
    n = np.asarray(data.column("n").to_numpy(), dtype=np.int64)
    if bucket == "hour":
        m = m // 60
    keys = m * truth.ads + ad0
    if country:
        index = {code: i for i, code in enumerate(truth.country_codes)}
        codes = np.fromiter((index[c] for c in data.column("c").to_pylist()), dtype=np.int64)
        keys = keys * len(truth.country_codes) + codes
    return _summed(keys, n)


def _differences(
    want_keys: IntArray, want: IntArray, got_keys: IntArray, got: IntArray
) -> list[tuple[int, int, int]]:
    """(key, sent, stored) of every key whose stored count is not the truth's."""
    every = np.union1d(want_keys, got_keys)
    expected = np.zeros(len(every), dtype=np.int64)
    stored = np.zeros(len(every), dtype=np.int64)
    expected[np.searchsorted(every, want_keys)] = want
    stored[np.searchsorted(every, got_keys)] = got
    wrong = np.flatnonzero(expected != stored)
    return [(int(every[i]), int(expected[i]), int(stored[i])) for i in wrong]


def reconciled(settings: Settings, start: datetime, end: datetime) -> dict[str, Any]:
    """``adclick reconcile`` over the run: rollups recomputed from raw clicks, hot and cold."""
    report = reconcile(settings, start, end)
    return {"discrepancies": len(report.discrepancies), "rows_checked": report.rows_checked}


def dead_letters(
    settings: Settings, expected_at_least: int, timeout_s: float = 60.0
) -> tuple[Counter[str], int]:
    """The dead-letter topic's messages (read from its beginning) by reason, one per origin
    (topic, partition, offset of the rejected message), and how many repeated an origin.

    Dead letters are delivered at least once (docs/events.md): a batch read again after a
    crash publishes its dead letters again, each naming its origin, which is how a
    consumer (and this check) recognises the repeat.
    """
    consumer: Consumer = make_consumer(
        settings, **{"group.id": f"soak-dlq-check-{id(settings)}", "enable.auto.commit": False}
    )
    metadata = consumer.list_topics(settings.dlq_topic, timeout=10)
    partitions = list(metadata.topics[settings.dlq_topic].partitions)
    consumer.assign([TopicPartition(settings.dlq_topic, p, OFFSET_BEGINNING) for p in partitions])
    reasons: Counter[str] = Counter()
    origins: set[tuple[Any, Any, Any]] = set()
    repeats = 0
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            if len(origins) >= expected_at_least and time.monotonic() - idle_since > 5:
                break
            continue
        idle_since = time.monotonic()
        letter = orjson.loads(message.value() or b"{}")
        origin = (letter.get("topic"), letter.get("partition"), letter.get("offset"))
        if origin in origins:
            repeats += 1
            continue
        origins.add(origin)
        reasons[str(letter.get("reason"))] += 1
    consumer.close()
    return reasons, repeats


def subscription_in_order(
    received: list[tuple[int, int]], published: list[tuple[int, int]]
) -> dict[str, Any]:
    """Whether the subscriber got each published (window end, revision) once, in order."""
    seen = Counter(received)
    start = published.index(received[0]) if received and received[0] in published else 0
    expected = published[start:]
    return {
        "received": len(received),
        "published_since_subscribing": len(expected),
        "repeated": sum(n - 1 for n in seen.values() if n > 1),
        "missing": len(set(expected) - set(received)),
        "in_order": received[: len(expected)] == expected,
    }
