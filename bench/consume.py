"""CPU per message for the ingest worker's consumer to read a preloaded topic.

    uv run python -m bench.consume [--events 3000000] [--partitions 8]

Preloads a fresh topic on the local stack with loadgen clicks, then reads all of it twice
with the ingest consumer (``consume()`` of 50,000-message batches): once as the worker is
configured (librdkafka's default prefetch, ``queued.min.messages`` 100,000 per
partition), once with a prefetch of 1,000,000. Prints wall seconds and the process's CPU
per message (librdkafka's threads included). Alone, the large prefetch reads faster and
cheaper; inside the workers the result was mixed (docs/benchmarks.md), which is why the
worker keeps the default.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from confluent_kafka import TopicPartition

from adclick.kafka import make_producer
from adclick.kafka.clients import create_topics, make_consumer
from adclick.loadgen.generator import LoadSpec, generate
from adclick.loadgen.send import send_blocks
from adclick.settings import Settings
from adclick.stack.lifecycle import stack_up
from bench.environment import delete_topics, this_machine

LARGE_PREFETCH = {"queued.min.messages": 1_000_000}
STALL_S = 30.0  # a healthy local broker pauses well under a second between fetches


def _read_all(settings: Settings, events: int, overrides: dict[str, int]) -> dict[str, float]:
    consumer = make_consumer(
        settings.model_copy(update={"consumer_group": f"bench-consume-{uuid.uuid4().hex}"}),
        **overrides,
    )
    consumer.assign(
        [TopicPartition(settings.clicks_topic, p, 0) for p in range(settings.topic_partitions)]
    )
    read = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    last_message = time.monotonic()
    while read < events:
        messages = consumer.consume(50_000, 0.25)
        if messages:
            read += len(messages)
            last_message = time.monotonic()
        elif time.monotonic() - last_message > STALL_S:
            consumer.close()
            raise SystemExit(
                f"no message for {STALL_S:.0f} s after {read:,} of {events:,}: is the broker up?"
            )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    consumer.close()
    return {"wall_s": round(wall, 2), "cpu_us_per_message": round(1e6 * cpu / read, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    base = Settings()
    stack_up(base, lambda message: print(f"stack: {message}"))
    settings = base.model_copy(
        update={
            "clicks_topic": f"bench-consume-{int(time.time())}",
            "topic_partitions": args.partitions,
        }
    )
    create_topics(settings)
    try:
        spec = LoadSpec(events=args.events, start_ms=1_720_483_200_000, seed=1)
        report = send_blocks(generate(spec), make_producer(settings), settings.clicks_topic)
        print(f"preloaded: {report.summary()}")
        result = {
            "events": report.sent,
            "machine": this_machine().describe(),
            "worker_prefetch": _read_all(settings, report.sent, {}),
            "large_prefetch": _read_all(settings, report.sent, LARGE_PREFETCH),
        }
    finally:
        delete_topics(settings, [settings.clicks_topic])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
