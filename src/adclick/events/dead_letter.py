"""The dead-letter record: one shape for every place that rejects input.

``{"reason", "detail", "source", <where>..., "payload"[, "payload_base64"],
"payload_bytes", "payload_sha256"[, "payload_truncated"]}`` where ``source`` names the
rejecting component (``ingest``, ``produce``, ``tail``) and the ``where`` fields say where
the input was found (``topic``/``partition``/``offset`` for the ingest, ``file``/``line``
for produce, ``file``/``offset`` for tail; with ``file_base64`` too when the file's name
is not UTF-8, see :mod:`adclick.collect.file_names`). Text that is not UTF-8 is kept in
``payload_base64`` (``payload`` is then null).

A record is bounded whatever the input: a dead letter must always fit the broker's message
limit, or rejecting one huge message would fail and stop the process that rejects it. So
the payload kept is at most :data:`MAX_PAYLOAD_BYTES` of the input (then
``payload_truncated`` is true), the detail at most :data:`MAX_DETAIL_CHARS` characters,
and ``payload_bytes`` and ``payload_sha256`` always identify the whole original input.
Escaping can at most multiply the kept bytes by six (``\\u0001``), so a record stays
under ~100 KB, far below Kafka's default 1 MB limit.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class DeadLetterReason(StrEnum):
    """Why a message is dead-lettered: the dead letter's ``reason``, and the ``reason``
    label of the ingest's and the collector's dead-letter metrics. Stable codes: alerts
    and dashboards key on them."""

    MALFORMED = "malformed"  # not JSON, not a log line, no value, not UTF-8
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    TOO_LARGE = "too_large"  # a line over the limit, a click the broker refused as too large
    TOO_FAR_IN_FUTURE = "too_far_in_future"
    # Older than the stream's dedup horizon: it could not be deduplicated.
    BEYOND_DEDUP_HORIZON = "beyond_dedup_horizon"
    # Older than the ingest floor: its range is tiered to cold storage (or being tiered),
    # so it can neither be deduplicated nor written (docs/lifecycle.md).
    ALREADY_TIERED = "already_tiered"
    REJECTED_BY_DATABASE = "rejected_by_database"
    # With ADCLICK_SHARDS: a click not keyed by its ad, or in another partition than its
    # ad's, would put one ad's clicks in two shards (ingest/routing.py).
    MISROUTED = "misrouted"
    # The parser raised something other than its own InvalidEventError: a bug to fix,
    # counted and logged once per kind; the message is dead-lettered like any other
    # rather than stopping the process.
    PARSER_FAILED = "parser_failed"


MAX_PAYLOAD_BYTES = 16 * 1024
MAX_DETAIL_CHARS = 1000


def bounded_detail(detail: str) -> str:
    """``detail`` cut to :data:`MAX_DETAIL_CHARS` characters, saying so when cut."""
    if len(detail) <= MAX_DETAIL_CHARS:
        return detail
    return detail[: MAX_DETAIL_CHARS - 20] + f"... ({len(detail)} chars)"


def dead_letter(
    reason: str, detail: str, source: str, payload: bytes, **where: object
) -> dict[str, Any]:
    """A dead-letter record: why the input was rejected, where it came from, and its bytes."""
    kept = payload[:MAX_PAYLOAD_BYTES]
    try:
        # A cut may split a multi-byte character: the kept prefix is text if all but such
        # a split tail decodes.
        text: str | None = kept.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        if len(kept) < len(payload) and _split_tail(kept, exc):
            kept = kept[: exc.start]
            text = kept.decode()
        else:
            text = None
    record: dict[str, Any] = {
        "reason": reason,
        "detail": bounded_detail(detail),
        "source": source,
    }
    record.update(where)
    record["payload"] = text
    if text is None:
        record["payload_base64"] = base64.b64encode(kept).decode()
    record["payload_bytes"] = len(payload)
    record["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    if len(kept) < len(payload):
        record["payload_truncated"] = True
    return record


def without_payload(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` keeping only the payload's size and hash: for a broker whose message
    limit is below even a bounded record."""
    smaller = {name: value for name, value in record.items() if name != "payload_base64"}
    smaller["payload"] = None
    smaller["payload_truncated"] = True
    return smaller


def _split_tail(kept: bytes, exc: UnicodeDecodeError) -> bool:
    # Only a character cut by the prefix, never a bad byte inside the input.
    return exc.end == len(kept) and exc.reason == "unexpected end of data"
