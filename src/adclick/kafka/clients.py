"""Factories for confluent-kafka clients, so every client shares one configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from adclick.errors import ConfigurationError
from adclick.kafka.errors import KafkaClientError
from adclick.settings import Settings


def producer_config(
    settings: Settings, tuning: Mapping[str, Any] | None = None, /, **required: Any
) -> dict[str, Any]:
    """A producer's configuration, tuned for throughput (``tuning`` adds to that; the
    operator's ADCLICK_KAFKA_CONFIG wins over both); ``required``: what the caller needs
    for correctness (callbacks, idempotence)."""
    defaults = {
        "linger.ms": 20,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "acks": "all",
        **(tuning or {}),
    }
    return settings.kafka_client_config(defaults, **required)


def make_producer(
    settings: Settings, tuning: Mapping[str, Any] | None = None, /, **required: Any
) -> Producer:
    """A producer (see ``producer_config``)."""
    return Producer(producer_config(settings, tuning, **required))


def consumer_config(settings: Settings, **required: Any) -> dict[str, Any]:
    """A consumer of the ingest group whose offsets live in the database, not in Kafka:
    committing or storing offsets in Kafka is refused whatever ADCLICK_KAFKA_CONFIG says.
    ``required`` replaces the group and adds what the caller needs."""
    defaults: dict[str, Any] = {
        "fetch.max.bytes": 52_428_800,
        "queued.max.messages.kbytes": 262_144,
    }
    # KIP-848's protocol (group.protocol consumer, the operator's choice) keeps sessions
    # and assignment on the broker: librdkafka refuses these settings beside it.
    if not _broker_assigns(settings.kafka_config):
        defaults |= {
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": max(500, settings.kafka_session_timeout_ms // 6),
            "partition.assignment.strategy": "roundrobin",
        }
    required = {
        "group.id": settings.consumer_group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # A partition with no stored position is read from its start: "latest" would
        # skip the clicks already in it.
        "auto.offset.reset": "earliest",
        **required,
    }
    return settings.kafka_client_config(defaults, **required)


def member_config(settings: Settings, member: str) -> dict[str, Any]:
    """The ingest consumer of worker ``member`` (see ``consumer_config``).

    An operator's group.instance.id (static membership: a restarted member keeps its
    partitions without a rebalance) names the host, and each worker process gets its own,
    ``<id>-<member>``: members sharing one either fence each other out of the group in
    turn, or, on the local broker, both get every partition and read it twice."""
    operator = dict(settings.kafka_config)
    required = {"client.id": f"adclick-{member}"}
    instance = operator.pop("group.instance.id", None)
    if instance is not None:
        required["group.instance.id"] = f"{instance}-{member}"
    return consumer_config(settings.model_copy(update={"kafka_config": operator}), **required)


def incremental_rebalancing(config: Mapping[str, Any]) -> bool:
    """Whether a consumer of ``config`` rebalances incrementally: a rebalance then hands it
    only the partitions it gains or loses, to be added with ``incremental_assign`` and taken
    away with ``incremental_unassign`` (the whole assignment otherwise). So it is with the
    cooperative-sticky assignor and with the broker-side protocol of KIP-848
    (group.protocol consumer); an operator may choose either in ADCLICK_KAFKA_CONFIG."""
    strategy = str(config.get("partition.assignment.strategy", "")).lower()
    return _broker_assigns(config) or "cooperative-sticky" in strategy


def _broker_assigns(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` chooses KIP-848's group protocol (group.protocol consumer)."""
    return str(config.get("group.protocol", "classic")).lower() == "consumer"


def make_consumer(settings: Settings, **required: Any) -> Consumer:
    """A consumer (see ``consumer_config``)."""
    return Consumer(consumer_config(settings, **required))


def create_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create adclick's topics when missing; returns the names it created."""
    admin = AdminClient(settings.kafka_client_config())
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise KafkaClientError.of(
            f"Kafka at {settings.kafka_bootstrap_servers} is not reachable", exc
        ) from exc
    wanted = {
        settings.clicks_topic: settings.topic_partitions,
        settings.dlq_topic: 1,
        settings.top_ads_topic: 1,
    }
    missing = [
        NewTopic(
            name, num_partitions=partitions, replication_factor=settings.topic_replication_factor
        )
        for name, partitions in wanted.items()
        if name not in existing
    ]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaClientError.of(f"cannot create topic {name}", exc) from exc
    return created


def check_sharded_topic(
    client: Consumer | Producer, settings: Settings, timeout_s: float = 10.0
) -> None:
    """With shards, the clicks topic must have exactly ADCLICK_TOPIC_PARTITIONS partitions
    (a topic not created yet is let be: `adclick topics` makes it so).

    Fewer, and the shards owning the missing ones never get a click while, under a named
    ADCLICK_SHARD_PARTITIONER, clicks of ads mapped to them are dead-lettered as
    misrouted; more, and the extra partitions belong to no shard."""
    if not settings.shards:
        return
    topic = settings.clicks_topic
    metadata = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
    partitions = len(metadata.partitions) if metadata is not None else 0
    if partitions and partitions != settings.topic_partitions:
        raise ConfigurationError(
            f"the clicks topic {topic!r} has {partitions} partitions, ADCLICK_SHARDS and "
            f"ADCLICK_TOPIC_PARTITIONS divide {settings.topic_partitions}: every shard owns "
            "partitions of the topic as it is; change the settings or the topic"
        )


def the_only_partition(
    client: Consumer | Producer, topic: str, timeout_s: float = 10.0
) -> TopicPartition:
    """Partition 0 of the top-lists ``topic``, which must be its only one (a topic not
    created yet counts as one). Every list and revision goes to one partition: one order,
    which the closer's recovery and the API's subscribers read; a topic made with more
    partitions would spread lists the readers never see, so it is refused."""
    metadata = client.list_topics(topic, timeout=timeout_s).topics.get(topic)
    partitions = len(metadata.partitions) if metadata is not None else 0
    if partitions > 1:
        raise ConfigurationError(
            f"the top-lists topic {topic!r} has {partitions} partitions; adclick keeps "
            "every list in one partition (one order for all lists and their revisions): "
            "recreate it with 1 partition (adclick creates it so when it is missing)"
        )
    return TopicPartition(topic, 0)
