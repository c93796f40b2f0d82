"""The idempotency key of a click.

A producer may send its own ``click_id``. When it sends none, the key is derived from
the event's fields, so that a retried send of the same log line is still one click.
Two genuinely different clicks with identical fields (same ad, same millisecond, same
user, ip and attributes) collapse into one: producers that can tell them apart must
send a click_id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in validated fields


def derive_click_id(
    ad_id: str,
    ts_ms: int,
    user_id: str,
    ip: str,
    country: str,
    attributes: Mapping[str, str],
) -> str:
    """A stable 128-bit hex key from the event's fields (attributes in name order)."""
    parts = [ad_id, str(ts_ms), user_id, ip, country]
    for name in sorted(attributes):
        parts.append(name)
        parts.append(attributes[name])
    digest = hashlib.blake2b(_SEPARATOR.join(parts).encode(), digest_size=16)
    return digest.hexdigest()
