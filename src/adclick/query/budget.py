"""The budget of one request: how much database work its fields may ask for together.

A request may hold up to ``api_max_aliases`` fields, each a whole query; without a
bound, a few requests of raw-filtered year-long windows would hold every pooled
connection. Each adClicks, adsClicks and topAds field is charged, once its window and
source are known and before it reads anything, the minutes of its window (adsClicks:
times its ads), minutes answered from raw clicks (a filter no dimension set covers)
counted ``raw_filter_cost`` times; the filter values of all fields are counted too. A
field that would go over the budget is refused with QUERY_TOO_EXPENSIVE (or
TOO_MANY_FILTER_VALUES), so a request's work is bounded whatever its shape.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from adclick.query.errors import ErrorCode, QueryError
from adclick.query.filters import Source
from adclick.query.window import Window
from adclick.settings import Settings


class RequestBudget:
    """What is left of one request's budget; fields resolve in threads, hence the lock."""

    def __init__(self, max_cost: int, raw_filter_cost: int, max_filter_values: int) -> None:
        self.max_cost = max_cost
        self.raw_filter_cost = raw_filter_cost
        self.max_filter_values = max_filter_values
        self.cost = 0
        self.filter_values = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        # A copy goes to the index process with each field (api/index_server.py).
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def copy(self) -> RequestBudget:
        """A copy to charge elsewhere (a worker's supervisor, api/index_server.py); what
        it is charged comes back through ``add_charged``."""
        with self._lock:
            copy = RequestBudget(self.max_cost, self.raw_filter_cost, self.max_filter_values)
            copy.cost, copy.filter_values = self.cost, self.filter_values
        return copy

    def add_charged(self, sent: RequestBudget, charged: RequestBudget) -> None:
        """Add what ``sent`` (a ``copy`` of this budget) was charged, now ``charged``.

        The copy was charged by the same rules against what this budget held when it was
        made; fields resolved in parallel may have been charged here since, so the sum is
        checked again.
        """
        cost = charged.cost - sent.cost
        values = charged.filter_values - sent.filter_values
        with self._lock:
            self._check_filter_values(values)
            if self.cost + cost > self.max_cost:
                raise QueryError(
                    ErrorCode.QUERY_TOO_EXPENSIVE,
                    f"this request's fields together would cost {self.cost + cost:,}, above "
                    f"its budget of {self.max_cost:,}: ask for shorter windows, fewer fields "
                    "per request, or filter by a dimension set",
                )
            self.cost += cost
            self.filter_values += values

    @classmethod
    def of(cls, settings: Settings) -> RequestBudget:
        return cls(
            settings.api_max_request_cost,
            settings.api_raw_filter_cost,
            settings.api_max_filter_values,
        )

    def cost_of(self, window: Window, source: Source, ads: int = 1) -> int:
        return window.minutes * (self.raw_filter_cost if source is Source.RAW else 1) * ads

    def charge(self, what: str, window: Window, source: Source, ads: int = 1) -> None:
        """Charge one field (``what``, for the message) reading ``window`` from ``source``
        for ``ads`` ads (adsClicks: each ad's minutes; topAds and adClicks: 1)."""
        cost = self.cost_of(window, source, ads)
        with self._lock:
            if self.cost + cost > self.max_cost:
                raw = (
                    f" (answered from raw clicks: each minute costs {self.raw_filter_cost})"
                    if source is Source.RAW
                    else ""
                )
                of_ads = f" of {ads:,} ads" if ads > 1 else ""
                raise QueryError(
                    ErrorCode.QUERY_TOO_EXPENSIVE,
                    f"{what} over {window.minutes:,} minutes{of_ads}{raw} would bring this "
                    f"request's cost to {self.cost + cost:,}, above its budget of "
                    f"{self.max_cost:,}: ask for shorter windows, fewer fields per "
                    "request, or filter by a dimension set",
                )
            self.cost += cost

    def charge_filter(self, filter_args: Mapping[str, Sequence[str] | None]) -> None:
        """Count a field's filter values against the request's maximum."""
        values = sum(len(v) for v in filter_args.values() if v is not None)
        with self._lock:
            self._check_filter_values(values)
            self.filter_values += values

    def _check_filter_values(self, values: int) -> None:
        if self.filter_values + values > self.max_filter_values:
            raise QueryError(
                ErrorCode.TOO_MANY_FILTER_VALUES,
                f"this request lists {self.filter_values + values:,} filter values, "
                f"more than {self.max_filter_values:,}",
            )
