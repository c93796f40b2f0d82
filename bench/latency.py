"""Latency of timed requests per operation: what bench soak and bench load report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol


class Timed(Protocol):
    operation: str
    ms: float
    ok: bool


def percentiles(samples: Iterable[Timed]) -> dict[str, dict[str, float]]:
    """Per operation: requests, failures, and p50, p99 and max (ms) of the answered ones
    (NaN when none was)."""
    by_operation: dict[str, list[Timed]] = defaultdict(list)
    for sample in samples:
        by_operation[sample.operation].append(sample)
    out = {}
    for name, group in sorted(by_operation.items()):
        ms = sorted(s.ms for s in group if s.ok)
        out[name] = {
            "n": len(group),
            "failed": sum(not s.ok for s in group),
            "p50_ms": round(ms[len(ms) // 2], 1) if ms else float("nan"),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1) if ms else float("nan"),
            "max_ms": round(ms[-1], 1) if ms else float("nan"),
        }
    return out
