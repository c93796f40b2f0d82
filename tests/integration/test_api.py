"""The GraphQL API over real HTTP and WebSocket, on data ingested through Kafka.

Every answer is compared with the loadgen truth: the window an answer says it covers is
recomputed from the truth, so the comparison holds whatever stream time the API used.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adclick.lifecycle.reconcile import reconcile
from adclick.loadgen.truth import Truth
from tests.api_client import ApiProcess, GraphQL, free_port
from tests.helpers import query
from tests.integration.conftest import ApiData
from tests.truth_ranking import iso, minute_s, truth_clicks, truth_top

OPERATIONS = Path(__file__).resolve().parents[2] / "graphql" / "operations"

TOP_ADS = """
query ($window: WindowInput!, $limit: Int!, $filter: ClickFilter) {
  topAds(window: $window, limit: $limit, filter: $filter) {
    ads { rank adId clicks }
    window { from to minutes complete }
    source
  }
}"""

AD_CLICKS = """
query ($adId: String!, $window: WindowInput!, $filter: ClickFilter, $granularity: Granularity!) {
  adClicks(adId: $adId, window: $window, filter: $filter, granularity: $granularity) {
    adId clicks granularity
    series { start clicks }
    window { from to minutes }
    source
  }
}"""


def top_ads(
    client: GraphQL, window: dict[str, Any], limit: int = 100, **filter_: list[str]
) -> dict[str, Any]:
    data = client.run(TOP_ADS, window=window, limit=limit, filter=filter_ or None)
    result: dict[str, Any] = data["topAds"]
    return result


def assert_top_equals_truth(
    answer: dict[str, Any], truth: Truth, limit: int, countries: list[str] | None = None
) -> None:
    window = answer["window"]
    start_s, end_s = minute_s(window["from"]), minute_s(window["to"])
    expected = truth_top(truth_clicks(truth, start_s, end_s, countries), limit)
    assert expected, "the window holds no clicks: the comparison would prove nothing"
    assert answer["ads"] == expected


@pytest.mark.parametrize("minutes", [1, 5, 60])
@pytest.mark.parametrize("countries", [None, ["US"], ["DE", "IN"]])
def test_top_ads_over_the_last_minutes_equal_the_truth(
    api_data: ApiData, minutes: int, countries: list[str] | None
) -> None:
    filter_ = {"country": countries} if countries else {}
    answer = top_ads(api_data.reader, {"lastMinutes": minutes}, 100, **filter_)
    assert answer["window"]["minutes"] == minutes
    assert answer["source"] == ("FILTERED_ROLLUP" if countries else "ROLLUP")
    assert_top_equals_truth(answer, api_data.truth, 100, countries)


def test_top_ads_over_minute_ranges_equal_the_truth(api_data: ApiData) -> None:
    minutes = sorted({minute for _ad, minute in api_data.truth.by_ad_minute})
    first, last = minutes[0], minutes[-1]
    hour_before_first = first - first % 3600 - 3600
    windows = [
        (first + 17 * 60, first + 34 * 60),  # ad hoc, inside the window index
        (last - 5 * 60, last + 60),  # reaches the newest, incomplete minute: SQL
        (hour_before_first, last + 60),  # holds whole hours: clicks_1h plus the edges
    ]
    for start_s, end_s in windows:
        window = {"from": iso(start_s), "to": iso(end_s)}
        assert_top_equals_truth(top_ads(api_data.reader, window, 1000), api_data.truth, 1000)
        answer = top_ads(api_data.reader, window, 50, country=["US", "BR"])
        assert_top_equals_truth(answer, api_data.truth, 50, ["US", "BR"])


def metric_values(base_url: str, name: str) -> dict[str, float]:
    """One metric's samples from /metrics, by their labels' values joined with ','."""
    families = text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text)
    return {
        ",".join(sample.labels.values()): sample.value
        for family in families
        for sample in family.samples
        if sample.name == name
    }


def test_long_windows_are_ranked_from_the_hour_index(api_data: ApiData, tmp_path: Path) -> None:
    """An API holding a few minutes, and hours before them, ranks long windows exactly,
    with and without a filter.

    The index's minutes start 10 minutes before the newest whole hour, so the windows
    below take that hour whole from its hour array, or end inside it (its part before
    the minutes bounded by its quarter hours, the candidates' minutes read by primary
    key), or lie entirely before the minutes; all start inside an hour, inside a quarter
    or on a quarter's start, and some end on one.
    """
    minutes = sorted({minute for _ad, minute in api_data.truth.by_ad_minute})
    first, last = minutes[0], minutes[-1]  # last: the minute stream time is in
    index_start = last - last % 3600 - 10 * 60
    settings = api_data.settings.model_copy(
        update={"api_cache_minutes": (last - index_start) // 60, "api_port": free_port()}
    )
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        reader = api.client(api_data.tokens.reader)
        deadline = time.monotonic() + 60
        while (hours := metric_values(api.url, "adclick_api_hour_index_hours")).get(
            "held", 0
        ) < hours.get("wanted", 1):
            assert time.monotonic() < deadline, f"hour index not loaded: {hours}"
            time.sleep(0.2)
        edge_hour = index_start - index_start % 3600  # the hour the minutes start in
        windows: list[dict[str, Any]] = [
            {"lastMinutes": 24 * 60},
            {"from": iso(first + 7 * 60), "to": iso(index_start + 5 * 60)},
            {"from": iso(first + 2 * 60), "to": iso(index_start - 60)},
            {"from": iso(edge_hour + 15 * 60), "to": iso(index_start + 5 * 60)},
            {"from": iso(first + 2 * 60), "to": iso(edge_hour + 45 * 60)},
        ]
        for window in windows:
            for limit in (1000, 10):
                answer = top_ads(reader, window, limit)
                assert answer["source"] == "ROLLUP"
                assert_top_equals_truth(answer, api_data.truth, limit)
            for countries in (["US"], ["DE", "IN"]):
                answer = top_ads(reader, window, 100, country=countries)
                assert answer["source"] == "FILTERED_ROLLUP"
                assert_top_equals_truth(answer, api_data.truth, 100, countries)
        ranked_by = metric_values(api.url, "adclick_api_top_ads_total")
        assert ranked_by == {"hour_index": 4 * len(windows)}
    finally:
        assert api.stop() == 0


def test_top_ads_are_complete_only_behind_the_watermark(api_data: ApiData) -> None:
    newest = top_ads(api_data.reader, {"lastMinutes": 1})
    older = top_ads(api_data.reader, {"lastMinutes": 1}, 100)
    hour = top_ads(api_data.reader, {"lastMinutes": 60})
    # The allowed lateness is a minute: the newest complete minute may still change.
    assert newest["window"]["complete"] is False
    assert older["window"] == newest["window"]
    start = minute_s(hour["window"]["from"])
    early = top_ads(api_data.reader, {"from": iso(start), "to": iso(start + 600)})
    assert early["window"]["complete"] is True


def test_ad_clicks_equal_the_truth(api_data: ApiData) -> None:
    truth = api_data.truth
    hour = top_ads(api_data.reader, {"lastMinutes": 60}, 1000)
    ranked = [ad["adId"] for ad in hour["ads"]]
    ads = [ranked[0], ranked[len(ranked) // 2], ranked[-1], "ad-that-never-clicked"]
    for ad in ads:
        for window in ({"lastMinutes": 1}, {"lastMinutes": 5}, {"lastMinutes": 60}):
            answer = api_data.reader.run(
                AD_CLICKS, adId=ad, window=window, filter=None, granularity="MINUTE"
            )["adClicks"]
            start_s = minute_s(answer["window"]["from"])
            expected = [
                {"start": iso(m), "clicks": truth.by_ad_minute.get((ad, m), 0)}
                for m in range(start_s, minute_s(answer["window"]["to"]), 60)
            ]
            assert answer["series"] == expected
            assert answer["clicks"] == sum(point["clicks"] for point in expected)
        by_country = api_data.reader.run(
            AD_CLICKS,
            adId=ad,
            window={"lastMinutes": 60},
            filter={"country": ["US"]},
            granularity="MINUTE",
        )["adClicks"]
        start_s = minute_s(by_country["window"]["from"])
        end_s = minute_s(by_country["window"]["to"])
        assert by_country["source"] == "FILTERED_ROLLUP"
        assert by_country["clicks"] == truth_clicks(truth, start_s, end_s, ["US"])[ad]


ADS_CLICKS = """
query ($adIds: [String!]!, $window: WindowInput!) {
  adsClicks(adIds: $adIds, window: $window) {
    ads { adId clicks series { start clicks } }
    adIds clicks
    window { from to }
  }
}"""


def test_ads_clicks_as_objects_and_as_columns_equal_the_truth(api_data: ApiData) -> None:
    """Each ad asked for, in order and repeats kept, as objects (``ads``) and as the two
    lists (``adIds``, ``clicks``) a dashboard of many ads asks for."""
    hour = top_ads(api_data.reader, {"lastMinutes": 60}, 1000)
    ranked = [ad["adId"] for ad in hour["ads"]]
    asked = [ranked[-1], "ad-that-never-clicked", ranked[0], ranked[len(ranked) // 2], ranked[0]]
    for window in ({"lastMinutes": 5}, {"lastMinutes": 60}):
        answer = api_data.reader.run(ADS_CLICKS, adIds=asked, window=window)["adsClicks"]
        start_s, end_s = minute_s(answer["window"]["from"]), minute_s(answer["window"]["to"])
        totals = truth_clicks(api_data.truth, start_s, end_s)
        assert answer["adIds"] == asked == [ad["adId"] for ad in answer["ads"]]
        assert answer["clicks"] == [totals[ad] for ad in asked]
        assert [ad["clicks"] for ad in answer["ads"]] == answer["clicks"]
        assert [sum(b["clicks"] for b in ad["series"]) for ad in answer["ads"]] == answer["clicks"]
        assert any(answer["clicks"]), "no clicks in the window, nothing proven"


def test_ad_clicks_by_hour_sum_the_minutes_of_each_hour(api_data: ApiData) -> None:
    truth = api_data.truth
    minutes = sorted({minute for _ad, minute in truth.by_ad_minute})
    start_s, end_s = minutes[0] - minutes[0] % 3600, minutes[-1] + 60
    ad = top_ads(api_data.reader, {"lastMinutes": 60}, 1)["ads"][0]["adId"]
    answer = api_data.reader.run(
        AD_CLICKS,
        adId=ad,
        window={"from": iso(start_s), "to": iso(end_s)},
        filter=None,
        granularity="HOUR",
    )["adClicks"]
    hours: Counter[int] = Counter()
    for (clicked_ad, minute), n in truth.by_ad_minute.items():
        if clicked_ad == ad:
            hours[minute - minute % 3600] += n
    assert answer["series"] == [
        {"start": iso(h), "clicks": hours[h]} for h in range(start_s, end_s, 3600)
    ]


def test_websocket_answers_equal_http_answers(api_data: ApiData) -> None:
    websocket = api_data.api.client(api_data.tokens.reader, websocket=True)
    for window in ({"lastMinutes": 5}, {"lastMinutes": 60}):
        over_ws = top_ads(websocket, window, 100, country=["US"])
        assert over_ws == top_ads(api_data.reader, window, 100, country=["US"])
        assert_top_equals_truth(over_ws, api_data.truth, 100, ["US"])
    unauthenticated = api_data.api.client(None, websocket=True)
    assert unauthenticated.error_codes(TOP_ADS, window={"lastMinutes": 5}, limit=5) == [
        "UNAUTHENTICATED"
    ]


OPERATION_VARIABLES: dict[str, dict[str, Any]] = {
    "AdClicksLastHour": {"adId": "{top_ad}"},
    "AdClicks": {
        "adId": "{top_ad}",
        "from": "{hour_ago}",
        "to": "{newest}",
        "granularity": "MINUTE",
        "filter": {"country": ["US"]},
    },
    "FilterDimensions": {},
    "AdsClicksLatest": {"adIds": "{top_ad_and_another}", "lastMinutes": 60},
    "AdClicksByHour": {
        "adId": "{top_ad}",
        "from": "{hour_ago}",
        "to": "{newest}",
        "filter": {"country": ["US"]},
    },
    "TopAds": {"lastMinutes": 15, "limit": 10, "filter": {"country": ["US"]}},
    "TopAdsInRange": {"from": "{hour_ago}", "to": "{newest}", "limit": 20},
    "IngestStatus": {},
    "TopAdsHistory": {"windowMinutes": 5, "from": "{hour_ago}", "to": "{newest}", "limit": 10},
    "RetentionPolicies": {},
    "SetRetention": {"relation": "clicks_1h", "hot": None, "cold": None},
}
# Subscriptions need lists published while they listen: test_close.py runs these.
SUBSCRIPTIONS = {"TopAdsLive"}


def test_every_frontend_operation_runs(api_data: ApiData) -> None:
    files = sorted(OPERATIONS.glob("*.graphql"))
    files = [f for f in files if f.stem not in SUBSCRIPTIONS]
    assert {f.stem for f in files} == set(OPERATION_VARIABLES), "give each operation variables"
    admin = api_data.api.client(api_data.tokens.admin)
    hour = top_ads(api_data.reader, {"lastMinutes": 60}, 1)
    values = {
        "{top_ad}": hour["ads"][0]["adId"],
        "{top_ad_and_another}": [hour["ads"][0]["adId"], "ad-never-clicked"],
        "{hour_ago}": hour["window"]["from"],
        "{newest}": hour["window"]["to"],
    }
    for path in files:
        variables = {
            name: values.get(value, value) if isinstance(value, str) else value
            for name, value in OPERATION_VARIABLES[path.stem].items()
        }
        data = admin.run(path.read_text(), **variables)
        assert data and all(value for value in data.values()), path.name  # none empty
    status = admin.run((OPERATIONS / "IngestStatus.graphql").read_text())["ingestStatus"]
    assert sum(p["nextOffset"] for p in status) == 40_000  # every message, consumed once


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        (TOP_ADS, {"window": {"lastMinutes": 0}, "limit": 5}, "BAD_WINDOW"),
        (TOP_ADS, {"window": {"lastMinutes": 5, "from": "2026-01-01T00:00:00Z"}, "limit": 5},
         "BAD_WINDOW"),
        (TOP_ADS, {"window": {"from": "2026-01-01T00:00:30Z", "to": "2026-01-01T00:05:00Z"},
                   "limit": 5}, "BAD_WINDOW"),
        (TOP_ADS, {"window": {"from": "2026-01-01T00:05:00Z", "to": "2026-01-01T00:05:00Z"},
                   "limit": 5}, "BAD_WINDOW"),
        (TOP_ADS, {"window": {"from": "2001-01-01T00:00:00Z", "to": "2001-01-01T01:00:00Z"},
                   "limit": 5}, "WINDOW_OUT_OF_RANGE"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "limit": 1001}, "LIMIT_TOO_LARGE"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "limit": 0}, "BAD_LIMIT"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "limit": 5, "filter": {"country": []}},
         "BAD_FILTER"),
        (TOP_ADS, {"window": {"lastMinutes": 5}, "limit": 5, "filter": {"city": ["Paris"]}},
         "GRAPHQL_VALIDATION_FAILED"),
        ("{ ingestStatus { partition } }", {}, "FORBIDDEN"),
        ("{ " + " ".join(f"a{i}: topAds(window: {{lastMinutes: 1}}) {{ source }}"
                         for i in range(21)) + " }", {}, "QUERY_TOO_COMPLEX"),
    ],
)  # fmt: skip
def test_bad_requests_get_error_codes(
    api_data: ApiData, query: str, variables: dict[str, Any], code: str
) -> None:
    assert api_data.reader.error_codes(query, **variables) == [code]


def test_requests_need_a_valid_token(api_data: ApiData) -> None:
    query = "{ topAds(window: {lastMinutes: 5}) { source } }"
    assert api_data.api.client(None).error_codes(query) == ["UNAUTHENTICATED"]
    assert api_data.api.client("not-a-token").error_codes(query) == ["UNAUTHENTICATED"]
    response = httpx.post(
        f"{api_data.api.url}/graphql",
        json={"query": query},
        headers={"Authorization": f"Basic {api_data.tokens.reader}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    admin = api_data.api.client(api_data.tokens.admin)
    assert admin.run(query)["topAds"]["source"] == "ROLLUP"  # an admin reads too


SET_RETENTION = (OPERATIONS / "SetRetention.graphql").read_text()


def test_admins_set_retention_and_readers_cannot(api_data: ApiData) -> None:
    admin = api_data.api.client(api_data.tokens.admin)
    changed = admin.run(SET_RETENTION, relation="raw_clicks", hot="P14D", cold="P400D")
    assert changed["setRetention"] == {
        "relation": "raw_clicks",
        "hot": "P14D",
        "cold": "P400D",
        "updatedBy": "test-admin",
    }
    stored = query(api_data.settings, "SELECT hot, cold FROM retention_policies"
                   " WHERE relation = 'raw_clicks'")[0]  # fmt: skip
    assert stored == (timedelta(days=14), timedelta(days=400))
    assert api_data.reader.error_codes(
        SET_RETENTION, relation="raw_clicks", hot="P1D", cold=None
    ) == ["FORBIDDEN"]
    # Raw clicks must stay hot as long as duplicates are looked for (the dedup horizon).
    assert admin.error_codes(SET_RETENTION, relation="raw_clicks", hot="P1D", cold=None) == [
        "BAD_POLICY"
    ]
    assert admin.error_codes(SET_RETENTION, relation="nope", hot="P1D", cold=None) == ["BAD_POLICY"]
    assert admin.error_codes(SET_RETENTION, relation="clicks_1m", hot="soon", cold=None) == [
        "BAD_POLICY"
    ]
    admin.run(SET_RETENTION, relation="raw_clicks", hot="P7D", cold="P365D")


def test_health_readiness_and_metrics(api_data: ApiData) -> None:
    base = api_data.api.url
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    top_ads(api_data.reader, {"lastMinutes": 5})
    metrics = httpx.get(f"{base}/metrics").text
    ok = 'adclick_api_requests_total{operation="topAds",outcome="ok"}'
    assert ok in metrics
    assert 'adclick_api_request_duration_seconds_count{operation="topAds"}' in metrics
    # The newest reconciliation, recorded by `adclick reconcile`, is a metric too.
    minutes = sorted({minute for _ad, minute in api_data.truth.by_ad_minute})
    start = datetime.fromtimestamp(minutes[0], tz=UTC)
    reconcile(api_data.settings, start, start + timedelta(hours=2))
    metrics = httpx.get(f"{base}/metrics").text
    assert "adclick_reconcile_discrepancies 0.0" in metrics
    assert "adclick_reconcile_last_run_timestamp_seconds" in metrics
