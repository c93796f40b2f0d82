"""Kafka messages made by a test: what the ingest code reads of a confluent_kafka.Message
(adclick.ingest.batch.KafkaRecord), without a broker."""

from __future__ import annotations

from dataclasses import dataclass

# 2024-07-09 00:00:00 UTC: the producer's timestamp of every made message.
CREATED_MS = 1_720_483_200_000


@dataclass
class FakeRecord:
    part: int
    off: int
    payload: bytes | None
    k: bytes | None = b"ad"
    stamp: tuple[int, int] = (1, CREATED_MS)  # (create time, epoch ms), as Message has it

    def partition(self) -> int:
        return self.part

    def offset(self) -> int:
        return self.off

    def key(self) -> bytes | None:
        return self.k

    def value(self) -> bytes | None:
        return self.payload

    def timestamp(self) -> tuple[int, int]:
        return self.stamp
