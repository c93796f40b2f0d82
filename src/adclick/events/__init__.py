"""Click events: the model, the wire formats (JSON, log line) and the idempotency key."""

from adclick.events.click_id import derive_click_id
from adclick.events.model import ClickEvent
from adclick.events.parse import parse_json_event, parse_log_line, parse_timestamp_ms

__all__ = [
    "ClickEvent",
    "derive_click_id",
    "parse_json_event",
    "parse_log_line",
    "parse_timestamp_ms",
]
