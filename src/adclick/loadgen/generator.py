"""Synthetic click traffic as a pure, seeded sequence of Kafka messages (no I/O).

:func:`generate` yields :class:`Block` s of messages in send order. Every send is one of

- a fresh click: a valid event with its own ``click_id`` (``"<seed>-<send index>"``), so two
  clicks with identical fields still count twice. Its event time is the stream time of its
  send (``start + index / event_rate``), or, for the late fraction, up to ``max_lateness``
  behind it;
- a duplicate: the byte-identical re-send (same key, same payload) of a fresh click sent
  earlier, like a producer retry;
- an invalid message: not JSON, not an object, a missing field, a bad ip, timestamp or
  country, or a field of the wrong type, rotating through :data:`INVALID_KINDS`. The ingest
  dead-letters these; they are not clicks.

Each block also carries the ad, event time and country of its fresh clicks, which is all the
truth (:mod:`adclick.loadgen.truth`) needs. The output depends only on the :class:`LoadSpec`:
the same spec (seed and start included) gives the same bytes.

Speed matters (benchmarks preload millions of events), so the random draws are numpy arrays
per block and payloads are built with one f-string per event, in the exact byte layout of
:meth:`adclick.events.ClickEvent.to_json`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from adclick.events.parse import EARLIEST_TS_MS, LATEST_TS_MS  # the times a click may have

DEFAULT_ADS = 2_000_000
DEFAULT_ZIPF = 1.1
DEFAULT_EVENT_RATE = 10_000.0
DEFAULT_MAX_LATENESS_S = 300.0
DEFAULT_BLOCK_SIZE = 50_000
# A realistic traffic mix by country (shares of clicks).
DEFAULT_COUNTRY_MIX: tuple[tuple[str, float], ...] = (
    ("US", 0.40),
    ("IN", 0.15),
    ("BR", 0.10),
    ("GB", 0.08),
    ("DE", 0.07),
    ("FR", 0.06),
    ("JP", 0.05),
    ("CA", 0.04),
    ("AU", 0.03),
    ("MX", 0.02),
)

# Distinct users and source addresses of the synthetic audience.
USERS = 10_000_000
_IP_TABLE_SIZE = 65_536
# The truth packs (minute, ad, country) into one int64 key; this keeps it from overflowing
# for any minute before 2100.
MAX_ADS = 100_000_000
MAX_COUNTRIES = 300

INVALID_KINDS = (
    "not_json",
    "missing_field",
    "bad_ip",
    "bad_timestamp",
    "bad_country",
    "wrong_type",
    "not_object",
    "empty_field",
)
_REQUIRED_FIELDS = ("ad_id", "timestamp", "user_id", "ip", "country")

IntArray = npt.NDArray[np.int64]

_FRESH, _DUPLICATE, _INVALID = 0, 1, 2


def ad_id(number: int, width: int = 7) -> str:
    """The ad id of ad ``number``: ``ad`` and the number zero-padded to ``width`` digits."""
    return "ad" + str(number).zfill(width)


def ad_id_width(ads: int) -> int:
    """Digits of the ad ids of a run with ``ads`` ads: at least 7, and equal for all ads.

    Equal widths make the ids sort like their numbers.
    """
    return max(7, len(str(ads)))


def parse_country_mix(text: str) -> tuple[tuple[str, float], ...]:
    """Parse ``"US:0.5,DE:0.5"`` into (code, weight) pairs; weights need not sum to 1."""
    mix: list[tuple[str, float]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        code, sep, weight = part.partition(":")
        if not sep:
            raise ValueError(f"country mix entry {part.strip()!r} is not CODE:WEIGHT")
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(
                f"weight {weight.strip()!r} of {code.strip()} is not a number"
            ) from None
        mix.append((code.strip(), value))
    return tuple(mix)


@dataclass(frozen=True)
class LoadSpec:
    """What to generate. ``events`` counts every send: fresh, duplicate and invalid."""

    events: int
    start_ms: int
    seed: int
    ads: int = DEFAULT_ADS
    zipf: float = DEFAULT_ZIPF
    countries: tuple[tuple[str, float], ...] = DEFAULT_COUNTRY_MIX
    duplicate_fraction: float = 0.0
    late_fraction: float = 0.0
    max_lateness_s: float = DEFAULT_MAX_LATENESS_S
    invalid_fraction: float = 0.0
    event_rate: float = DEFAULT_EVENT_RATE
    block_size: int = DEFAULT_BLOCK_SIZE

    def __post_init__(self) -> None:
        # Normalise the mix: upper-case codes (as the parser stores them), sorted by code so
        # that country indexes sort like the codes, weights summing to 1.
        if not self.countries:
            raise ValueError("the country mix is empty")
        merged: dict[str, float] = {}
        for code, weight in self.countries:
            upper = code.strip().upper()
            if not (2 <= len(upper) <= 3 and upper.isascii() and upper.isalpha()):
                raise ValueError(f"country {code!r} is not a 2 or 3 letter code")
            if not (weight >= 0 and math.isfinite(weight)):
                raise ValueError(f"weight of country {upper} must be a finite number >= 0")
            merged[upper] = merged.get(upper, 0.0) + weight
        total = sum(merged.values())
        if total <= 0:
            raise ValueError("the country weights sum to 0")
        if len(merged) > MAX_COUNTRIES:
            raise ValueError(f"at most {MAX_COUNTRIES} countries")
        object.__setattr__(
            self, "countries", tuple((code, merged[code] / total) for code in sorted(merged))
        )
        if self.events < 0:
            raise ValueError("events must be >= 0")
        if not 1 <= self.ads <= MAX_ADS:
            raise ValueError(f"ads must be in 1..{MAX_ADS}")
        if not (self.zipf >= 0 and math.isfinite(self.zipf)):
            raise ValueError("zipf must be a finite number >= 0 (0 is uniform)")
        for name in ("duplicate_fraction", "late_fraction", "invalid_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be in 0..1")
        if self.duplicate_fraction + self.invalid_fraction >= 1.0:
            raise ValueError("duplicate-fraction + invalid-fraction must be below 1")
        if not (self.max_lateness_s >= 0.001 and math.isfinite(self.max_lateness_s)):
            raise ValueError("max-lateness must be at least 0.001 s")
        if not (self.event_rate > 0 and math.isfinite(self.event_rate)):
            raise ValueError("event-rate must be > 0")
        earliest = self.start_ms - round(self.max_lateness_s * 1000)
        if earliest < EARLIEST_TS_MS or self.start_ms + self.span_ms >= LATEST_TS_MS:
            raise ValueError("event times (lateness included) must lie in 2000..2100")
        if self.block_size < 1:
            raise ValueError("block_size must be >= 1")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")

    @property
    def country_codes(self) -> tuple[str, ...]:
        """The countries of the mix, sorted; a block's ``country`` indexes into this."""
        return tuple(code for code, _ in self.countries)

    @property
    def ad_width(self) -> int:
        """Digits of this run's ad ids."""
        return ad_id_width(self.ads)

    @property
    def span_ms(self) -> int:
        """Event time from the first send to the last one (lateness not included)."""
        return int(self.events * 1000 / self.event_rate)

    def stream_ms(self, index: int) -> int:
        """The stream (event) time of send ``index``."""
        return self.start_ms + math.floor(index * 1000 / self.event_rate)


