"""The ingest counters, as Prometheus scrapes them from a running ``adclick ingest``."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from adclick.settings import Settings
from tests.conftest import free_port
from tests.helpers import ingest_process, load, recent_spec, wait_for


def scrape(port: int) -> dict[str, float]:
    """Samples by name (labels summed), or {} while the server is not up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return samples


def test_two_worker_processes_report_their_counters_through_one_endpoint(
    settings: Settings,
) -> None:
    spec = recent_spec(20_000, seed=3, ads=1_000, duplicate_fraction=0.05, invalid_fraction=0.05)
    truth = load(settings, spec)
    port = free_port()
    worker = ingest_process(
        settings, "--workers", "2", "--metrics-port", str(port), "--exit-when-idle", "30"
    )
    try:
        wait_for(
            lambda: scrape(port).get("adclick_ingest_events_consumed_total", 0) >= 20_000,
            120,
            "the workers to consume everything",
        )
        samples = scrape(port)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert worker.returncode == 0
    consumed = samples["adclick_ingest_events_consumed_total"]
    inserted = samples["adclick_ingest_events_inserted_total"]
    duplicates = samples["adclick_ingest_events_duplicate_total"]
    dead = samples["adclick_ingest_events_dead_lettered_total"]
    assert consumed == 20_000
    assert inserted == truth.total
    assert consumed == inserted + duplicates + dead
    assert dead > 0 and duplicates > 0
    assert samples["adclick_ingest_batch_duration_seconds_count"] > 0
    # Everything was consumed and committed: no partition lags.
    assert samples["adclick_ingest_consumer_lag_messages"] == 0
