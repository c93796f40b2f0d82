"""GraphQL over HTTP as its specification says, for any client: graphql-http's audit
suite passes whole (no error, no warning); application/graphql-response+json gets status
codes that tell a request error from an executed answer; pages on listed origins may call
the API (CORS), others not."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.api_client import ApiProcess, free_port
from tests.integration.conftest import ApiData
from tests.web import WEB, npm_packages

GRAPHQL_RESPONSE = "application/graphql-response+json"


def test_the_graphql_http_audit_suite_passes_whole(api_data: ApiData) -> None:
    npm_packages()
    node = shutil.which("node")
    assert node, "node is missing: scripts/bootstrap.sh installs Node.js"
    done = subprocess.run(
        [node, "scripts/graphql-http-audit.mjs", f"{api_data.api.url}/graphql",
         api_data.tokens.reader],
        cwd=WEB, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(results) > 50, done.stderr
    assert [r for r in results if r["status"] != "ok"] == []
    assert done.returncode == 0


def _post(data: ApiData, body: object, accept: str) -> httpx.Response:
    return httpx.post(
        f"{data.api.url}/graphql",
        json=body,
        headers={"Authorization": f"Bearer {data.tokens.reader}", "Accept": accept},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ("{ topAds(", "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
def test_a_request_error_is_a_400_without_data_for_graphql_response_json(
    api_data: ApiData, document: str, code: str
) -> None:
    answer = _post(api_data, {"query": document}, f"{GRAPHQL_RESPONSE}, application/json;q=0.9")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = answer.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]
    # A client that asks for application/json gets a 200, as before.
    plain = _post(api_data, {"query": document}, "application/json")
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")
    assert [e["extensions"]["code"] for e in plain.json()["errors"]] == [code]


def test_an_executed_answer_with_a_failed_field_is_a_200(api_data: ApiData) -> None:
    document = "{ topAds(window: {lastMinutes: 5}, limit: 0) { source } }"
    answer = _post(api_data, {"query": document}, GRAPHQL_RESPONSE)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = answer.json()
    assert body["data"] is None  # topAds is non-null: its failure nulls the whole answer
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_LIMIT"]


def test_listed_origins_may_call_the_api_from_a_browser(api_data: ApiData, tmp_path: Path) -> None:
    listed = "http://dashboards.example:8080"
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
    # By default no origin is listed: a browser would refuse to hand a page the answer.
    refused = httpx.options(
        f"{api_data.api.url}/graphql", headers={"Origin": listed, **preflight}, timeout=30
    )
    assert "access-control-allow-origin" not in refused.headers
    settings = api_data.settings.model_copy(
        update={"api_port": free_port(), "api_cors_origins": [listed]}
    )
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        allowed = httpx.options(
            f"{api.url}/graphql", headers={"Origin": listed, **preflight}, timeout=30
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == listed
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        answer = httpx.post(
            f"{api.url}/graphql",
            json={"query": "{ topAds(window: {lastMinutes: 60}, limit: 1) { source } }"},
            headers={"Origin": listed, "Authorization": f"Bearer {api_data.tokens.reader}"},
            timeout=30,
        )
        assert answer.headers["access-control-allow-origin"] == listed
        assert "etag" in answer.headers["access-control-expose-headers"].lower()
        other = httpx.options(
            f"{api.url}/graphql",
            headers={"Origin": "http://elsewhere.example", **preflight},
            timeout=30,
        )
        assert "access-control-allow-origin" not in other.headers
    finally:
        assert api.stop() == 0
