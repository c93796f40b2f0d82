"""Attribute filters and the data that can answer them.

A filter maps dimensions to the values any of which a click must have. The smallest
filtered rollup whose dimensions cover the filter answers it; a filter no rollup covers
is answered from raw_clicks, which only holds the dedup horizon (hot raw data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from adclick.db.rollups import FilteredRollup
from adclick.query.arguments import check_value
from adclick.query.errors import ErrorCode, QueryError


class Source(StrEnum):
    """Where an answer was read from."""

    ROLLUP = "ROLLUP"
    FILTERED_ROLLUP = "FILTERED_ROLLUP"
    RAW = "RAW"


@dataclass(frozen=True)
class Filter:
    """Normalised: dimensions sorted, values sorted and unique, no empty entries."""

    conditions: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def of(cls, given: Mapping[str, Sequence[str] | None], allowed: Sequence[str]) -> Filter:
        conditions = []
        for dim, values in sorted(given.items()):
            if values is None:
                continue
            if dim not in allowed:
                raise QueryError(
                    ErrorCode.BAD_FILTER,
                    f"cannot filter by {dim!r}; filterable: {', '.join(allowed)}",
                )
            if not values:
                raise QueryError(
                    ErrorCode.BAD_FILTER, f"filter {dim} lists no values (omit it instead)"
                )
            for value in values:
                check_value(value, f"a {dim} filter value", ErrorCode.BAD_FILTER)
            conditions.append((dim, tuple(sorted(set(values)))))
        return cls(tuple(conditions))

    @property
    def dimensions(self) -> frozenset[str]:
        return frozenset(dim for dim, _values in self.conditions)

    def __bool__(self) -> bool:
        return bool(self.conditions)


@dataclass(frozen=True)
class Plan:
    """How to answer a filter: the source, and the rollup when it is a filtered one."""

    source: Source
    rollup: FilteredRollup | None = None


def plan_filter(query_filter: Filter, rollups: Sequence[FilteredRollup]) -> Plan:
    """The smallest rollup that covers the filter, else raw clicks."""
    if not query_filter:
        return Plan(Source.ROLLUP)
    covering = [r for r in rollups if query_filter.dimensions <= set(r.dimensions)]
    if covering:
        return Plan(Source.FILTERED_ROLLUP, min(covering, key=lambda r: len(r.dimensions)))
    return Plan(Source.RAW)
