"""Retention policies that would answer short, drop the only long-term data or overflow
are refused (BAD_POLICY over GraphQL, exit 1 from the CLI), and `adclick maintain` goes
on past one stored by hand."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gql.transport.exceptions import TransportQueryError

from adclick.settings import Settings
from tests.api_client import ApiProcess, GraphQL, with_tokens
from tests.helpers import adclick_process, execute, ingest_until_idle, query, send

SET_RETENTION = (
    Path(__file__).resolve().parents[2] / "graphql/operations/SetRetention.graphql"
).read_text()
DAY = timedelta(days=1)


def refusal(client: GraphQL, **variables: Any) -> tuple[str, str]:
    """(code, message) of a setRetention that must be refused."""
    try:
        client.run(SET_RETENTION, **variables)
    except TransportQueryError as exc:
        [error] = exc.errors or []
        return error["extensions"]["code"], error["message"]
    raise AssertionError(f"accepted: {variables}")


def stored(settings: Settings, relation: str) -> tuple[Any, ...]:
    rows = query(settings, "SELECT hot, cold FROM retention_policies WHERE relation = %s", relation)
    return rows[0]


def test_the_api_refuses_policies_that_break_answers_or_maintenance(
    settings: Settings, tmp_path: Path
) -> None:
    settings, tokens = with_tokens(settings)
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        admin = api.client(tokens.admin)
        cases = [
            ({"relation": "clicks_1m", "hot": "P1D", "cold": "P0D"}, "answer them short"),
            ({"relation": "clicks_1m_by_country", "hot": "P30D", "cold": "P0D"},
             "answer them short"),
            ({"relation": "clicks_1h", "hot": "P400D", "cold": "P0D"}, "only long-term data"),
            ({"relation": "raw_clicks", "hot": "P999999999D", "cold": None}, "100 years"),
            ({"relation": "raw_clicks", "hot": "P7D", "cold": "P36526D"}, "100 years"),
            ({"relation": "raw_clicks", "hot": "P1D", "cold": None}, "dedup horizon"),
            ({"relation": "top_ads", "hot": "P0D", "cold": None}, "positive"),
            ({"relation": "top_ads", "hot": "-P1D", "cold": None}, "negative"),
            # Long, but within the request budget (a larger body is REQUEST_TOO_LARGE).
            ({"relation": "top_ads", "hot": "x" * 30_000, "cold": None}, "not a duration"),
            ({"relation": "nope", "hot": "P1D", "cold": None}, "no policy"),
        ]  # fmt: skip
        for variables, why in cases:
            code, message = refusal(admin, **variables)
            assert code == "BAD_POLICY" and why in message, (variables, message)
            assert len(message) < 1000
        assert stored(settings, "clicks_1m") == (90 * DAY, timedelta(0))
        assert stored(settings, "clicks_1h") == (None, None)
        # What is sound still goes through.
        changed = admin.run(SET_RETENTION, relation="clicks_1h", hot="P400D", cold="P3650D")
        assert changed["setRetention"]["cold"] == "P3650D"
        # An argument left out keeps its value; null is forever.
        for mutation, expected in [
            ('setRetention(relation: "clicks_1h", hot: "P500D")', (500 * DAY, 3650 * DAY)),
            ('setRetention(relation: "clicks_1h", cold: null)', (500 * DAY, None)),
            ('setRetention(relation: "clicks_1h")', (500 * DAY, None)),
        ]:
            admin.run(f"mutation {{ {mutation} {{ relation }} }}")
            assert stored(settings, "clicks_1h") == expected, mutation
    finally:
        assert api.stop() == 0


def run_cli(settings: Settings, *args: str) -> tuple[int, str]:
    process = adclick_process(settings, *args)
    _out, err = process.communicate(timeout=60)
    return process.returncode, err.decode()


def test_the_cli_refuses_them_and_force_sets_only_what_may_be_forced(
    settings: Settings,
) -> None:
    code, err = run_cli(settings, "retention", "set", "clicks_1m", "--hot", "P1D", "--cold", "P0D")
    assert code == 1 and "ADCLICK_MINUTE_ROLLUP_RETENTION" in err and "Traceback" not in err
    code, err = run_cli(
        settings, "retention", "set", "clicks_1m", "--hot", "P1D", "--cold", "P0D", "--force"
    )
    assert code == 1 and "ADCLICK_MINUTE_ROLLUP_RETENTION" in err  # cannot be forced
    code, err = run_cli(
        settings, "retention", "set", "raw_clicks", "--hot", "P999999999D", "--cold", "P1D"
    )
    assert code == 1 and "100 years" in err and "Traceback" not in err
    assert stored(settings, "raw_clicks") == (7 * DAY, 365 * DAY)

    drop_hours = ("retention", "set", "clicks_1h", "--hot", "P400D", "--cold", "P0D")
    code, err = run_cli(settings, *drop_hours)
    assert code == 1 and "only long-term data" in err and "--force" in err
    assert stored(settings, "clicks_1h") == (None, None)
    code, err = run_cli(settings, *drop_hours, "--force")
    assert code == 0, err
    assert stored(settings, "clicks_1h") == (400 * DAY, timedelta(0))


@pytest.mark.parametrize("bad", ["999999999 days", "100000000 years"])
def test_maintain_leaves_a_policy_stored_by_hand_alone_and_maintains_the_others(
    settings: Settings, tmp_path: Path, bad: str
) -> None:
    settings = settings.model_copy(update={"cold_storage_url": str(tmp_path / "cold")})
    now_ms = int(time.time() * 1000)
    clicks = [
        {"ad_id": "ad-1", "timestamp": now_ms - days * 86_400_000, "user_id": f"u{days}",
         "ip": "198.51.100.7", "country": "US"}
        for days in (3, 0)
    ]  # fmt: skip
    send(settings, clicks)
    ingest_until_idle(settings)
    # By hand, past every check: P999999999D overflowed every later `adclick maintain`.
    execute(
        settings,
        "UPDATE retention_policies SET hot = %s::interval WHERE relation = 'clicks_1m'",
        bad,
    )
    execute(
        settings,
        "UPDATE retention_policies SET hot = INTERVAL '1 day' WHERE relation = 'raw_clicks'",
    )

    code, err = run_cli(settings, "maintain")

    assert code == 0, err
    assert "OverflowError" not in err and "Traceback" not in err
    assert "retention policy of clicks_1m is not valid" in err and "100 years" in err
    # raw_clicks was maintained all the same: the day of the old click went cold.
    assert query(settings, "SELECT relation, rows FROM cold_files") == [("raw_clicks", 1)]
    assert query(settings, "SELECT count(*) FROM clicks_1m") == [(2,)]  # left alone
    code, err = run_cli(settings, "retention", "show")
    assert code == 0 and "Traceback" not in err
