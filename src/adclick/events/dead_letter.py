"""The dead-letter record: one shape for every place that rejects input.

``{"reason", "detail", "source", <where>..., "payload"[, "payload_base64"]}`` where
``source`` names the rejecting component (``ingest``, ``produce``, ``tail``) and the
``where`` fields say where the input was found (``topic``/``partition``/``offset`` for the
ingest, ``file``/``line`` for produce, ``file``/``offset`` for tail). Text that is not
UTF-8 is kept losslessly in ``payload_base64`` (``payload`` is then null).
"""

from __future__ import annotations

import base64
from typing import Any


def dead_letter(
    reason: str, detail: str, source: str, payload: bytes, **where: object
) -> dict[str, Any]:
    """A dead-letter record: why the input was rejected, where it came from, and its bytes."""
    try:
        text: str | None = payload.decode()
    except UnicodeDecodeError:
        text = None
    record: dict[str, Any] = {"reason": reason, "detail": detail, "source": source}
    record.update(where)
    record["payload"] = text
    if text is None:
        record["payload_base64"] = base64.b64encode(payload).decode()
    return record
