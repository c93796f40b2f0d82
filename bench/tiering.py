"""``python -m bench tiering``: export throughput to cold storage, and cold size vs hot size.

Fills one day-chunk of raw_clicks with synthetic clicks shaped like the loadgen's (Zipf
ads, the country mix, 32-character click ids, IPv4 addresses, a few attributes on some
clicks), written directly with COPY, then moves stream time a week past it and times
``Maintainer.run``: export, read-back verification, catalogue, drop.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from adclick.db.connect import connect
from adclick.db.migrate import upgrade
from adclick.lifecycle.tiering import Maintainer
from adclick.loadgen.generator import LoadSpec, _Draws, ad_id, ad_id_width
from adclick.settings import Settings
from bench.environment import bench_database_settings, ensure_database_cluster

DATABASE = "adclick_bench_tiering"
DAY_START = datetime(2026, 1, 1, tzinfo=UTC)
BLOCK = 200_000


def _rows(events: int, ads: int, zipf: float, seed: int) -> Any:
    start_ms = int(DAY_START.timestamp() * 1000)
    spec = LoadSpec(events=events, start_ms=start_ms, ads=ads, zipf=zipf, seed=seed)
    rng = np.random.default_rng(seed)
    draws = _Draws(spec, rng)
    width = ad_id_width(ads)
    day_us = 86_400 * 1_000_000
    for first in range(0, events, BLOCK):
        n = min(BLOCK, events - first)
        ad = draws.ads(n)
        country = draws.countries(n)
        offsets = np.sort(rng.integers(0, day_us, n))
        ips = rng.integers(0, 2**32, n, dtype=np.uint64)
        users = rng.integers(0, 5_000_000, n)
        for i in range(n):
            ip = int(ips[i])
            attributes = f'{{"app": "{ip % 700}", "os": "{ip % 50}"}}' if i % 3 == 0 else "{}"
            yield (
                DAY_START + timedelta(microseconds=int(offsets[i])),
                f"{seed:08x}{first + i:024x}",
                ad_id(int(ad[i]), width),
                f"user-{users[i]}",
                f"{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}",
                str(spec.country_codes[int(country[i])]),
                attributes,
                i % 8,
                first + i,
            )


def tiering(base: Settings, events: int, ads: int, zipf: float, cold_dir: Path) -> dict[str, Any]:
    ensure_database_cluster(base)
    settings = bench_database_settings(base, DATABASE, recreate=True).model_copy(
        update={"cold_storage_url": str(cold_dir), "clicks_topic": "bench-tiering-clicks"}
    )
    upgrade(settings)
    started = time.perf_counter()
    with connect(settings) as conn, conn.cursor() as cur:
        columns = (
            "ts, click_id, ad_id, user_id, ip, country, attributes, kafka_partition, kafka_offset"
        )
        with cur.copy(f"COPY raw_clicks ({columns}) FROM STDIN") as copy:
            for row in _rows(events, ads, zipf, seed=5):
                copy.write_row(row)
        # Stream time a week and a day past the chunk: it is past raw clicks' hot time.
        cur.execute(
            "INSERT INTO partition_watermarks (topic, kafka_partition, max_event_time, watermark)"
            " VALUES (%s, 0, %s, %s)",
            (settings.clicks_topic, DAY_START + timedelta(days=9), DAY_START + timedelta(days=9)),
        )
        conn.commit()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    report = Maintainer(settings, say=lambda message: None).run()
    tier_s = time.perf_counter() - started
    with connect(settings) as conn:
        rows, cold_bytes, hot_bytes = conn.execute(
            "SELECT sum(rows), sum(bytes), sum(hot_bytes) FROM cold_files"
        ).fetchone() or (0, 0, 0)
    millions = int(rows) / 1e6
    return {
        "run": "tiering",
        "events": events,
        "exported_chunks": report.exported,
        "load_s": round(load_s, 1),
        "tier_s": round(tier_s, 1),
        "export_rows_per_s": round(int(rows) / tier_s),
        "hot_mb_per_million": round(int(hot_bytes) / 1e6 / millions, 1),
        "cold_mb_per_million": round(int(cold_bytes) / 1e6 / millions, 1),
        "hot_to_cold_ratio": round(int(hot_bytes) / int(cold_bytes), 1),
    }
