"""Rankings computed from a loadgen truth, the way every adclick answer must rank."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from adclick.loadgen.truth import Truth


def minute_s(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def iso(moment_s: int) -> str:
    return datetime.fromtimestamp(moment_s, tz=UTC).isoformat()


def truth_clicks(
    truth: Truth, start_s: int, end_s: int, countries: list[str] | None = None
) -> Counter[str]:
    """Clicks per ad over [start_s, end_s) by the truth, optionally in some countries."""
    clicks: Counter[str] = Counter()
    if countries is None:
        for (ad, minute), n in truth.by_ad_minute.items():
            if start_s <= minute < end_s:
                clicks[ad] += n
    else:
        for (ad, minute, country), n in truth.by_ad_minute_country.items():
            if start_s <= minute < end_s and country in countries:
                clicks[ad] += n
    return clicks


def truth_top(clicks: Counter[str], limit: int) -> list[dict[str, Any]]:
    ranked = sorted(clicks.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"rank": r, "adId": ad, "clicks": n} for r, (ad, n) in enumerate(ranked, start=1)]
