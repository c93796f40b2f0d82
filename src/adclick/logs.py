"""Logging setup shared by every command."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines to stderr with time, process and logger name."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        force=True,
    )
    # librdkafka's client logs are for Kafka debugging, not for operators.
    logging.getLogger("confluent_kafka").setLevel(logging.WARNING)