@dataclass
class Block:
    """Consecutive sends: ``keys[i]`` and ``payloads[i]`` are one Kafka message.

    ``ad``, ``ts_ms`` and ``country`` describe the block's fresh (valid, first-time) clicks,
    one entry per click: ad number, event time, index into ``LoadSpec.country_codes``.
    """

    first_index: int
    keys: list[bytes]
    payloads: list[bytes]
    ad: IntArray
    ts_ms: IntArray
    country: IntArray
    duplicates: int
    late: int
    invalid: int
    invalid_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def fresh(self) -> int:
        """Valid, unique clicks in this block."""
        return len(self.ad)


class _Draws:
    """The seeded samplers of one run: ad popularity, countries, users and addresses."""

    def __init__(self, spec: LoadSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        # numpy's own zipf sampler is unbounded; a CDF over exactly `ads` ranks plus
        # searchsorted on uniform draws gives a bounded Zipf and costs one binary search.
        self.ad_cdf: npt.NDArray[np.float64] | None = None
        if spec.zipf > 0 and spec.ads > 1:
            weights = np.arange(1, spec.ads + 1, dtype=np.float64) ** -spec.zipf
            cdf = np.cumsum(weights)
            self.ad_cdf = cdf / cdf[-1]
        # Rank r is ad (r * multiplier + offset) mod ads: a bijection that scatters the
        # popular ads over the id range, so nothing downstream can get the top list right
        # by accident of id order. It needs no permutation table of `ads` entries.
        self.multiplier = 1
        self.offset = 0
        if spec.ads > 1:
            while True:
                candidate = int(rng.integers(1, spec.ads))
                if math.gcd(candidate, spec.ads) == 1:
                    self.multiplier = candidate
                    break
            self.offset = int(rng.integers(0, spec.ads))
        weights_c = np.array([w for _, w in spec.countries], dtype=np.float64)
        self.country_cdf = np.cumsum(weights_c) / weights_c.sum()
        self.country_codes = np.array(spec.country_codes, dtype=object)
        octets = rng.integers(1, 255, size=(_IP_TABLE_SIZE, 4)).tolist()
        self.ip_table = np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in octets], dtype=object)

    def ads(self, n: int) -> IntArray:
        """Ad numbers (1..ads) of ``n`` clicks, Zipf-distributed over a scattered ranking."""
        if self.ad_cdf is None:
            ranks = self.rng.integers(0, self.spec.ads, size=n, dtype=np.int64)
        else:
            found = np.searchsorted(self.ad_cdf, self.rng.random(n), side="right")
            ranks = np.minimum(found, self.spec.ads - 1).astype(np.int64)
        result: IntArray = (ranks * self.multiplier + self.offset) % self.spec.ads + 1
        return result

    def countries(self, n: int) -> IntArray:
        """Country indexes of ``n`` clicks, following the mix."""
        found = np.searchsorted(self.country_cdf, self.rng.random(n), side="right")
        return np.minimum(found, len(self.country_cdf) - 1).astype(np.int64)


