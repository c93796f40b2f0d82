"""Microseconds per click of the ingest worker's own CPU work: a batch of loadgen messages
validated into staging rows (``assemble_batch``), then summed into rollup deltas.

    uv run python -m bench.assemble_batch [--events 200000] [--batch 50000]

No broker and no database: what the worker spends per click before its writer thread
takes over, to compare changes to the batch's data structures in one run. Best of seven
passes over the same messages.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

from adclick.ingest.aggregate import aggregate
from adclick.ingest.batch import KafkaRecord, assemble_batch
from adclick.ingest.clock import PartitionClocks
from adclick.loadgen.generator import LoadSpec, generate
from adclick.time_units import HOUR_MS
from bench.environment import this_machine

START_MS = 1_720_483_200_000


@dataclass(frozen=True)
class _Message:
    """The part of a consumed Kafka message that assemble_batch reads."""

    part: int
    off: int
    payload: bytes
    message_key: bytes

    def partition(self) -> int:
        return self.part

    def offset(self) -> int:
        return self.off

    def key(self) -> bytes:
        return self.message_key

    def value(self) -> bytes:
        return self.payload

    def timestamp(self) -> tuple[int, int]:
        return (1, START_MS)


def _messages(events: int) -> list[KafkaRecord]:
    spec = LoadSpec(events=events, start_ms=START_MS, seed=1)
    messages: list[KafkaRecord] = []
    for block in generate(spec):
        for key, payload in zip(block.keys, block.payloads, strict=True):
            offset = len(messages)
            messages.append(_Message(offset % 8, offset, payload, key))
    return messages


def _best_us(messages: list[KafkaRecord], batch_size: int) -> tuple[float, float]:
    """Best microseconds per message of assembling, and of aggregating, the batches."""
    best_assemble = best_aggregate = float("inf")
    batches = [messages[i : i + batch_size] for i in range(0, len(messages), batch_size)]
    for _ in range(7):
        clocks = PartitionClocks(lateness_ms=HOUR_MS, horizon_ms=24 * HOUR_MS)
        assembling = aggregating = 0.0
        for records in batches:
            started = time.perf_counter()
            batch = assemble_batch(records, "ad-clicks", clocks, START_MS + HOUR_MS, HOUR_MS)
            assembled = time.perf_counter()
            aggregate(batch.rows, batch.attributes, ("country",))
            aggregating += time.perf_counter() - assembled
            assembling += assembled - started
        best_assemble = min(best_assemble, assembling)
        best_aggregate = min(best_aggregate, aggregating)
    return (
        round(1e6 * best_assemble / len(messages), 3),
        round(1e6 * best_aggregate / len(messages), 3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()
    assemble_us, aggregate_us = _best_us(_messages(args.events), args.batch)
    print(
        json.dumps(
            {
                "events": args.events,
                "batch": args.batch,
                "machine": this_machine().describe(),
                "assemble_batch_us": assemble_us,
                "aggregate_us": aggregate_us,
            }
        )
    )


if __name__ == "__main__":
    main()
