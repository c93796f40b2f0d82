"""With shards, a click counts only if its message is keyed by its ad and lies in its
ad's partition (ingest/routing.py): anything else is dead-lettered as ``misrouted``,
whole, and moves no partition clock."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from adclick.events.dead_letter import DeadLetterReason
from adclick.ingest.batch import AD_ID, PARTITION, assemble_batch
from adclick.ingest.clock import PartitionClocks
from adclick.ingest.routing import Routing
from adclick.kafka.partitioners import partition_of
from tests.kafka_records import FakeRecord

T0 = 1_720_483_200_000  # 2024-07-09 00:00:00 UTC
PARTITIONS = 6
ads = st.sampled_from(["ad1", "ad2", "ad3", "ad10", "Ωmega"])
keys = st.one_of(st.none(), ads.map(str.encode), st.binary(max_size=8))
messages = st.lists(
    st.tuples(ads, keys, st.integers(0, PARTITIONS - 1), st.integers(0, 10 * 60_000)),
    max_size=30,
)


@given(messages, st.sampled_from(["all", "consistent_random", "murmur2_random"]))
def test_a_click_counts_only_in_its_ads_partition_keyed_by_its_ad(
    sent: list[tuple[str, bytes | None, int, int]], partitioner: str
) -> None:
    records = [
        FakeRecord(partition, offset, _click(ad, T0 + at_ms, offset), key)
        for offset, (ad, key, partition, at_ms) in enumerate(sent)
    ]
    clocks = PartitionClocks(lateness_ms=60_000, horizon_ms=86_400_000)
    batch = assemble_batch(
        records, "t", clocks, now_ms=T0 + 3_600_000, max_skew_ms=0,
        routing=Routing(PARTITIONS, partitioner),
    )  # fmt: skip

    def routed(ad: str, key: bytes | None, partition: int) -> bool:
        return key == ad.encode() and (
            partitioner == "all" or partition_of(key, PARTITIONS, partitioner) == partition
        )

    counted = [(ad, p) for ad, key, p, _at in sent if routed(ad, key, p)]
    assert sorted((row[AD_ID], row[PARTITION]) for row in batch.rows) == sorted(counted)
    misrouted = [letter for letter in batch.dead_letters if letter.reason == "misrouted"]
    assert len(misrouted) == len(sent) - len(counted) == len(batch.dead_letters)
    assert all(letter.payload == records[letter.offset].value() for letter in misrouted)
    # A partition's clock moved only by what was counted in it.
    for partition in range(PARTITIONS):
        newest = max((T0 + at for ad, k, p, at in sent if p == partition and routed(ad, k, p)),
                     default=None)  # fmt: skip
        assert clocks.newest_ms.get(partition) == newest


def test_an_unkeyed_click_is_refused_with_shards_and_counted_without() -> None:
    record = FakeRecord(0, 0, _click("ad1", T0, 0), None)
    batch = assemble_batch(
        [record], "t", PartitionClocks(60_000, 86_400_000), now_ms=T0, max_skew_ms=0,
        routing=Routing(PARTITIONS, "consistent_random"),
    )  # fmt: skip
    [letter] = batch.dead_letters
    assert letter.reason == DeadLetterReason.MISROUTED and "keyed by its ad" in letter.detail
    unchecked = assemble_batch(
        [record], "t", PartitionClocks(60_000, 86_400_000), now_ms=T0, max_skew_ms=0
    )
    assert len(unchecked.rows) == 1


def _click(ad: str, ts_ms: int, n: int) -> bytes:
    return orjson.dumps(
        {"ad_id": ad, "timestamp": ts_ms, "user_id": f"u{n}", "ip": "1.2.3.4", "country": "US"}
    )