def generate(spec: LoadSpec) -> Iterator[Block]:
    """Yield the run's sends in order, ``spec.block_size`` per block."""
    rng = np.random.default_rng(spec.seed)
    draws = _Draws(spec, rng)
    # Duplicates re-send clicks of the current block or the previous one: recent, like
    # retries, and without holding the whole run in memory.
    pool_keys: list[bytes] = []
    pool_payloads: list[bytes] = []
    invalid_seen = 0
    index = 0
    while index < spec.events:
        n = min(spec.block_size, spec.events - index)
        block, fresh_keys, fresh_payloads = _block(
            spec, draws, index, n, pool_keys, pool_payloads, invalid_seen
        )
        invalid_seen += block.invalid
        if fresh_keys:
            pool_keys, pool_payloads = fresh_keys, fresh_payloads
        index += n
        yield block


def _block(
    spec: LoadSpec,
    draws: _Draws,
    first: int,
    n: int,
    pool_keys: Sequence[bytes],
    pool_payloads: Sequence[bytes],
    invalid_seen: int,
) -> tuple[Block, list[bytes], list[bytes]]:
    rng = draws.rng
    u = rng.random(n)
    kind = np.full(n, _FRESH, dtype=np.int8)
    kind[u < spec.invalid_fraction] = _INVALID
    kind[(u >= spec.invalid_fraction) & (u < spec.invalid_fraction + spec.duplicate_fraction)] = (
        _DUPLICATE
    )
    if not pool_payloads:
        # Nothing sent yet could be re-sent: the first duplicate becomes the first click if
        # it comes before every fresh click, so every later duplicate has an original.
        dups = np.flatnonzero(kind == _DUPLICATE)
        fresh = np.flatnonzero(kind == _FRESH)
        if len(dups) and (not len(fresh) or dups[0] < fresh[0]):
            kind[dups[0]] = _FRESH
    fresh_pos = np.flatnonzero(kind == _FRESH)
    dup_pos = np.flatnonzero(kind == _DUPLICATE)
    invalid_pos = np.flatnonzero(kind == _INVALID)
    m = len(fresh_pos)

    # Fresh clicks.
    index = fresh_pos.astype(np.int64) + first
    stream = spec.start_ms + np.floor(index * (1000.0 / spec.event_rate)).astype(np.int64)
    late = rng.random(m) < spec.late_fraction
    max_late_ms = max(1, round(spec.max_lateness_s * 1000))
    lateness = rng.integers(1, max_late_ms + 1, size=m, dtype=np.int64)
    ts = np.where(late, stream - lateness, stream)
    ads = draws.ads(m)
    countries = draws.countries(m)
    users = rng.integers(0, USERS, size=m).tolist()
    ips = draws.ip_table[rng.integers(0, _IP_TABLE_SIZE, size=m)].tolist()
    codes = draws.country_codes[countries].tolist()
    width = spec.ad_width
    ad_strs = ["ad" + str(a).zfill(width) for a in ads.tolist()]
    prefix = f"{spec.seed}-"
    fresh_keys = [a.encode() for a in ad_strs]
    # Byte for byte what ClickEvent.to_json() gives (orjson: compact, in field order); an
    # f-string is about 4x faster than building a dict per event and dumping it.
    fresh_payloads = [
        f'{{"ad_id":"{a}","timestamp":{t},"user_id":"user-{u}","ip":"{ip}",'
        f'"country":"{c}","click_id":"{prefix}{i}"}}'.encode()
        for a, t, u, ip, c, i in zip(
            ad_strs, ts.tolist(), users, ips, codes, index.tolist(), strict=True
        )
    ]

    keys = np.empty(n, dtype=object)
    payloads = np.empty(n, dtype=object)
    keys[fresh_pos] = _objects(fresh_keys)
    payloads[fresh_pos] = _objects(fresh_payloads)

    # Duplicates: each picks uniformly among the previous block's clicks and this block's
    # clicks sent before it, so an original always precedes its copy.
    if len(dup_pos):
        before = np.searchsorted(fresh_pos, dup_pos)
        pick = np.floor(rng.random(len(dup_pos)) * (len(pool_payloads) + before)).astype(np.int64)
        source_keys = _objects([*pool_keys, *fresh_keys])
        source_payloads = _objects([*pool_payloads, *fresh_payloads])
        keys[dup_pos] = source_keys[pick]
        payloads[dup_pos] = source_payloads[pick]

    invalid_kinds: dict[str, int] = {}
    for k, pos in enumerate(invalid_pos.tolist()):
        kind_name = INVALID_KINDS[(invalid_seen + k) % len(INVALID_KINDS)]
        invalid_kinds[kind_name] = invalid_kinds.get(kind_name, 0) + 1
        key, payload = _invalid(spec, draws, kind_name, first + pos, invalid_seen + k)
        keys[pos] = key
        payloads[pos] = payload

    block = Block(
        first_index=first,
        keys=keys.tolist(),
        payloads=payloads.tolist(),
        ad=ads,
        ts_ms=ts,
        country=countries,
        duplicates=len(dup_pos),
        late=int(late.sum()),
        invalid=len(invalid_pos),
        invalid_kinds=invalid_kinds,
    )
    return block, fresh_keys, fresh_payloads


