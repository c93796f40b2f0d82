"""HTTP beyond GraphQL's body: cache headers a browser or gateway can act on, documents
by id (GET URLs a CDN can key on), and a server that answers only its trusted documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.api_client import ApiProcess, free_port
from tests.helpers import wait_for
from tests.integration.conftest import ApiData
from tests.integration.test_api import TOP_ADS, assert_top_equals_truth, metric_values, top_ads
from tests.truth_ranking import iso, minute_s

OPERATIONS = Path(__file__).resolve().parents[2] / "graphql" / "operations"


def _post(data: ApiData, body: dict[str, Any], token: str, **headers: str) -> httpx.Response:
    headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{data.api.url}/graphql", json=body, headers=headers, timeout=30)


def test_answers_over_complete_windows_may_be_reused_and_revalidate(api_data: ApiData) -> None:
    start = minute_s(top_ads(api_data.reader, {"lastMinutes": 60}, 1)["window"]["from"])
    window = {"from": iso(start), "to": iso(start + 600)}  # long behind the watermark
    body = {"query": TOP_ADS, "variables": {"window": window, "limit": 10}}
    first = _post(api_data, body, api_data.tokens.reader)
    assert first.status_code == 200 and first.json()["data"]["topAds"]["window"]["complete"]
    assert first.headers["cache-control"] == "private, max-age=60"  # tokens: no shared cache
    again = _post(
        api_data, body, api_data.tokens.reader, **{"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    # Admin answers and refusals are never reused.
    status = _post(api_data, {"query": "{ ingestStatus { partition } }"}, api_data.tokens.admin)
    assert status.headers["cache-control"] == "no-cache"
    refused = _post(api_data, {"query": TOP_ADS, "variables": {"window": window, "limit": 0}},
                    api_data.tokens.reader)  # fmt: skip
    assert refused.headers["cache-control"] == "no-store"


def test_kept_answers_go_again_only_to_callers_who_may_read(
    api_data: ApiData, tmp_path: Path
) -> None:
    """An API of one process sends an answer it made from memory again as it was, to the
    same request of any reader, and never to a caller without a valid token; other
    answers are made again each time (api/response_cache.py)."""
    # The index still for seconds at a time: answers are kept for as long.
    update = {"api_port": free_port(), "api_refresh_interval_s": 3.0}
    settings = api_data.settings.model_copy(update=update)
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        url, tokens = f"{api.url}/graphql", api_data.tokens

        def post(body: dict[str, Any], token: str | None) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer: dict[str, Any] = httpx.post(url, json=body, headers=headers).json()
            return answer

        def reused() -> float:
            return metric_values(api.url, "adclick_api_answers_kept_total").get("reused", 0.0)

        body = {"query": TOP_ADS, "variables": {"window": {"lastMinutes": 5}, "limit": 10}}
        first = post(body, tokens.reader)["data"]["topAds"]
        assert_top_equals_truth(first, api_data.truth, 10)
        # Kept the second time it is asked in one state of the index, sent the third.
        wait_for(
            lambda: (
                all(post(body, tokens.reader)["data"]["topAds"] == first for _ in range(3))
                and reused() > 0
            ),
            timeout_s=20,
            what="a kept answer sent again",
        )
        for token in [None, "not-a-token"]:
            codes = [e["extensions"]["code"] for e in post(body, token)["errors"]]
            assert codes == ["UNAUTHENTICATED"]
        counted = metric_values(api.url, "adclick_api_requests_total")
        assert counted["topAds,ok"] >= 2  # kept answers count as answered requests
        # Made from the database each time: never kept.
        status = {"query": "{ ingestStatus { partition nextOffset } }"}
        before = reused()
        for _ in range(5):
            assert post(status, tokens.admin)["data"]["ingestStatus"]
        assert reused() == before
    finally:
        assert api.stop() == 0


def test_operations_are_sent_by_document_id(api_data: ApiData) -> None:
    variables = {"lastMinutes": 15, "limit": 10, "filter": {"country": ["US"]}}
    by_text = _post(
        api_data,
        {"query": (OPERATIONS / "TopAds.graphql").read_text(), "variables": variables},
        api_data.tokens.reader,
    ).json()
    headers = {"Authorization": f"Bearer {api_data.tokens.reader}"}
    by_get = httpx.get(
        f"{api_data.api.url}/graphql",
        params={"documentId": "TopAds", "variables": json.dumps(variables)},
        headers=headers,
    )
    assert by_get.status_code == 200 and by_get.json() == by_text
    assert by_text["data"]["topAds"]["ads"]
    unknown = _post(api_data, {"documentId": "sha256:00", "variables": {}}, api_data.tokens.reader)
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"


def test_a_server_of_trusted_documents_refuses_any_other(api_data: ApiData, tmp_path: Path) -> None:
    settings = api_data.settings.model_copy(
        update={"api_trusted_documents_only": True, "api_port": free_port()}
    )
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        reader = api.client(api_data.tokens.reader)
        ad_hoc = "{ topAds(window: {lastMinutes: 5}) { ads { adId } } }"
        assert reader.error_codes(ad_hoc) == ["DOCUMENT_NOT_TRUSTED"]
        websocket = api.client(api_data.tokens.reader, websocket=True)
        assert websocket.error_codes(ad_hoc) == ["DOCUMENT_NOT_TRUSTED"]
        text = (OPERATIONS / "TopAds.graphql").read_text()
        variables = {"lastMinutes": 15, "limit": 10}
        # By its text, reformatted, or by id: the same answer.
        answers = [
            reader.run(text, **variables),
            reader.run(" ".join(text.split("\n")[2:]), **variables),  # no comment lines
            _post(api_data_on(api, api_data), {"documentId": "TopAds", "variables": variables},
                  api_data.tokens.reader).json()["data"],
        ]  # fmt: skip
        assert answers[0]["topAds"]["ads"] and answers[1:] == answers[:1] * 2
    finally:
        assert api.stop() == 0


def api_data_on(api: ApiProcess, data: ApiData) -> ApiData:
    """``data`` answered by another API process."""
    return ApiData(data.settings, data.truth, api, data.tokens)
