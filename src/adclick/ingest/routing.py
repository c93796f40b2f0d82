"""With ADCLICK_SHARDS, every ad lives in exactly one shard: that is what keeps a shard's
duplicates its own and the shards' exact top lists mergeable into the exact global one.
It holds only if every click comes keyed by its ad id, so that the producers'
partitioner puts all of an ad's clicks in one partition (docs/operations.md, Shards).

A click that is not (a producer without keys, or keyed by user; a Java producer where
ADCLICK_SHARD_PARTITIONER says librdkafka's) is dead-lettered as ``misrouted`` instead of
counted: counted, its ad would be split over two shards, a retry landing in the other
one counted twice, and adClicks would miss what is not in the ad's own shard. The dead
letter keeps the click whole, to be sent again with the right key.
"""

from __future__ import annotations

from adclick.errors import InvalidEventError
from adclick.events.dead_letter import DeadLetterReason
from adclick.kafka.partitioners import ALL, partition_of
from adclick.settings import Settings


class Routing:
    """Checks that a click's message is keyed by its ad and in its ad's partition."""

    def __init__(self, partitions: int, partitioner: str) -> None:
        self.partitions = partitions
        self.partitioner = partitioner  # ALL: not known, the key alone is checked

    @classmethod
    def of(cls, settings: Settings) -> Routing | None:
        """The check sharded settings need; None without shards (one database holds all)."""
        if not settings.shards:
            return None
        return cls(settings.topic_partitions, settings.shard_partitioner)

    def check(self, key: bytes | None, ad_id: str, partition: int) -> None:
        """Raise InvalidEventError (``misrouted``) unless the message is where its ad's is."""
        wanted = ad_id.encode()
        if key != wanted:
            shown = "no key" if key is None else f"key {key[:60]!r}"
            raise InvalidEventError(
                DeadLetterReason.MISROUTED,
                f"{shown}, not the ad id {ad_id!r}: with shards, every click must be keyed "
                "by its ad",
            )
        if self.partitioner == ALL:
            return
        expected = partition_of(wanted, self.partitions, self.partitioner)
        if expected != partition:
            raise InvalidEventError(
                DeadLetterReason.MISROUTED,
                f"ad {ad_id!r} is in partition {expected} under {self.partitioner} "
                f"(ADCLICK_SHARD_PARTITIONER), this message in partition {partition}",
            )
