"""Workers joining and leaving the ingest group mid-stream count exactly, whichever
rebalance protocol the operator's ADCLICK_KAFKA_CONFIG selects: the eager one adclick
sets by default, or the cooperative one (partition.assignment.strategy
cooperative-sticky), in which a rebalance moves only some partitions and the callbacks
must add or take away just those (before, the worker assigned them as the whole
assignment, librdkafka refused, and no worker of such a group ever committed)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from concurrent.futures import Future
from typing import Any

import psycopg
import pytest

from adclick.errors import DependencyUnavailableError
from adclick.ingest import worker as worker_module
from adclick.ingest.batch import Batch
from adclick.ingest.worker import IngestWorker
from adclick.settings import ProcessKind, Settings
from tests.conftest import free_port
from tests.helpers import (
    committed_offsets,
    ingest_process,
    load,
    recent_spec,
    rollup_counts,
    wait_for,
)

# The operator's ADCLICK_KAFKA_CONFIG choosing the group's rebalance protocol. KIP-848's
# (group.protocol consumer), incremental too, needs a broker that serves it: Tansu does
# not (a worker gets no partitions), so only its configuration is tested (test_kafka_config).
PROTOCOLS = {
    "eager": {"partition.assignment.strategy": "roundrobin"},
    "cooperative": {"partition.assignment.strategy": "cooperative-sticky"},
}


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    text = err.decode()
    assert process.returncode == 0, text[-3000:]
    return text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_workers_joining_and_leaving_mid_stream_count_exactly(
    settings: Settings, protocol: str
) -> None:
    spec = recent_spec(80_000, seed=31, ads=2_000, duplicate_fraction=0.02)
    truth = load(settings, spec)
    group = settings.model_copy(
        update={
            "ingest_batch_size": 1_000,
            "kafka_config": {**settings.kafka_config, **PROTOCOLS[protocol]},
        }
    )
    first = ingest_process(group, "--workers", "1")
    second = third = None
    try:
        wait_for(lambda: committed_offsets(settings) > 0, 90, "the first worker to commit")
        # A second worker joins: a rebalance while the first one has a batch in flight.
        second = ingest_process(group, "--workers", "1")
        progress = committed_offsets(settings)
        wait_for(
            lambda: committed_offsets(settings) > progress + 10_000, 90, "both workers to commit"
        )
        # The first leaves and a third joins while the stream is still being read.
        _stop(first)
        third = ingest_process(group, "--workers", "1")
        wait_for(lambda: committed_offsets(settings) == spec.events, 180, "everything committed")
    finally:
        for process in (first, second, third):
            if process is not None and process.poll() is None:
                _stop(process)
    assert rollup_counts(settings) == truth.by_ad_minute


class _Consumer:
    """The part of a consumer a revocation uses."""

    def unassign(self) -> None:
        raise AssertionError("the callback should have given up before this")


def test_a_rebalance_callback_gives_up_on_the_database_within_its_bound(
    settings: Settings, monkeypatch: Any
) -> None:
    # The group waits for a worker inside a rebalance callback: its database retries
    # there are bounded apart from (and far shorter than) the main loop's 120 s.
    monkeypatch.setattr(worker_module, "REBALANCE_DATABASE_RETRY_S", 2.0)
    worker = IngestWorker(settings.for_process(ProcessKind.INGEST))
    try:
        failed: Future[Any] = Future()
        failed.set_exception(psycopg.OperationalError("server closed the connection"))
        worker._pending = worker_module._Pending(failed, Batch(topic="t"), time.perf_counter())
        # The database is gone: nothing listens on its port any more.
        worker.settings = settings.model_copy(
            update={"database_url": f"postgresql://adclick@127.0.0.1:{free_port()}/adclick"}
        )
        started = time.monotonic()
        with pytest.raises(DependencyUnavailableError):
            worker._on_revoke(_Consumer(), [])  # type: ignore[arg-type]
        assert time.monotonic() - started < 15
    finally:
        worker._consumer.close()


def test_static_members_of_one_host_read_each_partition_once(settings: Settings) -> None:
    # group.instance.id names the host; its workers must not share it (on the local
    # broker both got every partition and read everything twice; Kafka fences one).
    spec = recent_spec(30_000, seed=37, ads=1_000)
    truth = load(settings, spec)
    static = settings.model_copy(
        update={"kafka_config": {**settings.kafka_config, "group.instance.id": "host-a"}}
    )
    supervisor = ingest_process(static, "--workers", "2", "--exit-when-idle", "5")
    _out, err = supervisor.communicate(timeout=240)
    text = err.decode()
    assert supervisor.returncode == 0, text[-3000:]
    consumed = [int(n) for n in re.findall(r"done: WorkerTotals\(consumed=(\d+)", text)]
    assert len(consumed) == 2 and sum(consumed) == spec.events, consumed
    assert rollup_counts(settings) == truth.by_ad_minute
