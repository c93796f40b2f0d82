"""The soak's short form (issue 14): every process at once, traffic with bursts, queries,
a subscriber, and every fault kind once; at the end nothing is lost or counted twice and
no process exited that was not killed on purpose. `python -m bench soak` is the long form."""

from __future__ import annotations

from pathlib import Path

import pytest

from adclick.settings import Settings
from bench.soak import FAULTS, WATCHED_FAULTS, SoakPlan, run_soak

pytestmark = pytest.mark.slow(seconds=210)  # started first (tests/conftest.py)


SHORT = SoakPlan(
    minutes=2.5,
    rate=1_500.0,
    speedup=720.0,  # 30 hours of event time: raw chunks pass their hot time and are tiered
    burst_rate=3_000.0,
    burst_every_s=60.0,
    burst_s=10.0,
    ads=3_000,
    query_clients=2,
    database_down_s=5.0,
    broker_frozen_s=8.0,
)


def test_a_short_soak_with_every_fault_counts_exactly(
    stack_settings: Settings, tmp_path: Path
) -> None:
    result = run_soak(stack_settings, SHORT, tmp_path, say=print)
    checks = result["checks"]
    faults = {fault["kind"]: fault for fault in result["faults"]}
    assert {kind for _at, kind in FAULTS} | set(WATCHED_FAULTS) <= set(faults), faults
    assert not [fault for fault in result["faults"] if "error" in fault], result["faults"]
    assert checks["drained"], "ingest or the closer did not catch up after the traffic"
    assert checks["unplanned_exits"] == []
    assert set(checks["exit_codes_at_stop"].values()) == {0}, checks["exit_codes_at_stop"]
    for table in ("clicks_1m_by_country", "clicks_1m", "clicks_1h"):
        assert checks["rollups"][table]["differing"] == 0, checks  # dead letters too
    assert checks["reconcile"]["discrepancies"] == 0
    assert sum(checks["dead_letters"].values()) == checks["invalid_sent"], checks["dead_letters"]
    subscription = checks["subscription"]
    assert subscription["received"] > 0 and subscription["repeated"] == 0
    assert subscription["missing"] == 0 and subscription["in_order"], subscription
    assert (tmp_path / "timeline.png").stat().st_size > 0