def _invalid(
    spec: LoadSpec, draws: _Draws, kind: str, index: int, serial: int
) -> tuple[bytes, bytes]:
    """One invalid message of ``kind``: a plausible click with one thing wrong."""
    rng = draws.rng
    ad = ad_id(int(draws.ads(1)[0]), spec.ad_width)
    fields: dict[str, object] = {
        "ad_id": ad,
        "timestamp": spec.stream_ms(index),
        "user_id": f"user-{int(rng.integers(0, USERS))}",
        "ip": str(draws.ip_table[int(rng.integers(0, _IP_TABLE_SIZE))]),
        "country": str(draws.country_codes[int(draws.countries(1)[0])]),
        "click_id": f"{spec.seed}-{index}",
    }
    variant = serial // len(INVALID_KINDS)
    if kind == "not_json":
        text = _to_json(fields)
        # A message cut short, as a crashed writer leaves it.
        return ad.encode(), text[: len(text) // 2]
    if kind == "not_object":
        return ad.encode(), _to_json(list(fields.values()))
    if kind == "missing_field":
        del fields[_REQUIRED_FIELDS[variant % len(_REQUIRED_FIELDS)]]
    elif kind == "bad_ip":
        fields["ip"] = ("300.1.2.3", "not-an-ip", "10.0.0", "::g")[variant % 4]
    elif kind == "bad_timestamp":
        ts = spec.stream_ms(index)
        # Seconds instead of milliseconds (lands in 1970), text that is no date, far future,
        # a boolean.
        fields["timestamp"] = (ts // 1000, "yesterday", ts * 1000, True)[variant % 4]
    elif kind == "bad_country":
        fields["country"] = ("U1", "X", "UNITED", "🇺🇸")[variant % 4]
    elif kind == "wrong_type":
        name = ("ad_id", "user_id", "ip", "country")[variant % 4]
        fields[name] = ([fields[name]], {"value": fields[name]}, 1.5, False)[variant % 4]
    elif kind == "empty_field":
        fields[("ad_id", "user_id", "country")[variant % 3]] = "  "
    return ad.encode(), _to_json(fields)


def _objects(items: list[bytes]) -> npt.NDArray[np.object_]:
    # Filled element by element: np.array() of equal-length bytes would make a fixed-width
    # bytes array and hand back numpy.bytes_ items.
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _to_json(value: object) -> bytes:
    return orjson.dumps(value)
