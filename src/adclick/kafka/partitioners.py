"""The partition a producer gives a click, from its key (the ad id), as the producer's
own partitioner computes it: which shard holds an ad (ADCLICK_SHARDS) follows from it.

Two partitioners are reproduced, by their librdkafka names (ADCLICK_SHARD_PARTITIONER):

- ``consistent_random``: librdkafka's default (so confluent-kafka's, and adclick's own
  collector's and load generator's): CRC-32 of the key modulo the partition count.
- ``murmur2_random``: the Java client's default: murmur2 of the key, made positive,
  modulo the partition count (kafka-python's implementation of the Java client's hash).

tests/integration/test_partitioners.py checks both against librdkafka's on a real broker.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adclick.settings import Settings

ALL = "all"  # the producers' partitioner is not known: every shard is asked


def partition_of(key: bytes, partitions: int, partitioner: str) -> int:
    """The partition of a message with this key among ``partitions``."""
    if partitioner == "consistent_random":
        return zlib.crc32(key) % partitions
    if partitioner == "murmur2_random":
        # Imported when used: the package imports all of kafka-python (~0.2 s).
        from kafka.partitioner.default import murmur2

        return (int(murmur2(key)) & 0x7FFFFFFF) % partitions
    raise ValueError(f"partitioner {partitioner!r} does not place keys")


def owning_shards(settings: Settings, ad_ids: Sequence[str]) -> list[int]:
    """The positions in ``settings.shards`` of the shards holding these ads' counts: those
    owning the ads' partitions, or every shard when the partitioner is not known."""
    if not settings.shards:
        return [0]
    if settings.shard_partitioner == ALL:
        return list(range(len(settings.shards)))
    owner = {p: index for index, shard in enumerate(settings.shards) for p in shard.partitions}
    partitions, partitioner = settings.topic_partitions, settings.shard_partitioner
    return sorted({owner[partition_of(ad.encode(), partitions, partitioner)] for ad in ad_ids})
