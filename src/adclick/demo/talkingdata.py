"""Real clicks from the TalkingData AdTracking sample, mapped to adclick click events.

The sample (``../shared/data/talkingdata_train_sample.csv``, 100,000 rows, see its
README) has anonymised integer ids and minute-resolution click times. The mapping:

- ``ad_id`` = ``ch<channel>``: the channel is the ad publisher, skewed like real ads;
- ``user_id`` = ``ip<ip>`` and ``ip`` = 10.0.0.0 + the ip id (a valid private address);
- ``country``: the sample has none; a fixed function of the ip id picks one from a
  realistic mix, so the same user always has the same country;
- attributes ``app``, ``device``, ``os``;
- ``timestamp``: the click's minute plus ``row % 60`` seconds (the file has no seconds),
  optionally shifted so the sample's last minute is the current one;
- ``click_id`` = ``td-<row>``: rows can be identical and still be different clicks.
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from adclick.errors import ConfigurationError
from adclick.events.model import ClickEvent
from adclick.resources import REPO_ROOT
from adclick.time_units import MINUTE_MS

DEFAULT_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "talkingdata_train_sample.csv"
_TIME_FORMAT = "%Y-%m-%d %H:%M"
# Share of users per country, in percent; the sample is anonymised, so this is chosen.
_COUNTRY_MIX = (("US", 35), ("IN", 20), ("BR", 10), ("GB", 8), ("DE", 7), ("FR", 6),
                ("JP", 6), ("CA", 4), ("AU", 2), ("MX", 2))  # fmt: skip
_COUNTRY_BY_PERCENT = [code for code, share in _COUNTRY_MIX for _ in range(share)]
_FIRST_IP = int(ipaddress.IPv4Address("10.0.0.0"))


@dataclass(frozen=True)
class SampleRow:
    """One row of the sample, as typed values."""

    row: int
    ip: int
    app: int
    device: int
    os: int
    channel: int
    minute_ms: int


def read_sample(path: Path = DEFAULT_SAMPLE) -> list[SampleRow]:
    """All rows of the sample file, in file order."""
    if not path.exists():
        raise ConfigurationError(f"sample file {path} not found (pass its path)")
    rows = []
    with path.open(newline="") as handle:
        for number, record in enumerate(csv.DictReader(handle)):
            minute = datetime.strptime(record["click_time"], _TIME_FORMAT).replace(tzinfo=UTC)
            rows.append(
                SampleRow(
                    row=number,
                    ip=int(record["ip"]),
                    app=int(record["app"]),
                    device=int(record["device"]),
                    os=int(record["os"]),
                    channel=int(record["channel"]),
                    minute_ms=int(minute.timestamp()) * 1000,
                )
            )
    return rows


def to_event(row: SampleRow, shift_ms: int = 0) -> ClickEvent:
    """The click event of a sample row (see the module docstring for the mapping)."""
    return ClickEvent(
        ad_id=f"ch{row.channel}",
        ts_ms=row.minute_ms + (row.row % 60) * 1000 + shift_ms,
        user_id=f"ip{row.ip}",
        ip=str(ipaddress.IPv4Address(_FIRST_IP + row.ip)),
        country=_COUNTRY_BY_PERCENT[row.ip % 100],
        click_id=f"td-{row.row}",
        attributes={"app": str(row.app), "device": str(row.device), "os": str(row.os)},
    )


def shift_to_now(rows: list[SampleRow], now_ms: int) -> int:
    """The shift that moves the sample's newest minute to the minute before ``now_ms``."""
    newest = max(row.minute_ms for row in rows)
    return (now_ms // MINUTE_MS - 1) * MINUTE_MS - newest


def sample_events(path: Path = DEFAULT_SAMPLE, shift_ms: int = 0) -> Iterator[ClickEvent]:
    """The sample's click events in file order (not time order, like real logs)."""
    for row in read_sample(path):
        yield to_event(row, shift_ms)
