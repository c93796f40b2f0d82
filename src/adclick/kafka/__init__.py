"""Kafka clients configured from the settings, and the topics adclick uses."""

from adclick.kafka.clients import create_topics, make_consumer, make_producer, the_only_partition

__all__ = ["create_topics", "make_consumer", "make_producer", "the_only_partition"]
