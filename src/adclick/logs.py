"""Logging setup shared by every command.

On a terminal, one readable line per record; otherwise (a container, a service manager,
a file) one JSON object per line, which log pipelines parse without guessing. The choice
is ``ADCLICK_LOG_FORMAT`` (auto, text or json).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from adclick.errors import ConfigurationError
from adclick.redact import MaskSecrets
from adclick.settings import LogFormat, get_settings

_TEXT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
_JSON_FIELDS = ["asctime", "levelname", "processName", "process", "name", "message"]


def log_format() -> LogFormat:
    """The configured format; "auto" resolves by whether stderr is a terminal."""
    try:
        chosen = get_settings().log_format
    except ConfigurationError:
        chosen = LogFormat.AUTO  # the command reports the bad settings itself, right after
    if chosen is LogFormat.AUTO:
        return LogFormat.TEXT if sys.stderr.isatty() else LogFormat.JSON
    return chosen


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr, as text or JSON lines (see the module docstring)."""
    handler = logging.StreamHandler(sys.stderr)
    # A password inside a URL or a connection error's text is never logged.
    handler.addFilter(MaskSecrets())
    if log_format() is LogFormat.JSON:
        handler.setFormatter(
            JsonFormatter(
                _JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # librdkafka's client logs are for Kafka debugging, not for operators.
    logging.getLogger("confluent_kafka").setLevel(logging.WARNING)
    # httpx logs every request at INFO: the benchmarks' clients send thousands a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # alembic lists its plugins at INFO whenever a process reads the migrations' head.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
