"""Collectors: put click events from files, stdin and application logs into Kafka."""

from adclick.collect.follow import Follower
from adclick.collect.produce import EXIT_REJECTED, LineFormat, ProduceSummary, run_produce
from adclick.collect.sender import ClickSender, DeliveryError
from adclick.collect.tail import TailSummary, run_tail

__all__ = [
    "EXIT_REJECTED",
    "ClickSender",
    "DeliveryError",
    "Follower",
    "LineFormat",
    "ProduceSummary",
    "TailSummary",
    "run_produce",
    "run_tail",
]
