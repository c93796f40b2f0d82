"""adclick's copies of the producers' partitioners (kafka/partitioners.py) place every
key where librdkafka's own partitioner, configured the same way, places it on a real
broker: which shard adClicks reads an ad from (ADCLICK_SHARD_PARTITIONER) depends on it."""

from __future__ import annotations

import random
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Message
from confluent_kafka.admin import AdminClient, NewTopic

from adclick.errors import ConfigurationError
from adclick.kafka.clients import check_sharded_topic, consumer_config, make_producer
from adclick.kafka.partitioners import owning_shards, partition_of
from adclick.settings import Settings, Shard

PARTITIONS = 13  # not a power of two: a wrong modulo or sign shows


def keys(count: int) -> list[bytes]:
    """Ad ids as loadgen writes them, and arbitrary non-empty bytes of every length
    class murmur2 treats apart (length mod 4), high bits set (the sign of the hash)."""
    rng = random.Random(11)
    made = [f"ad{n:07d}".encode() for n in rng.sample(range(2_000_000), count // 2)]
    while len(made) < count:
        made.append(rng.randbytes(rng.randint(1, 40)))
    return made


@pytest.mark.parametrize("partitioner", ["consistent_random", "murmur2_random"])
def test_each_key_goes_where_librdkafka_puts_it(settings: Settings, partitioner: str) -> None:
    topic = f"partitioners-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka_client_config())
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=30)
    placed: dict[bytes, int] = {}

    def delivered(error: KafkaError | None, message: Message) -> None:
        assert error is None, error
        key = message.key()
        assert key is not None
        placed[key] = message.partition()

    producer = make_producer(settings, {"partitioner": partitioner}, on_delivery=delivered)
    sent = keys(400)
    for key in sent:
        producer.produce(topic, value=b"{}", key=key)
    assert producer.flush(30) == 0
    assert len(placed) == len(set(sent))
    assert {k: partition_of(k, PARTITIONS, partitioner) for k in placed} == placed
    assert len(set(placed.values())) == PARTITIONS  # every partition was reached


def test_the_owning_shards_are_those_of_the_ads_partitions(settings: Settings) -> None:
    shards = [
        Shard(url="postgresql://127.0.0.1:1/a", partitions=[0, 2]),
        Shard(url="postgresql://127.0.0.1:2/a", partitions=[1, 3]),
    ]
    sharded = Settings(**{**settings.model_dump(), "shards": shards, "topic_partitions": 4})
    ads = [f"ad{n:07d}" for n in range(50)]
    assert owning_shards(sharded, ads) == [0, 1]  # all routing: every shard
    routed = sharded.model_copy(update={"shard_partitioner": "consistent_random"})
    for ad in ads:
        partition = partition_of(ad.encode(), 4, "consistent_random")
        assert owning_shards(routed, [ad]) == [partition % 2]
    assert owning_shards(settings, ads) == [0]  # no shards: the one database


@pytest.mark.parametrize("actual", [3, 4, 5])
def test_shards_start_only_on_a_topic_of_the_partitions_they_divide(
    settings: Settings, actual: int
) -> None:
    """Fewer partitions than ADCLICK_TOPIC_PARTITIONS: a shard never gets a click and, under
    a named partitioner, its ads' clicks are dead-lettered as misrouted; more: partitions
    of no shard. Ingest refuses to start on either, naming both counts."""
    topic = f"sharded-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka_client_config())
    admin.create_topics([NewTopic(topic, actual, 1)])[topic].result(timeout=30)
    shards = [
        Shard(url="postgresql://127.0.0.1:1/a", partitions=[0, 1]),
        Shard(url="postgresql://127.0.0.1:2/a", partitions=[2, 3]),
    ]
    sharded = Settings(
        **{**settings.model_dump(), "shards": shards, "topic_partitions": 4, "clicks_topic": topic}
    )
    consumer = Consumer(consumer_config(sharded, **{"group.id": "check"}))
    try:
        check_sharded_topic(consumer, settings.model_copy(update={"clicks_topic": topic}))
        if actual == 4:
            check_sharded_topic(consumer, sharded)
        else:
            with pytest.raises(ConfigurationError, match=f"has {actual} partitions"):
                check_sharded_topic(consumer, sharded)
    finally:
        consumer.close()
