"""The exact expected counts of a load run, and the truth file that holds them.

The truth counts the valid, unique clicks a run sent (duplicates and invalid messages are not
clicks), by event-time minute (UTC), ad and country.

Truth file format: one CSV file, UTF-8, with the header ``minute,ad_id,country,clicks``.

- ``minute``: start of the minute, ISO-8601 UTC, e.g. ``2024-07-09T00:01:00Z``;
- ``ad_id``: e.g. ``ad0000042``;
- ``country``: empty on the row of the ad's total over all countries in that minute, else the
  country code, and that row counts the ad's clicks from that country in that minute;
- ``clicks``: the count, > 0.

Rows are sorted by minute, ad_id and country, the total row (empty country) first, e.g.::

    minute,ad_id,country,clicks
    2024-07-09T00:01:00Z,ad0000042,,3
    2024-07-09T00:01:00Z,ad0000042,DE,1
    2024-07-09T00:01:00Z,ad0000042,US,2

:func:`read_truth` reads it back into a :class:`Truth`.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from adclick.errors import InvalidInputError
from adclick.events import ClickEvent
from adclick.loadgen.generator import Block, IntArray, LoadSpec, ad_id
from adclick.time_units import MINUTE_MS

HEADER = ("minute", "ad_id", "country", "clicks")
# Pending per-click keys are merged into the sorted counts once this many pile up: bounds
# memory on long paced runs while keeping the merge (a sort) off the per-block path.
_MERGE_EVERY = 4_000_000
_WRITE_CHUNK = 500_000


@dataclass
class Truth:
    """Expected clicks per (ad_id, minute) and per (ad_id, minute, country).

    Minutes are epoch seconds of the minute's start (multiples of 60).
    """

    by_ad_minute: dict[tuple[str, int], int] = field(default_factory=dict)
    by_ad_minute_country: dict[tuple[str, int, str], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """All clicks counted."""
        return sum(self.by_ad_minute.values())

    @classmethod
    def from_events(cls, events: Iterable[ClickEvent]) -> Truth:
        """Count events that are already valid and unique (e.g. parsed and deduplicated)."""
        by_country: Counter[tuple[str, int, str]] = Counter()
        for event in events:
            minute_s = event.ts_ms // MINUTE_MS * 60
            by_country[(event.ad_id, minute_s, event.country)] += 1
        by_ad: Counter[tuple[str, int]] = Counter()
        for (ad, minute_s, _country), clicks in by_country.items():
            by_ad[(ad, minute_s)] += clicks
        return cls(dict(by_ad), dict(by_country))


class TruthAccumulator:
    """Counts the fresh clicks of generated blocks, with numpy rather than per event.

    Each click becomes one int64 key ``(minute * ads + ad - 1) * countries + country``, so
    the sorted keys are in truth-file order (country codes are sorted in the spec).
    """

    def __init__(self, ads: int, country_codes: Sequence[str], ad_width: int) -> None:
        self.ads = ads
        self.country_codes = tuple(country_codes)
        self.ad_width = ad_width
        self._keys: IntArray = np.empty(0, dtype=np.int64)
        self._counts: IntArray = np.empty(0, dtype=np.int64)
        self._pending: list[IntArray] = []
        self._pending_size = 0

    @classmethod
    def for_spec(cls, spec: LoadSpec) -> TruthAccumulator:
        """An empty accumulator for the blocks of ``spec``."""
        return cls(spec.ads, spec.country_codes, spec.ad_width)

    def add(self, block: Block) -> None:
        """Count the block's fresh clicks."""
        self.add_clicks(block.ad, block.ts_ms, block.country)

    def add_clicks(self, ad: IntArray, ts_ms: IntArray, country: IntArray) -> None:
        """Count clicks given as ad numbers, event times (epoch ms) and country indexes."""
        if not len(ad):
            return
        minute = ts_ms // MINUTE_MS
        keys = (minute * self.ads + (ad - 1)) * len(self.country_codes) + country
        self._pending.append(keys.astype(np.int64, copy=False))
        self._pending_size += len(keys)
        if self._pending_size >= _MERGE_EVERY:
            self._merge()

    @property
    def total(self) -> int:
        """All clicks counted so far."""
        return int(self._counts.sum()) + self._pending_size

    def counts(self) -> tuple[IntArray, IntArray]:
        """The distinct keys, sorted, and their clicks."""
        self._merge()
        return self._keys, self._counts

    def _merge(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys, *self._pending])
        weights = np.concatenate([self._counts, np.ones(self._pending_size, dtype=np.int64)])
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        weights = weights[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        self._keys = keys[starts]
        self._counts = np.add.reduceat(weights, starts) if len(keys) else weights
        self._pending = []
        self._pending_size = 0

    def _decode(self, keys: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """(minute epoch s, ad number, country index) of each key."""
        n_countries = len(self.country_codes)
        group, country = np.divmod(keys, n_countries)
        minute, ad0 = np.divmod(group, self.ads)
        return minute * 60, ad0 + 1, country

    def to_truth(self) -> Truth:
        """The counts as a :class:`Truth`."""
        keys, counts = self.counts()
        minute_s, ad, country = self._decode(keys)
        truth = Truth()
        by_ad = truth.by_ad_minute
        by_country = truth.by_ad_minute_country
        codes = self.country_codes
        for m, a, c, n in zip(
            minute_s.tolist(), ad.tolist(), country.tolist(), counts.tolist(), strict=True
        ):
            name = ad_id(a, self.ad_width)
            by_country[(name, m, codes[c])] = n
            by_ad[(name, m)] = by_ad.get((name, m), 0) + n
        return truth

    def write_csv(self, path: Path) -> int:
        """Write the truth file (format in the module docstring); returns its data rows."""
        keys, counts = self.counts()
        group, country = np.divmod(keys, len(self.country_codes))
        # One total row per (minute, ad) group, placed before the group's country rows by
        # giving it country index -1 and sorting on (group, country).
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(keys) else keys
        totals = np.add.reduceat(counts, starts) if len(keys) else counts
        row_group = np.concatenate([group, group[starts]])
        row_country = np.concatenate([country, np.full(len(starts), -1, dtype=np.int64)])
        row_counts = np.concatenate([counts, totals])
        order = np.lexsort((row_country, row_group))
        row_group, row_country, row_counts = row_group[order], row_country[order], row_counts[order]
        # Index -1 of this list is the empty country of total rows.
        codes = [*self.country_codes, ""]
        minute, ad0 = np.divmod(row_group, self.ads)
        minute_text = {
            int(m): datetime.fromtimestamp(int(m) * 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:00Z")
            for m in np.unique(minute).tolist()
        }
        width = self.ad_width
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write(",".join(HEADER) + "\n")
            for lo in range(0, len(row_group), _WRITE_CHUNK):
                hi = lo + _WRITE_CHUNK
                out.write(
                    "".join(
                        f"{minute_text[m]},ad{str(a + 1).zfill(width)},{codes[c]},{n}\n"
                        for m, a, c, n in zip(
                            minute[lo:hi].tolist(),
                            ad0[lo:hi].tolist(),
                            row_country[lo:hi].tolist(),
                            row_counts[lo:hi].tolist(),
                            strict=True,
                        )
                    )
                )
        return len(row_group)


def read_truth(path: Path | str) -> Truth:
    """Read a truth file written by ``adclick loadgen --truth``.

    Anything else -- another file, a damaged row, a directory -- raises InvalidInputError
    naming the file and line.
    """
    truth = Truth()
    minutes: dict[str, int] = {}
    line = 1
    try:
        with Path(path).open(encoding="utf-8", newline="") as source:
            reader = csv.reader(source)
            header = next(reader, None)
            if header is None or tuple(header) != HEADER:
                raise InvalidInputError(f"{path}: header is not {','.join(HEADER)}")
            for line, row in enumerate(reader, start=2):
                if len(row) != len(HEADER):
                    raise InvalidInputError(f"{path}:{line}: expected {len(HEADER)} columns")
                minute, ad, country, clicks = row
                minute_s = minutes.get(minute)
                if minute_s is None:
                    minute_s = int(datetime.fromisoformat(minute).timestamp())
                    minutes[minute] = minute_s
                if country:
                    truth.by_ad_minute_country[(ad, minute_s, country)] = int(clicks)
                else:
                    truth.by_ad_minute[(ad, minute_s)] = int(clicks)
    except (ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidInputError(f"{path}:{line}: not a truth file: {exc}") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return truth
